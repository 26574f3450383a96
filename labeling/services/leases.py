"""Next task: lease one open item to one worker, under concurrency, without ORDER BY random().

Invariants (each enforced by the database, not by luck):
- an item never has more than `max_labels` leases + labels: the slot is taken by a conditional
  UPDATE (`slots_taken < max_labels`), which is atomic on PostgreSQL and SQLite alike;
- a worker never gets an item twice: Assignment is unique per (item, worker);
- a budgeted campaign never reserves more labels than its budget pays for: a conditional UPDATE too.
On PostgreSQL the candidate scan uses `FOR UPDATE SKIP LOCKED`, so concurrent workers fan out over
the head of the queue instead of queueing on one row.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, Exists, F, OuterRef
from django.utils import timezone

from accounts.models import User
from core.errors import Conflict

from ..models import Assignment, AssignmentStatus, Campaign, CampaignStatus, Item, ItemStatus

MAX_ATTEMPTS = 8
RECLAIM_BATCH = 500


class _Retry(Exception):
    """Raised inside the transaction to roll back a lost race and try the next candidate."""


def _active_lease(*, campaign: Campaign, worker: User) -> Assignment | None:
    return (
        Assignment.objects.select_related("item")
        .filter(worker=worker, campaign=campaign, status=AssignmentStatus.LEASED, leased_until__gt=timezone.now())
        .order_by("id")
        .first()
    )


def _pick_candidate(*, campaign: Campaign, worker: User) -> int | None:
    labeled = Assignment.objects.filter(item=OuterRef("pk"), worker=worker)
    candidates = (
        Item.objects.filter(campaign=campaign, status=ItemStatus.OPEN, slots_taken__lt=campaign.max_labels)
        .filter(~Exists(labeled))
        .order_by("priority", "id")
    )
    if connection.features.has_select_for_update_skip_locked:
        candidates = candidates.select_for_update(skip_locked=True, of=("self",))
    return candidates.values_list("id", flat=True).first()


def _reserve_budget(campaign: Campaign) -> bool:
    if campaign.budget is None:
        return True
    reward = int(campaign.reward_per_label)
    affordable = int(campaign.budget) // reward if reward else 2**31 - 1
    return bool(
        Campaign.objects.filter(pk=campaign.pk, labels_reserved__lt=affordable).update(
            labels_reserved=F("labels_reserved") + 1
        )
    )


def task_lease_next(*, campaign: Campaign, worker: User) -> Assignment | None:
    """The worker's current lease in this campaign, or a new one; None when nothing is left."""
    if campaign.status != CampaignStatus.ACTIVE:
        raise Conflict(f"campaign is {campaign.status}", code="campaign_not_active")
    existing = _active_lease(campaign=campaign, worker=worker)
    if existing is not None:
        return existing
    reclaimed = False
    for _ in range(MAX_ATTEMPTS):
        try:
            assignment = _lease_once(campaign=campaign, worker=worker)
        except _Retry:
            continue
        if assignment is not None:
            return assignment
        # Nothing free: expired leases may be holding slots. Reclaim them (committed on their own,
        # outside the lease transaction) and look once more.
        if reclaimed or not leases_expire(campaign_id=campaign.pk, limit=RECLAIM_BATCH):
            return None
        reclaimed = True
    return None


@transaction.atomic
def _lease_once(*, campaign: Campaign, worker: User) -> Assignment | None:
    item_id = _pick_candidate(campaign=campaign, worker=worker)
    if item_id is None:
        return None
    took = Item.objects.filter(pk=item_id, status=ItemStatus.OPEN, slots_taken__lt=campaign.max_labels).update(
        slots_taken=F("slots_taken") + 1
    )
    if not took:
        raise _Retry
    if not _reserve_budget(campaign):
        raise Conflict("the campaign's budget is used up", code="budget_exhausted")
    lease_until = timezone.now() + timedelta(seconds=settings.KYODO_LEASE_SECONDS)
    try:
        with transaction.atomic():
            return Assignment.objects.create(item_id=item_id, worker=worker, campaign=campaign, leased_until=lease_until)
    except IntegrityError:
        raise _Retry from None  # the same worker raced itself to this item


@transaction.atomic
def leases_expire(*, campaign_id: int | None = None, limit: int = RECLAIM_BATCH) -> int:
    """Return expired leases' slots to the pool (and their budget reservations). Bounded per call."""
    expired = Assignment.objects.filter(status=AssignmentStatus.LEASED, leased_until__lte=timezone.now())
    if campaign_id is not None:
        expired = expired.filter(campaign_id=campaign_id)
    if connection.features.has_select_for_update_skip_locked:
        expired = expired.select_for_update(skip_locked=True)
    ids = list(expired.order_by("leased_until").values_list("id", flat=True)[:limit])
    if not ids:
        return 0
    Assignment.objects.filter(pk__in=ids).update(status=AssignmentStatus.EXPIRED)
    per_item = Assignment.objects.filter(pk__in=ids).values("item_id").annotate(n=Count("id"))
    for row in per_item:
        Item.objects.filter(pk=row["item_id"]).update(slots_taken=F("slots_taken") - row["n"])
    per_campaign = (
        Assignment.objects.filter(pk__in=ids, campaign__budget__isnull=False)
        .values("campaign_id")
        .annotate(n=Count("id"))
    )
    for row in per_campaign:
        Campaign.objects.filter(pk=row["campaign_id"]).update(labels_reserved=F("labels_reserved") - row["n"])
    return len(ids)
