"""Pins as rows: idempotent ensure, claimed by workers, retried with backoff, visible to staff."""

from __future__ import annotations

import os
import threading
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import connection, transaction
from django.utils import timezone

from storage import pins
from storage.ipfs import IpfsClient, IpfsStore
from storage.models import Pin, PinKind, PinStatus
from storage.pins import (
    BACKOFF_BASE,
    BACKOFF_MAX,
    CLAIM_LEASE,
    pin_backoff,
    pin_claim_next,
    pin_ensure,
    pins_ensure_many,
    pins_process_due,
    pins_retry_now,
    pins_wake,
)
from storage.services import blob_put_bytes, get_store
from storage.stores import LocalStore
from storage.tasks import ensure_pins
from storage.unixfs import cid_of_bytes
from tests.accounts.factories import UserFactory
from tests.conftest import client_for

from .conftest import IpfsNode
from .factories import PinFactory

pytestmark = pytest.mark.django_db

HELLO_CID = "bafkreihzg3z2b4qviggswvajxfwmsbyndfvhbn3np4ilx4dqs66sfq6rxm"


@pytest.fixture(autouse=True)
def _local_store_unless_asked(settings: Any) -> None:
    # These tests are about LocalStore unless they point IPFS_API_URL at a node themselves (CI
    # may set it for the whole run).
    settings.IPFS_API_URL = ""
    get_store.cache_clear()


def make_due(*cids: str) -> None:
    """Let time pass: the given (or all) open pins are due now."""
    qs = Pin.objects.exclude(status=PinStatus.PINNED)
    if cids:
        qs = qs.filter(cid__in=cids)
    qs.update(next_attempt_at=timezone.now() - timedelta(seconds=1))


# -- rows --------------------------------------------------------------------------------------


def test_pin_ensure_is_idempotent_by_cid() -> None:
    first = pin_ensure(cid=HELLO_CID, kind=PinKind.ITEM)
    again = pin_ensure(cid=HELLO_CID, kind=PinKind.EXPORT)
    assert first.pk == again.pk
    assert Pin.objects.count() == 1
    assert again.kind == PinKind.ITEM  # the first use that asked keeps the row
    assert again.status == PinStatus.PENDING
    assert again.next_attempt_at is not None


def test_pin_ensure_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="CIDv0"):
        pin_ensure(cid="QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG", kind=PinKind.ITEM)
    with pytest.raises(ValueError, match="PinKind"):
        pin_ensure(cid=HELLO_CID, kind="video")


def test_pins_ensure_many_bulk_and_idempotent() -> None:
    cids = [cid_of_bytes(str(i).encode()) for i in range(2500)]
    pin_ensure(cid=cids[0], kind=PinKind.MANIFEST)
    assert pins_ensure_many(cids=iter(cids), kind=PinKind.ITEM) == 2500
    assert pins_ensure_many(cids=cids[:10], kind=PinKind.ITEM) == 10
    assert Pin.objects.count() == 2500
    assert Pin.objects.get(cid=cids[0]).kind == PinKind.MANIFEST


def test_pins_ensure_many_rows_are_what_pin_ensure_makes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pins, "BULK_BATCH", 3)  # several statements, and a short last one
    cids = [cid_of_bytes(b"row %d" % i) for i in range(7)]
    before = timezone.now()
    assert pins_ensure_many(cids=cids + cids[:2], kind=PinKind.EXPORT) == 9
    single = pin_ensure(cid=cid_of_bytes(b"single"), kind=PinKind.EXPORT)
    rows = list(Pin.objects.filter(cid__in=cids).order_by("id"))
    assert [r.cid for r in rows] == cids  # in the order given, once each
    for row in rows:
        assert (row.kind, row.status, row.attempts, row.last_error, row.pinned_at) == (
            single.kind,
            single.status,
            single.attempts,
            single.last_error,
            single.pinned_at,
        )
        assert row.next_attempt_at is not None
        assert row.next_attempt_at >= before
        assert row.created_at >= before
        assert row.updated_at >= before


