"""Shared builders for the quality app's database tests: campaigns, items and answers in bulk."""

from __future__ import annotations

from typing import Any, cast

import numpy as np
from django.utils import timezone

from accounts.models import User
from labeling.models import (
    Annotation,
    Assignment,
    AssignmentStatus,
    Campaign,
    Item,
    TaskType,
)
from tests.accounts.factories import UserFactory
from tests.labeling.factories import AnnotationFactory, CampaignFactory, set_label_count


def text_campaign(
    *, classes: tuple[str, ...] = ("yes", "no"), n_items: int = 0, **fields: Any
) -> tuple[Campaign, list[Item]]:
    campaign = cast(
        Campaign,
        CampaignFactory(
            task_type=fields.pop("task_type", TaskType.TEXT_CLASSIFICATION),
            label_schema={
                "classes": [
                    {"name": name, "hotkey": str(i + 1), "color": "#000000"}
                    for i, name in enumerate(classes)
                ]
            },
            **fields,
        ),
    )
    items = add_items(campaign, n_items)
    return campaign, items


def add_items(
    campaign: Campaign,
    n: int,
    *,
    texts: list[str] | None = None,
    gold: dict[int, str] | None = None,
) -> list[Item]:
    start = Item.objects.filter(campaign=campaign).count()
    Item.objects.bulk_create(
        Item(
            campaign=campaign,
            cid=f"bafkreiquality{campaign.pk}x{start + i:06d}",
            media_type="text/plain",
            text=(texts[i] if texts else f"text {start + i}"),
            gold_label=(gold or {}).get(i, ""),
            size=6,
        )
        for i in range(n)
    )
    Campaign.objects.filter(pk=campaign.pk).update(item_count=start + n)
    return list(Item.objects.filter(campaign=campaign).order_by("id"))[start:]


def workers(n: int) -> list[User]:
    return [cast(User, UserFactory()) for _ in range(n)]


def answer(item: Item, worker: User, label: str) -> Annotation:
    """A submitted label written straight to the tables (no lease round trip, no quality task)."""
    annotation = AnnotationFactory.create(item=item, worker=worker, label=label)
    Item.objects.filter(pk=item.pk).update(
        label_count=item.label_count + 1, slots_taken=item.slots_taken + 1
    )
    item.label_count += 1
    item.slots_taken += 1
    return annotation


def simulated_crowd(
    campaign: Campaign,
    items: list[Item],
    crowd: list[User],
    *,
    accuracies: list[float],
    per_item: int,
    seed: int,
) -> dict[int, str]:
    """Each item answered by `per_item` random workers of the crowd; returns the hidden truth."""
    rng = np.random.default_rng(seed)
    classes = campaign.class_names
    truth: dict[int, str] = {}
    rows = []
    assignments = []
    for item in items:
        true = int(rng.integers(0, len(classes)))
        truth[item.pk] = classes[true]
        for w in rng.choice(len(crowd), size=per_item, replace=False):
            right = rng.random() < accuracies[w]
            label = true if right else (true + int(rng.integers(1, len(classes)))) % len(classes)
            assignments.append(
                Assignment(
                    item=item,
                    worker=crowd[w],
                    campaign_id=campaign.pk,
                    status=AssignmentStatus.SUBMITTED,
                    leased_until=timezone.now(),
                )
            )
            rows.append((item, crowd[w], classes[label]))
    Assignment.objects.bulk_create(assignments)
    made = {
        (a.item_id, a.worker_id): a
        for a in Assignment.objects.filter(campaign_id=campaign.pk, status="submitted")
    }
    Annotation.objects.bulk_create(
        Annotation(
            item=item,
            worker=worker,
            assignment=made[(item.pk, worker.pk)],
            value={"label": label},
            label=label,
        )
        for item, worker, label in rows
    )
    for item in items:
        Item.objects.filter(pk=item.pk).update(label_count=per_item, slots_taken=per_item)
    set_label_count(campaign, len(rows))
    return truth
