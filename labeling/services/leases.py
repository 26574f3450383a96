"""Next task: lease one open item to one worker, under concurrency, without ORDER BY random().

Invariants (each enforced by the database, not by luck):
- an item never has more than `max_labels` leases + labels: the slot is taken by a conditional
  UPDATE (`slots_taken < max_labels`), which is atomic on PostgreSQL and SQLite alike;
- a worker never gets an item twice: Assignment is unique per (item, worker);
- a worker holds one live lease per campaign, however many calls race: one worker's lease
  transactions are serialized (an advisory lock on PostgreSQL), each looks for the live one first;
- a budgeted campaign never reserves more labels than its budget pays for: a conditional UPDATE too.
On PostgreSQL the candidate scan uses `FOR UPDATE SKIP LOCKED`, so concurrent workers fan out over
the head of the queue instead of queueing on one row.
"""

from __future__ import annotations

import random
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import Count, Exists, F, OuterRef
from django.utils import timezone

from accounts.models import User
from core.errors import Conflict

from ..models import Assignment, AssignmentStatus, Campaign, CampaignStatus, Item, ItemStatus
from ..selectors import campaign_get_for
from . import hot_sql
from .blocks import worker_blocked_error, worker_check_not_blocked

MAX_ATTEMPTS = 8
RECLAIM_BATCH = 500
# Advisory-lock key space of next-task (first int4 of the two-key form): b"KYOD".
_LEASE_LOCK_CLASS = 0x4B594F44


class _Retry(Exception):
    """Raised inside the transaction to roll back a lost race and try the next candidate."""


def _active_lease(*, campaign: Campaign, worker: User) -> Assignment | None:
    return (
        Assignment.objects.select_related("item")
        .filter(
            worker=worker,
            campaign=campaign,
            status=AssignmentStatus.LEASED,
            leased_until__gt=timezone.now(),
        )
        .order_by("id")
        .first()
    )


def _pick_candidate(*, campaign: Campaign, worker: User, gold: bool) -> Item | None:
    """The head of this worker's queue; the whole row, as the task payload needs it.

    Two queues: gold items (known answers, never closed, no slot limit) in id order, and the
    rest in priority order with at most `max_labels` slots each. (SQLite's path: its
    transactions begin IMMEDIATE, so they are serialized and need no row locks; PostgreSQL's
    scan, with SKIP LOCKED, is the lease function's: migration labeling 0007.)
    """
    labeled = Assignment.objects.filter(item=OuterRef("pk"), worker=worker)
    if gold:
        candidates = (
            Item.objects.filter(campaign=campaign, status=ItemStatus.OPEN)
            .exclude(gold_label="")
            .filter(~Exists(labeled))
            .order_by("id")
        )
    else:
        candidates = (
            Item.objects.filter(
                campaign=campaign,
                status=ItemStatus.OPEN,
                gold_label="",
                slots_taken__lt=campaign.max_labels,
            )
            .filter(~Exists(labeled))
            .order_by("priority", "id")
        )
    return candidates.first()


def _wants_gold(campaign: Campaign) -> bool:
    """Serve a gold item with probability `gold_ratio` (a control task mixed into the stream)."""
    return campaign.gold_ratio > 0 and random.random() < campaign.gold_ratio  # noqa: S311


def _affordable(campaign: Campaign) -> int | None:
    """How many labels a budgeted campaign's budget pays for; None: no budget."""
    if campaign.budget is None:
        return None
    reward = int(campaign.reward_per_label or 0)
    return int(campaign.budget) // reward if reward else hot_sql.UNLIMITED_LABELS


def _reserve_budget(campaign: Campaign) -> bool:
    """Reserve one label's reward of a budgeted campaign; False when the budget is spoken for."""
    affordable = _affordable(campaign)
    if affordable is None:
        return True
    return bool(
        Campaign.objects.filter(pk=campaign.pk, labels_reserved__lt=affordable).update(
            labels_reserved=F("labels_reserved") + 1
        )
    )


def _budget_exhausted() -> Conflict:
    return Conflict("the campaign's budget is used up", code="budget_exhausted")


def task_lease_next(*, campaign: Campaign, worker: User) -> Assignment | None:
    """The worker's current lease in this campaign, or a new one; None when nothing is left."""
    _check_active(campaign)
    worker_check_not_blocked(campaign_id=campaign.pk, worker_id=worker.pk)
    return _lease_next(campaign=campaign, worker=worker)


