"""The full refit of a bounding-box campaign: contributors' box skill, then every open item again.

A contributor's box skill is the mean F1 of their annotations against the fused boxes, smoothed
with one success and one failure (Beta(1, 1)): `(sum of F1 + 1) / (annotations + 2)`. It is the
weight of their boxes in the next fusions (`quality.aggregation.boxes`).
"""

from __future__ import annotations

from collections import defaultdict
from itertools import groupby
from typing import Any

from django.db import transaction

from labeling import selectors as labeling_selectors
from labeling.models import Campaign, ItemStatus
from quality.aggregation.boxes import fuse_boxes

from .. import sources
from ..models import CampaignQuality, WorkerSkill
from .consensus import _locked_consensus, box_decision, boxes_of, consensus_apply
from .params import next_refit_at

BATCH = 1000


def campaign_refit_boxes(*, campaign: Campaign) -> dict[str, Any]:
    code = {name: i for i, name in enumerate(campaign.class_names)}
    weights = dict(
        WorkerSkill.objects.filter(campaign_id=campaign.pk).values_list("worker_id", "accuracy")
    )
    f1_sum: dict[int, float] = defaultdict(float)
    count: dict[int, int] = defaultdict(int)
    rows = sources.campaign_boxes_iter(campaign_id=campaign.pk)
    for _, group in groupby(rows, key=lambda row: row[1]):
        annotations = list(group)
        result = fuse_boxes(
            [boxes_of(value, code=code) for _, _, value in annotations],
            weights=[weights.get(worker) or 1.0 for worker, _, _ in annotations],
        )
        for (worker, _, _), f1 in zip(annotations, result.f1, strict=True):
            f1_sum[worker] += f1
            count[worker] += 1
    skills = [
        WorkerSkill(
            worker_id=worker,
            campaign_id=campaign.pk,
            accuracy=(f1_sum[worker] + 1.0) / (count[worker] + 2.0),
            answers=count[worker],
        )
        for worker in count
    ]
    WorkerSkill.objects.bulk_create(
        skills,
        update_conflicts=True,
        unique_fields=["worker", "campaign_id"],
        update_fields=["accuracy", "answers", "updated_at"],
    )
    open_items = [
        item_id
        for item_id, status, _, labels in sources.campaign_items_iter(campaign_id=campaign.pk)
        if status == ItemStatus.OPEN and labels > 0
    ]
    for start in range(0, len(open_items), BATCH):
        _redecide(campaign=campaign, item_ids=open_items[start : start + BATCH])
    CampaignQuality.objects.filter(campaign_id=campaign.pk).update(
        method="weighted_box_fusion",
        classes=campaign.class_names,
        labels_at_fit=campaign.label_count,
        next_refit_at=next_refit_at(campaign.label_count),
    )
    return {"workers": len(skills), "open_items": len(open_items)}


@transaction.atomic
def _redecide(*, campaign: Campaign, item_ids: list[int]) -> None:
    for item_id in item_ids:
        item = labeling_selectors.item_get(item_id=item_id)
        decision = box_decision(item=item, classes=campaign.class_names)
        if decision is not None:
            consensus_apply(
                consensus=_locked_consensus(item), decision=decision, item=item, campaign=campaign
            )