def test_pins_ensure_many_rejects_a_bad_cid_with_the_reason() -> None:
    good = cid_of_bytes(b"good")
    with pytest.raises(ValueError, match="CIDv0"):
        pins_ensure_many(
            cids=[good, "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG"], kind=PinKind.ITEM
        )
    with pytest.raises(ValueError, match="lowercase"):
        pins_ensure_many(cids=[good.upper()], kind=PinKind.ITEM)
    with pytest.raises(ValueError, match="string"):
        pins_ensure_many(cids=[None], kind=PinKind.ITEM)  # type: ignore[list-item]
    with pytest.raises(ValueError, match="PinKind"):
        pins_ensure_many(cids=[good], kind="video")
    assert not Pin.objects.exists()  # the check comes before the batch's INSERT


def test_pins_ensure_many_wakes_the_worker_once_or_not_at_all(
    django_capture_on_commit_callbacks: Any,
) -> None:
    cids = [cid_of_bytes(b"wake %d" % i) for i in range(3)]
    with django_capture_on_commit_callbacks() as callbacks:
        pins_ensure_many(cids=cids[:2], kind=PinKind.ITEM, wake=False)
    assert callbacks == []
    with django_capture_on_commit_callbacks() as callbacks:
        pins_ensure_many(cids=cids, kind=PinKind.ITEM)
    assert len(callbacks) == 1
    with django_capture_on_commit_callbacks() as callbacks:
        pins_wake()
    assert len(callbacks) == 1
    assert Pin.objects.count() == 3


def test_backoff_doubles_to_a_cap() -> None:
    assert pin_backoff(1) == BACKOFF_BASE
    assert pin_backoff(2) == 2 * BACKOFF_BASE
    assert pin_backoff(4) == 8 * BACKOFF_BASE
    assert pin_backoff(50) == BACKOFF_MAX
    assert pin_backoff(10**9) == BACKOFF_MAX


def test_claim_leases_the_row_and_counts_the_attempt() -> None:
    pin_ensure(cid=HELLO_CID, kind=PinKind.ITEM)
    before = timezone.now()
    claimed = pin_claim_next()
    assert claimed is not None
    assert claimed.attempts == 1
    assert claimed.next_attempt_at is not None
    assert claimed.next_attempt_at >= before + CLAIM_LEASE - timedelta(seconds=1)
    # Leased: no other worker gets it until the lease runs out (a dead worker's row comes back).
    assert pin_claim_next() is None
    assert pin_claim_next(now=timezone.now() + CLAIM_LEASE + timedelta(seconds=1)) is not None


# -- LocalStore: pinned means present ----------------------------------------------------------


def test_local_store_pins_present_blobs_and_backs_off_on_missing() -> None:
    present = blob_put_bytes(data=b"present").cid
    missing = cid_of_bytes(b"missing")
    pin_ensure(cid=present, kind=PinKind.ITEM)
    pin_ensure(cid=missing, kind=PinKind.ITEM)

    result = pins_process_due()
    assert (result.pinned, result.failed, result.stopped_early) == (1, 1, False)
    ok = Pin.objects.get(cid=present)
    assert ok.status == PinStatus.PINNED
    assert ok.pinned_at is not None
    assert ok.next_attempt_at is None
    bad = Pin.objects.get(cid=missing)
    assert bad.status == PinStatus.FAILED
    assert bad.attempts == 1
    assert "not found" in bad.last_error
    assert bad.next_attempt_at is not None
    assert bad.next_attempt_at > timezone.now() + BACKOFF_BASE - timedelta(seconds=5)

    # Not due yet: nothing happens. Due and still missing: the delay doubles.
    assert pins_process_due().failed == 0
    make_due(missing)
    pins_process_due()
    bad.refresh_from_db()
    assert bad.attempts == 2
    assert bad.next_attempt_at is not None
    assert bad.next_attempt_at > timezone.now() + 2 * BACKOFF_BASE - timedelta(seconds=5)

    # The blob arrives; the next due run pins it. The pinned row is never touched again.
    assert blob_put_bytes(data=b"missing").cid == missing
    make_due(missing)
    assert pins_process_due().pinned == 1
    assert Pin.objects.filter(status=PinStatus.PINNED).count() == 2
    ok_after = Pin.objects.get(cid=present)
    assert (ok_after.attempts, ok_after.updated_at) == (ok.attempts, ok.updated_at)