def task_lease_next_in(*, campaign_id: int, worker: User) -> Assignment | None:
    """Next task as the API asks for it: by campaign id, in a campaign open to the worker.

    On PostgreSQL the campaign and the worker's block are one statement (see hot_sql); a
    campaign that is missing or not open to the worker goes the selector's way, for its errors.
    """
    found = None
    if connection.vendor == "postgresql":
        found = hot_sql.campaign_for_lease(campaign_id=campaign_id, worker_id=worker.pk)
    if found is None or not found[0].is_open_to(worker):
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
    """`task_lease_next_in` for the user of an API token, in one statement (PostgreSQL,
    autocommit; `hot_sql.token_lease_next`): the token, the campaign, the worker's block and the
    lease in one round trip.

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
        lock_class=_LEASE_LOCK_CLASS,
        gold_draw=random.random(),  # noqa: S311 - `_wants_gold`'s draw
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
        except (_Retry, IntegrityError):
            # The attempt was rolled back whole. IntegrityError: (item, worker) exists already;
            # cannot happen while one worker's lease transactions are serialized, but if it
            # does, the next attempt's scan no longer offers that item.
            continue
        if assignment is not None:
            return assignment
        # Nothing free: expired leases may be holding slots. Reclaim them (committed on their own,
        # outside the lease transaction) and look once more.
        if reclaimed or not leases_expire(campaign_id=campaign.pk, limit=RECLAIM_BATCH):
            return None
        reclaimed = True
    return None


def _lease_once(*, campaign: Campaign, worker: User) -> Assignment | None:
    if connection.vendor != "postgresql":
        return _lease_once_orm(campaign=campaign, worker=worker)
    with _savepoint_if_nested():
        return _lease_once_sql(campaign=campaign, worker=worker)


def _savepoint_if_nested() -> AbstractContextManager[object]:
    """Inside a caller's transaction, a savepoint, so that a lease call the database refuses (a
    lost race, the budget) leaves that transaction usable; in autocommit, nothing (the call is
    its own transaction)."""
    return transaction.atomic() if connection.in_atomic_block else nullcontext()


def _budget_refused(exc: DatabaseError) -> bool:
    """The lease function refused a new lease: the campaign's budget is spoken for."""
    return getattr(exc.__cause__, "sqlstate", None) == hot_sql.BUDGET_EXHAUSTED


@transaction.atomic
def _lease_once_orm(*, campaign: Campaign, worker: User) -> Assignment | None:
    # One lease at a time per worker: parallel calls by one worker (two tabs, a retrying client)
    # are serialized (SQLite: IMMEDIATE transactions; PostgreSQL: the lease function's advisory
    # lock), and the later ones find the first one's lease instead of taking a second item.
    existing = _active_lease(campaign=campaign, worker=worker)
    if existing is not None:
        return existing
    item = None
    if _wants_gold(campaign):
        item = _pick_candidate(campaign=campaign, worker=worker, gold=True)
    if item is None:
        item = _pick_candidate(campaign=campaign, worker=worker, gold=False)
    if item is None:
        return None
    slot = Item.objects.filter(pk=item.pk, status=ItemStatus.OPEN)
    if not item.gold_label:
        slot = slot.filter(slots_taken__lt=campaign.max_labels)
    took = slot.update(slots_taken=F("slots_taken") + 1)
    if not took:
        raise _Retry
    if not _reserve_budget(campaign):
        raise _budget_exhausted()
    _now, lease_until = _lease_window()
    # No savepoint: an IntegrityError rolls this whole attempt back (see task_lease_next).
    return Assignment.objects.create(
        item=item, worker=worker, campaign=campaign, leased_until=lease_until
    )


def _lease_once_sql(*, campaign: Campaign, worker: User) -> Assignment | None:
    """`_lease_once_orm` on PostgreSQL: the same steps, in order, as one call of the lease
    function (hot_sql.lease_next; its SQL is migration labeling 0007)."""
    now, until = _lease_window()
    try:
        found = hot_sql.lease_next(
            lock_class=_LEASE_LOCK_CLASS,
            campaign=campaign,
            worker=worker,
            gold_first=_wants_gold(campaign),
            affordable=_affordable(campaign),
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
