"""Writes of the ledger: one RewardEntry per annotation of a closed item."""

from __future__ import annotations

from django.db import transaction

from labeling import selectors as labeling_selectors
from quality import selectors as quality_selectors

from ..models import RewardEntry, RewardStatus


@transaction.atomic
def rewards_account_item(*, item_id: int) -> int:
    """Write a ledger entry for every annotation of a closed item; returns how many were new.

    Exactly once per annotation (unique annotation_id), so reruns and late labels are safe.
    An annotation earns the campaign's reward_per_label when it agrees with the consensus.
    """
    consensus = quality_selectors.item_consensus(item_id=item_id)
    if consensus is None or not consensus.is_complete:
        return 0
    item = labeling_selectors.item_get(item_id=item_id)
    reward = item.campaign.reward_per_label or 0
    already = set(
        RewardEntry.objects.filter(item_id=item_id).values_list("annotation_id", flat=True)
    )
    entries = [
        RewardEntry(
            worker_id=annotation.worker_id,
            campaign_id=item.campaign_id,
            item_id=item_id,
            annotation_id=annotation.pk,
            amount=reward,
            status=RewardStatus.ACCEPTED
            if annotation.label == consensus.label
            else RewardStatus.REJECTED,
            reason="agrees" if annotation.label == consensus.label else "disagrees",
        )
        for annotation in labeling_selectors.item_annotations(item_id=item_id)
        if annotation.pk not in already
    ]
    RewardEntry.objects.bulk_create(entries, ignore_conflicts=True)
    return len(entries)


def rewards_account_completed(*, after_id: int = 0, batch: int = 1000) -> int:
    """Account every completed item whose consensus id is past ``after_id``; returns new entries.

    A catch-up sweep (the demo runs it before its first epoch; an operator after lost task
    messages): idempotent like :func:`rewards_account_item`, one item per transaction.
    """
    created = 0
    while True:
        decisions = quality_selectors.completed_consensus_after(after_id=after_id, limit=batch)
        if not decisions:
            return created
        for decision in decisions:
            created += rewards_account_item(item_id=decision.item_id)
        after_id = decisions[-1].id
