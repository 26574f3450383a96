"""The full refit of a bounding-box campaign: contributors' box skill, then every open item again.

A contributor's box skill is the mean F1 of their annotations against the fused boxes, smoothed
with one success and one failure (Beta(1, 1)): `(sum of F1 + 1) / (annotations + 2)`. It is the
weight of their boxes in the next fusions (`quality.aggregation.boxes`).

Spammers: each annotation is also judged against the fusion of the item's *other* annotations
(`leave_one_out_accepted`); a contributor 95 % sure to be accepted less than `BOX_SPAM_RATE` of
the time is suspended (and blocked from next-task), one 90 % sure of at least that is trusted
(`box_worker_status`). Statuses are sticky, as for classification campaigns.
"""

from __future__ import annotations

from collections import defaultdict
from itertools import groupby
from typing import Any

import numpy as np
from django.conf import settings
from django.utils import timezone

from labeling import selectors as labeling_selectors
from labeling import services as labeling_services
from labeling.models import Campaign, ItemStatus
from quality.aggregation.boxes import (
    BOX_SPAM_RATE,
    box_worker_status,
    fuse_boxes,
    leave_one_out_accepted,
)

from ..models import CampaignQuality, WorkerSkill
from .consensus import boxes_of, items_consensus_update
from .params import next_refit_at
from .workers import next_status

BATCH = 1000


def campaign_refit_boxes(*, campaign: Campaign) -> dict[str, Any]:
    code = {name: i for i, name in enumerate(campaign.class_names)}
    weights = dict(
        WorkerSkill.objects.filter(campaign_id=campaign.pk).values_list("worker_id", "accuracy")
    )
    f1_sum: dict[int, float] = defaultdict(float)
    count: dict[int, int] = defaultdict(int)
    judged: dict[int, int] = defaultdict(int)
    accepted: dict[int, int] = defaultdict(int)
    rows = labeling_selectors.campaign_boxes_iter(campaign_id=campaign.pk)
    for _, group in groupby(rows, key=lambda row: row[1]):
        annotations = list(group)
        contributions = [boxes_of(value, code=code) for _, _, value in annotations]
        item_weights = [weights.get(worker) or 1.0 for worker, _, _ in annotations]
        result = fuse_boxes(contributions, weights=item_weights)
        loo = leave_one_out_accepted(contributions, weights=item_weights)
        for (worker, _, _), f1, ok in zip(annotations, result.f1, loo, strict=True):
            f1_sum[worker] += f1
            count[worker] += 1
            if ok is not None:
                judged[worker] += 1
                accepted[worker] += int(ok)
    workers = sorted(count)
    spammers, trusted, informative = box_worker_status(
        np.array([accepted[w] for w in workers], dtype=np.intp),
        np.array([judged[w] for w in workers], dtype=np.intp),
        spam_certainty=settings.KYODO_QUALITY_SPAM_CERTAINTY,
        trust_certainty=settings.KYODO_QUALITY_TRUST_CERTAINTY,
    )
    before = dict(
        WorkerSkill.objects.filter(campaign_id=campaign.pk).values_list("worker_id", "status")
    )
    reason = (
        f"your boxes in this campaign match the other contributors' less than "
        f"{round(100 * BOX_SPAM_RATE)} % of the time "
        f"({round(100 * settings.KYODO_QUALITY_SPAM_CERTAINTY)} % sure)"
    )
    now = timezone.now()
    skills = []
    newly = []
    for i, worker in enumerate(workers):
        status, why, suspended_now = next_status(
            before.get(worker), spammer=bool(spammers[i]), trusted=bool(trusted[i])
        )
        if suspended_now:
            newly.append(worker)
        skills.append(
            WorkerSkill(
                worker_id=worker,
                campaign_id=campaign.pk,
                accuracy=(f1_sum[worker] + 1.0) / (count[worker] + 2.0),
                answers=count[worker],
                informative=float(informative[i]),
                status=status,
                status_reason=reason if why else "",
                suspended_at=now if suspended_now else None,
            )
        )
    WorkerSkill.objects.bulk_create(
        skills,
        update_conflicts=True,
        unique_fields=["worker", "campaign_id"],
        update_fields=["accuracy", "answers", "informative", "status", "updated_at"],
    )
    if newly:
        WorkerSkill.objects.filter(campaign_id=campaign.pk, worker_id__in=newly).update(
            status_reason=reason, suspended_at=now
        )
    for worker in newly:
        labeling_services.worker_block(campaign_id=campaign.pk, worker_id=worker, reason=reason)
    open_items = [
        item_id
        for item_id, status, _, labels in labeling_selectors.campaign_items_iter(
            campaign_id=campaign.pk
        )
        if status == ItemStatus.OPEN and labels > 0
    ]
    for start in range(0, len(open_items), BATCH):
        # The open items again with the new skills: the per-label update's batch, which must
        # not ask for another refit.
        items_consensus_update(item_ids=open_items[start : start + BATCH], request_refit=False)
    labels = labeling_selectors.campaign_label_count(campaign_id=campaign.pk)
    CampaignQuality.objects.filter(campaign_id=campaign.pk).update(
        method="weighted_box_fusion",
        classes=campaign.class_names,
        labels_at_fit=labels,
        next_refit_at=next_refit_at(labels),
    )
    return {"workers": len(skills), "open_items": len(open_items), "suspended": len(newly)}