def test_ensure_enqueues_the_task_on_commit(django_capture_on_commit_callbacks: Any) -> None:
    cid = blob_put_bytes(data=b"enqueued").cid
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        pin_ensure(cid=cid, kind=PinKind.PAYOUT_TABLE)
    assert len(callbacks) == 1  # eager in tests: the task ran at commit
    assert Pin.objects.get(cid=cid).status == PinStatus.PINNED
    with django_capture_on_commit_callbacks() as callbacks:
        pin_ensure(cid=cid, kind=PinKind.PAYOUT_TABLE)
    assert callbacks == []  # nothing new to pin, nothing enqueued


def test_retry_now_makes_failed_pins_due() -> None:
    missing = pin_ensure(cid=cid_of_bytes(b"gone"), kind=PinKind.EXPORT)
    pins_process_due()
    assert pins_retry_now(ids=[missing.pk]) == 1
    assert pin_claim_next() is not None


# -- the IPFS node: stopped mid-way, started again ---------------------------------------------


class CrashingStore(IpfsStore):
    """Kills the node (SIGKILL by PID) right before the ``crash_before``-th pin call."""

    def __init__(self, node: IpfsNode, crash_before: int) -> None:
        client = IpfsClient(node.api_url, timeout=10.0, retries=2, retry_delay=0.05)
        super().__init__(node.api_url, client=client, pin_on_add=False)
        self.node = node
        self.crash_before = crash_before
        self.calls = 0

    def pin(self, cid: str) -> None:
        self.calls += 1
        if self.calls == self.crash_before:
            self.node.kill()
        super().pin(cid)


@pytest.mark.services
@pytest.mark.slow
def test_node_stopped_mid_way_then_every_pin_in_place_once(
    own_ipfs_node: IpfsNode, settings: Any, monkeypatch: Any, tmp_path: Path
) -> None:
    node = own_ipfs_node
    adder = IpfsStore(node.api_url, pin_on_add=False, timeout=10.0)
    blobs = [os.urandom(n) for n in (100, 5_000, 300_000, 1_000_000, 50, 70_000, 2_000_000)]
    cids = [adder.put_bytes(data).cid for data in blobs]  # on the node, not pinned
    assert adder.client.pin_ls(cids) == set()
    for cid in cids:
        pin_ensure(cid=cid, kind=PinKind.ITEM)

    # Count every pin/add the node acknowledges, per CID, whichever client sends it.
    acknowledged: Counter[str] = Counter()
    real_pin_add = IpfsClient.pin_add

    def counting_pin_add(self: IpfsClient, cid: str, *, timeout: float | None = None) -> None:
        real_pin_add(self, cid, timeout=timeout)
        acknowledged[cid] += 1

    monkeypatch.setattr(IpfsClient, "pin_add", counting_pin_add)

    # Run 1: three pins go through, then the node dies under the worker.
    crashing = CrashingStore(node, crash_before=4)
    run1 = pins_process_due(store=crashing)
    assert (run1.pinned, run1.failed, run1.stopped_early) == (3, 1, True)
    assert Pin.objects.filter(status=PinStatus.PINNED).count() == 3
    failed = Pin.objects.get(status=PinStatus.FAILED)
    assert failed.attempts == 1
    assert "IpfsUnavailable" in failed.last_error
    assert failed.next_attempt_at is not None
    assert failed.next_attempt_at > timezone.now()
    # The run stopped instead of failing every row against a dead node: the rest wait, untried.
    assert Pin.objects.filter(status=PinStatus.PENDING, attempts=0).count() == 3
    pinned_in_run1 = set(Pin.objects.filter(status=PinStatus.PINNED).values_list("cid", flat=True))

    # Run 2, through the Celery task, node still down: rows fail with growing backoff.
    settings.IPFS_API_URL = node.api_url
    get_store.cache_clear()
    make_due()
    assert ensure_pins() == {"pinned": 0, "failed": 1}  # stops at the first: the node is down
    failed.refresh_from_db()
    assert failed.status == PinStatus.FAILED
    assert failed.attempts == 2
    assert failed.next_attempt_at is not None
    assert failed.next_attempt_at > timezone.now() + 2 * BACKOFF_BASE - timedelta(seconds=5)

    # The node comes back on the same repo and port; time passes; the task runs again.
    node.start()
    get_store.cache_clear()
    make_due()
    assert ensure_pins() == {"pinned": 4, "failed": 0}

    assert Pin.objects.count() == len(cids)
    assert set(Pin.objects.values_list("status", flat=True)) == {PinStatus.PINNED}
    assert adder.client.pin_ls(cids) == set(cids)  # every pin in place, on the node's own list
    assert acknowledged == Counter(dict.fromkeys(cids, 1))  # each pinned exactly once
    attempts = dict(Pin.objects.values_list("cid", "attempts"))
    assert {attempts[c] for c in pinned_in_run1} == {1}
    assert attempts[failed.cid] == 3
    # A further run finds nothing to do: pinned rows are never redone.
    make_due()
    assert ensure_pins() == {"pinned": 0, "failed": 0}
    assert acknowledged == Counter(dict.fromkeys(cids, 1))
    # The pins survived a crash of the node: they are in its repo, not its memory.
    assert len(node.started) == 2


