"""Next task: lease one open item to one worker, under concurrency, without ORDER BY random().

The lease itself is one call of the PL/pgSQL function `labeling_lease_next`, whose one home is
`labeling/sql/lease_next.sql` (its steps, its invariants and why one call; run by
`hot_sql.lease_next` and `hot_sql.token_lease_next`). In short, each enforced by the database:
- an item never has more than `max_labels` leases + labels: the slot is taken by a conditional
  UPDATE (`slots_taken < max_labels`);
- a worker never gets an item twice: Assignment is unique per (item, worker);
- a worker holds one live lease per campaign, however many calls race: one worker's lease calls
  are serialized by an advisory lock, and each looks for the live one first;
- a budgeted campaign never reserves more labels than its budget pays for: a conditional UPDATE too.
The candidate scan uses `FOR UPDATE SKIP LOCKED`, so concurrent workers fan out over the head of
the queue instead of queueing on one row. This module adds the checks around the call (campaign
open and active, worker not blocked), the gold draw and the budget's arithmetic
(`labeling.selectors`), and the reclaim of expired leases when nothing is free.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import Count, F
from django.utils import timezone

from accounts.models import User
from core.errors import Conflict

from ..models import Assignment, AssignmentStatus, Campaign, CampaignStatus, Item
from ..selectors import (
    campaign_get_for,
    campaign_is_open_to,
    campaign_labels_affordable,
    campaign_serves_gold,
    gold_draw,
)
from . import hot_sql
from .blocks import worker_blocked_error, worker_check_not_blocked

MAX_ATTEMPTS = 8
RECLAIM_BATCH = 500
# Advisory-lock key space of next-task (first int4 of the two-key form): b"KYOD".
LEASE_LOCK_CLASS = 0x4B594F44


def _budget_exhausted() -> Conflict:
    return Conflict("the campaign's budget is used up", code="budget_exhausted")


def task_lease_next(*, campaign: Campaign, worker: User) -> Assignment | None:
    """The worker's current lease in this campaign, or a new one; None when nothing is left.
    The one home of next-task's checks around the lease function (with `task_lease_next_in`)."""
    _check_active(campaign)
    worker_check_not_blocked(campaign_id=campaign.pk, worker_id=worker.pk)
    return _lease_next(campaign=campaign, worker=worker)


def task_lease_next_in(*, campaign_id: int, worker: User) -> Assignment | None:
    """Next task as the API asks for it: by campaign id, in a campaign open to the worker.

    The campaign and the worker's block are one statement (see hot_sql); a campaign that is
    missing or not open to the worker goes the selector's way, for its errors.
    """
    found = hot_sql.campaign_for_lease(campaign_id=campaign_id, worker_id=worker.pk)
    if found is None or not campaign_is_open_to(campaign=found[0], user=worker):
        campaign = campaign_get_for(user=worker, campaign_id=campaign_id)
        return task_lease_next(campaign=campaign, worker=worker)
    campaign, block_reason = found
    _check_active(campaign)
    if block_reason is not None:
        raise worker_blocked_error(campaign_id=campaign.pk, reason=block_reason)
    return _lease_next(campaign=campaign, worker=worker)


def task_lease_next_for_token(
    *, key: str, campaign_id: int
) -> tuple[User, Assignment | None] | None:
    """`task_lease_next_in` for the user of an API token, in one statement (autocommit;
    `hot_sql.token_lease_next`): the token, the campaign, the worker's block and the lease in one
    round trip. The one home of the one-statement next (the fast lane's).

    (the user, their lease), the lease None when nothing is left for them. None, with nothing
    leased, when the token is unknown, the campaign missing or not active, the worker blocked from
    it or its budget spoken for: then `task_lease_next_in` (after the usual authentication) names
    the error. Raises AuthenticationFailed for an inactive user. The fast lane's next.
    """
    try:
        with _savepoint_if_nested():
            found = _token_lease_once(key=key, campaign_id=campaign_id)
    except IntegrityError:
        return None  # rolled back whole; the full path tries again (see `_lease_next`)
    except DatabaseError as exc:
        if _budget_refused(exc):
            return None
        raise
    if found is None or not found.went or found.campaign is None:
        return None
    if found.lease is not None:
        return found.worker, found.lease[0]
    # Nothing was free: as `_lease_next` after its first attempt.
    lease = _lease_next(campaign=found.campaign, worker=found.worker, missed=True)
    return found.worker, lease


def _token_lease_once(*, key: str, campaign_id: int) -> hot_sql.TokenLease | None:
    now, until = _lease_window()
    return hot_sql.token_lease_next(
        key=key,
        campaign_id=campaign_id,
        lock_class=LEASE_LOCK_CLASS,
        gold_draw=gold_draw(),  # compared in SQL as `campaign_serves_gold` does
        now=now,
        until=until,
    )


