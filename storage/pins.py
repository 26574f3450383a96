"""Pins as rows: every CID the platform depends on is kept by the store, with retries.

``pin_ensure`` / ``pins_ensure_many`` record the wish (idempotent by CID) and enqueue
``storage.ensure_pins`` once the transaction commits. The task calls :func:`pins_process_due`,
which claims one due row at a time (``select_for_update(skip_locked=True)``, then a lease in
``next_attempt_at``), pins outside any transaction, and records the outcome:

* pinned: ``status=pinned``, never touched again;
* failed: ``status=failed``, ``next_attempt_at`` = now + exponential backoff (30 s doubling, capped
  at an hour); the beat entry runs the task every minute and picks up what is due.

When the node is unreachable the run stops at the first failure instead of burning an attempt on
every row: the rest stay due and go on the next run.

Pinning means: on an IPFS node, ``pin/add`` (recursive, idempotent on the node); on LocalStore,
that the blob is present (there is nothing else to keep it alive).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol, runtime_checkable

from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from core.tasks import enqueue_on_commit
from storage.cid import CANONICAL_CID, InvalidCid, cid_decode
from storage.models import OPEN_PIN_STATUSES, Pin, PinKind, PinStatus
from storage.stores import BlobNotFound, ContentStore

logger = logging.getLogger(__name__)

ENSURE_PINS_TASK = "storage.ensure_pins"
BACKOFF_BASE = timedelta(seconds=30)
BACKOFF_MAX = timedelta(hours=1)
# Longer than one pin may take (the node call times out well before), so a live worker never
# loses its claim, and a dead one's row comes back after this.
CLAIM_LEASE = timedelta(minutes=15)
BULK_BATCH = 10_000


@runtime_checkable
class PinningStore(Protocol):
    """A store that keeps content alive on request: ``IpfsStore`` (a pinning service would too)."""

    def pin(self, cid: str) -> None: ...


@dataclass(frozen=True, slots=True)
class PinRunResult:
    pinned: int = 0
    failed: int = 0
    stopped_early: bool = False  # the store was unreachable; due rows were left for later


def pin_ensure(*, cid: str, kind: str) -> Pin:
    """The pin row for ``cid`` (created pending if new); the pin happens after commit."""
    cid_decode(cid)
    PinKind(kind)
    pin, created = Pin.objects.get_or_create(
        cid=cid, defaults={"kind": kind, "next_attempt_at": timezone.now()}
    )
    if created:
        enqueue_on_commit(ENSURE_PINS_TASK)
    return pin


def pins_ensure_many(*, cids: Iterable[str], kind: str, wake: bool = True) -> int:
    """Bulk :func:`pin_ensure` (ingest of thousands of items): one enqueue for the lot.

    One ``INSERT … ON CONFLICT (cid) DO NOTHING`` per ``BULK_BATCH`` CIDs, checked against
    :data:`~storage.cid.CANONICAL_CID` (decoding each would cost more than its row). With
    ``wake=False`` the caller enqueues ``storage.ensure_pins`` itself, later (an import wakes it
    once, when it finishes, not once per batch); the beat's run every minute finds the rows anyway.

    Returns how many CIDs were given; existing rows are left as they are.
    """
    PinKind(kind)
    count = 0
    batch: list[str] = []
    for cid in cids:
        if not isinstance(cid, str) or not CANONICAL_CID.fullmatch(cid):
            cid_decode(cid)  # raises InvalidCid with the reason
            raise InvalidCid(f"{cid!r}: not a canonical CID")
        batch.append(cid)
        count += 1
        if len(batch) >= BULK_BATCH:
            _insert_pins(batch, kind)
            batch = []
    if batch:
        _insert_pins(batch, kind)
    if count and wake:
        pins_wake()
    return count


def pins_wake() -> None:
    """Have the pin worker run once the transaction commits (``storage.ensure_pins``)."""
    enqueue_on_commit(ENSURE_PINS_TASK)


def _insert_pins(cids: list[str], kind: str) -> None:
    """New pending rows for ``cids`` (due now); a CID that has a row keeps it as it is.

    The column list comes from the model: a new column with a default needs no change here. The
    CIDs travel as one comma-separated parameter (a CID never holds a comma).
    """
    now = timezone.now()
    columns: list[str] = []
    select: list[str] = []
    params: list[Any] = []
    for f in Pin._meta.concrete_fields:
        if f.primary_key:
            continue
        columns.append(connection.ops.quote_name(f.column or f.attname))
        if f.attname == "cid":
            select.append("c")
            continue
        if f.attname == "kind":
            value: Any = kind
        elif (
            f.attname == "next_attempt_at"
            or getattr(f, "auto_now", False)
            or getattr(f, "auto_now_add", False)
        ):
            value = now
        else:
            value = f.get_default()
        select.append("%s")
        params.append(f.get_db_prep_save(value, connection))
    table = connection.ops.quote_name(Pin._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} ({', '.join(columns)}) SELECT {', '.join(select)} "  # noqa: S608
            "FROM unnest(string_to_array(%s, ',')) WITH ORDINALITY AS u(c, n) ORDER BY n "
            "ON CONFLICT (cid) DO NOTHING",
            [*params, ",".join(cids)],
        )


def pin_backoff(attempts: int) -> timedelta:
    """Delay before the next try after ``attempts`` failed ones: 30 s, 1 min, 2 min, ... 1 h."""
    exponent = min(max(attempts - 1, 0), 20)  # 2**20 x 30 s is past the cap already
    return min(BACKOFF_BASE * (2**exponent), BACKOFF_MAX)


@transaction.atomic
def pin_claim_next(*, now: datetime | None = None) -> Pin | None:
    """Claim the most overdue open pin: lock it (skipping rows other workers hold), lease it.

    The attempt is counted here, so a pin that kills its worker still backs off.
    """
    now = now or timezone.now()
    pin = (
        Pin.objects.select_for_update(skip_locked=True)
        .filter(status__in=OPEN_PIN_STATUSES, next_attempt_at__lte=now)
        .order_by("next_attempt_at", "id")
        .first()
    )
    if pin is None:
        return None
    Pin.objects.filter(pk=pin.pk).update(
        attempts=F("attempts") + 1, next_attempt_at=now + CLAIM_LEASE, updated_at=now
    )
    pin.refresh_from_db()
    return pin


def pin_mark_pinned(*, pin: Pin) -> None:
    now = timezone.now()
    Pin.objects.filter(pk=pin.pk).exclude(status=PinStatus.PINNED).update(
        status=PinStatus.PINNED, pinned_at=now, next_attempt_at=None, last_error="", updated_at=now
    )


def pin_mark_failed(*, pin: Pin, error: str) -> None:
    now = timezone.now()
    Pin.objects.filter(pk=pin.pk).exclude(status=PinStatus.PINNED).update(
        status=PinStatus.FAILED,
        next_attempt_at=now + pin_backoff(pin.attempts),
        last_error=error[:2000],
        updated_at=now,
    )


def store_pin(store: ContentStore, cid: str) -> None:
    """Make ``store`` keep ``cid``: pin it where the store can pin, else check it is there."""
    if isinstance(store, PinningStore):
        store.pin(cid)
    elif not store.has(cid):
        raise BlobNotFound(cid)


def pins_process_due(*, store: ContentStore | None = None, limit: int = 1000) -> PinRunResult:
    """Pin up to ``limit`` due rows, one claim at a time; safe to run in several workers at once."""
    if store is None:
        from storage.services import get_store  # storage.services re-exports this module

        store = get_store()
    pinned = failed = 0
    for _ in range(limit):
        pin = pin_claim_next()
        if pin is None:
            break
        try:
            store_pin(store, pin.cid)
        except Exception as exc:
            # Whatever went wrong is recorded on the row and retried with backoff: one bad CID
            # must not stop the others, and a bug shows up in last_error and the log.
            pin_mark_failed(pin=pin, error=f"{type(exc).__name__}: {exc}")
            failed += 1
            logger.warning("pin %s failed (attempt %d): %s", pin.cid, pin.attempts, exc)
            if getattr(exc, "transient", False):  # storage.ipfs.IpfsUnavailable: node down
                return PinRunResult(pinned=pinned, failed=failed, stopped_early=True)
            continue
        pin_mark_pinned(pin=pin)
        pinned += 1
    return PinRunResult(pinned=pinned, failed=failed)


def pins_retry_now(*, ids: Iterable[int]) -> int:
    """Make failed pins due at once (an operator fixed the node); returns how many."""
    return Pin.objects.filter(pk__in=list(ids), status=PinStatus.FAILED).update(
        next_attempt_at=timezone.now()
    )