@pytest.mark.django_db(transaction=True)
def test_two_workers_never_claim_the_same_row() -> None:
    PinFactory.create_batch(2, next_attempt_at=timezone.now())
    holding = threading.Event()
    release = threading.Event()
    seen: list[str] = []

    def worker_one() -> None:
        with transaction.atomic():
            row = Pin.objects.select_for_update().order_by("id").first()
            assert row is not None
            seen.append(row.cid)
            holding.set()
            release.wait(10)
        connection.close()

    thread = threading.Thread(target=worker_one)
    thread.start()
    assert holding.wait(10)
    other = pin_claim_next()  # skips the locked row instead of waiting for it
    release.set()
    thread.join()
    assert other is not None
    assert other.cid != seen[0]


# -- visible to staff --------------------------------------------------------------------------


def _rows() -> None:
    for status in [PinStatus.PINNED, PinStatus.PINNED, PinStatus.FAILED]:
        PinFactory.create(status=status, attempts=1)


@pytest.mark.urls("storage.urls")  # mounted under /api/storage/ by config.urls
def test_pin_status_api_for_staff(staff: Any) -> None:
    _rows()
    api = client_for(staff)
    body = api.get("/pins/").json()
    assert body["counts"] == {"pending": 0, "pinned": 2, "failed": 1}
    assert len(body["results"]) == 3
    failed = api.get("/pins/", {"status": "failed"}).json()["results"]
    assert [p["status"] for p in failed] == ["failed"]
    one = api.get("/pins/", {"cid": failed[0]["cid"]}).json()["results"]
    assert [p["cid"] for p in one] == [failed[0]["cid"]]
    assert set(one[0]) >= {"cid", "kind", "status", "attempts", "next_attempt_at", "last_error"}
    # Pages, newest first, with the counts of all pins on each.
    first = api.get("/pins/", {"page_size": 2}).json()
    assert first["counts"] == body["counts"]
    assert len(first["results"]) == 2
    rest = api.get(first["next"]).json()
    assert rest["next"] is None
    cids = [p["cid"] for p in first["results"] + rest["results"]]
    assert cids == [p["cid"] for p in body["results"]]
    assert len(set(cids)) == 3


@pytest.mark.urls("storage.urls")
def test_pin_status_api_rejects_bad_filters_and_non_staff(staff: Any, requester: Any) -> None:
    api = client_for(staff)
    response = api.get("/pins/", {"cid": "../../etc"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"
    assert api.get("/pins/", {"status": "lost"}).status_code == 400
    assert api.get("/pins/", {"page_size": 501}).status_code == 400
    assert client_for(requester).get("/pins/").status_code == 403


def test_admin_lists_pins_with_filters(client: Any) -> None:
    _rows()
    admin_user = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(admin_user)
    page = client.get("/admin/storage/pin/", {"status__exact": "failed"})
    assert page.status_code == 200
    text = page.content.decode()
    assert "Failed" in text
    assert text.count("bafkrei") >= 1


def test_local_store_is_the_default_store() -> None:
    assert isinstance(get_store(), LocalStore)
    assert hasattr(pins, "PinningStore")
