"""Writes of the ledger: one RewardEntry per annotation of a closed item."""

from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction

from labeling import selectors as labeling_selectors
from quality import selectors as quality_selectors

from ..models import RewardEntry, RewardStatus


def rewards_account_item(*, item_id: int) -> int:
    """`rewards_account_items` of one item."""
    return rewards_account_items(item_ids=[item_id])


@transaction.atomic
def rewards_account_items(*, item_ids: Iterable[int]) -> int:
    """Write a ledger entry for every decided annotation of the items; returns how many were new.

    Exactly once per annotation (unique annotation_id), so reruns and late labels are safe. The
    quality engine decides each annotation (`quality.selectors.annotations_verdicts`): accepted
    when it agrees with the consensus (or a gold item's known label) and its worker is in good
    standing; rejected when it disagrees or its worker is suspended; held PENDING while its worker
    is unproven (`rewards_resolve_pending` settles those later); not written while the item is open.
    A fixed number of queries for any number of items (the quality engine sends its batches).
    """
    ids = sorted(set(item_ids))
    already = set(
        RewardEntry.objects.filter(item_id__in=ids).values_list("annotation_id", flat=True)
    )
    # Read once: each annotation not yet accounted (a gold item is accounted on every label it
    # gets); the verdicts get the ids as a list, not a queryset to run again.
    todo = list(
        labeling_selectors.items_annotations(item_ids=ids)
        .exclude(pk__in=already)
        .values_list("pk", "item_id", "worker_id")
    )
    if not todo:
        return 0
    items = labeling_selectors.items_with_campaign(item_ids={item_id for _, item_id, _ in todo})
    verdicts = quality_selectors.annotations_verdicts(
        item_ids=list(items), annotation_ids=[pk for pk, _, _ in todo]
    )
    entries = []
    for annotation_id, item_id, worker_id in todo:
        accepted, reason = verdicts.get(annotation_id, (False, "item_open"))
        if reason == "item_open":
            continue
        if accepted:
            status = RewardStatus.ACCEPTED
        elif reason == "worker_unproven":
            status = RewardStatus.PENDING
        else:
            status = RewardStatus.REJECTED
        campaign = items[item_id].campaign
        entries.append(
            RewardEntry(
                worker_id=worker_id,
                campaign_id=campaign.pk,
                item_id=item_id,
                annotation_id=annotation_id,
                amount=campaign.reward_per_label or 0,
                status=status,
                reason=reason,
            )
        )
    RewardEntry.objects.bulk_create(entries, ignore_conflicts=True)
    return len(entries)


def rewards_resolve_pending(*, campaign_id: int) -> tuple[int, int]:
    """Settle the campaign's unsettled entries once their workers are judged: (accepted, rejected).

    A worker now trusted gets its held (PENDING) rewards accepted. A suspended one (a detected
    spammer) gets every reward not yet settled rejected: the pending ones and also those already
    ACCEPTED but in no epoch yet (accepted before the suspension, e.g. while the campaign was not
    calibrated). An entry an epoch has taken (`epoch` set) is committed to a payout root and is
    never touched; the UPDATE's `epoch IS NULL` is re-checked on each row it locks, so an epoch
    that takes the entry concurrently wins and the entry stays paid. A worker still on
    probation keeps its pending rewards.
    """
    unsettled = RewardEntry.objects.filter(campaign_id=campaign_id, epoch__isnull=True)
    pending = unsettled.filter(status=RewardStatus.PENDING)
    open_rewards = unsettled.filter(status__in=[RewardStatus.PENDING, RewardStatus.ACCEPTED])
    workers = set(open_rewards.values_list("worker_id", flat=True).distinct())
    if not workers:
        return 0, 0
    statuses = quality_selectors.worker_statuses(campaign_id=campaign_id, worker_ids=workers)
    trusted = [w for w, status in statuses.items() if status == "trusted"]
    suspended = [w for w, status in statuses.items() if status == "suspended"]
    rejected = open_rewards.filter(worker_id__in=suspended).update(
        status=RewardStatus.REJECTED, reason="worker_suspended"
    )
    accepted = pending.filter(worker_id__in=trusted).update(
        status=RewardStatus.ACCEPTED, reason="agrees"
    )
    return accepted, rejected


def rewards_resolve_all_pending() -> tuple[int, int]:
    """`rewards_resolve_pending` for every campaign with unsettled pending or accepted entries."""
    campaigns = (
        RewardEntry.objects.filter(
            status__in=[RewardStatus.PENDING, RewardStatus.ACCEPTED], epoch__isnull=True
        )
        .values_list("campaign_id", flat=True)
        .distinct()
    )
    totals = [rewards_resolve_pending(campaign_id=c) for c in list(campaigns)]
    return sum(a for a, _ in totals), sum(r for _, r in totals)


def rewards_account_completed(*, after_id: int = 0, batch: int = 1000) -> int:
    """Account every completed item whose consensus id is past ``after_id``; returns new entries.

    A catch-up sweep (the demo runs it before its first epoch; an operator after lost task
    messages): idempotent like :func:`rewards_account_items`, one batch per transaction.
    """
    created = 0
    while True:
        decisions = quality_selectors.completed_consensus_after(after_id=after_id, limit=batch)
        if not decisions:
            return created
        created += rewards_account_items(item_ids=[d.item_id for d in decisions])
        after_id = decisions[-1].id