def _lease_window() -> tuple[datetime, datetime]:
    """Now, and when a lease taken now runs out."""
    now = timezone.now()
    return now, now + timedelta(seconds=settings.KYODO_LEASE_SECONDS)


def _check_active(campaign: Campaign) -> None:
    if campaign.status != CampaignStatus.ACTIVE:
        raise Conflict(f"campaign is {campaign.status}", code="campaign_not_active")


def _lease_next(*, campaign: Campaign, worker: User, missed: bool = False) -> Assignment | None:
    """`missed`: an attempt found nothing free already (reclaim first)."""
    if missed and not leases_expire(campaign_id=campaign.pk, limit=RECLAIM_BATCH):
        return None
    reclaimed = missed
    for _ in range(MAX_ATTEMPTS):
        try:
            assignment = _lease_once(campaign=campaign, worker=worker)
        except IntegrityError:
            # The attempt was rolled back whole: (item, worker) exists already. Cannot happen
            # while one worker's lease calls are serialized, but if it does, the next attempt's
            # scan no longer offers that item.
            continue
        if assignment is not None:
            return assignment
        # Nothing free: expired leases may be holding slots. Reclaim them (committed on their own,
        # outside the lease transaction) and look once more.
        if reclaimed or not leases_expire(campaign_id=campaign.pk, limit=RECLAIM_BATCH):
            return None
        reclaimed = True
    return None


def _savepoint_if_nested() -> AbstractContextManager[object]:
    """Inside a caller's transaction, a savepoint, so that a lease call the database refuses (a
    lost race, the budget) leaves that transaction usable; in autocommit, nothing (the call is
    its own transaction)."""
    return transaction.atomic() if connection.in_atomic_block else nullcontext()


def _budget_refused(exc: DatabaseError) -> bool:
    """The lease function refused a new lease: the campaign's budget is spoken for."""
    return getattr(exc.__cause__, "sqlstate", None) == hot_sql.BUDGET_EXHAUSTED


def _lease_once(*, campaign: Campaign, worker: User) -> Assignment | None:
    """One call of the lease function (`hot_sql.lease_next`; labeling/sql/lease_next.sql): the
    worker's live lease, or a new one, or None when nothing is free. Inside a caller's
    transaction, in a savepoint."""
    now, until = _lease_window()
    try:
        with _savepoint_if_nested():
            found = hot_sql.lease_next(
                lock_class=LEASE_LOCK_CLASS,
                campaign=campaign,
                worker=worker,
                gold_first=campaign_serves_gold(campaign=campaign, draw=gold_draw()),
                affordable=campaign_labels_affordable(campaign=campaign),
                now=now,
                until=until,
            )
    except DatabaseError as exc:
        if _budget_refused(exc):
            raise _budget_exhausted() from exc
        raise
    return None if found is None else found[0]


@transaction.atomic
def leases_expire(*, campaign_id: int | None = None, limit: int = RECLAIM_BATCH) -> int:
    """Return expired leases' slots to the pool (and their budget reservations). Bounded per call.
    The one home of lease expiry: the beat (`labeling.expire_leases`) and next-task's reclaim.

    Lock order as every writer of an item and its leases (lease, submit, close): the items first,
    in id order, then their leases. Locking the leases first deadlocks with a submit of the same
    lease (it holds the item and waits for the lease).
    """
    now = timezone.now()
    expired = Assignment.objects.filter(status=AssignmentStatus.LEASED, leased_until__lte=now)
    if campaign_id is not None:
        expired = expired.filter(campaign_id=campaign_id)
    seen = list(expired.order_by("leased_until").values_list("id", "item_id")[:limit])
    if not seen:
        return 0
    item_ids = sorted({item_id for _, item_id in seen})
    list(
        Item.objects.select_for_update()
        .filter(pk__in=item_ids)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    # Holding the items, re-read: a lease submitted (or reclaimed) meanwhile is left alone.
    ids = list(
        expired.filter(pk__in=[pk for pk, _ in seen])
        .select_for_update()
        .values_list("id", flat=True)
    )
    if not ids:
        return 0
    Assignment.objects.filter(pk__in=ids).update(status=AssignmentStatus.EXPIRED)
    per_item = (
        Assignment.objects.filter(pk__in=ids)
        .values("item_id")
        .annotate(n=Count("id"))
        .order_by("item_id")
    )
    for item_row in per_item:
        Item.objects.filter(pk=item_row["item_id"]).update(
            slots_taken=F("slots_taken") - item_row["n"]
        )
    per_campaign = (
        Assignment.objects.filter(pk__in=ids, campaign__budget__isnull=False)
        .values("campaign_id")
        .annotate(n=Count("id"))
        .order_by("campaign_id")
    )
    for campaign_row in per_campaign:
        Campaign.objects.filter(pk=campaign_row["campaign_id"]).update(
            labels_reserved=F("labels_reserved") - campaign_row["n"]
        )
    return len(ids)
