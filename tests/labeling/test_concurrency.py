"""Next task under real concurrency, on PostgreSQL: parallel contributors going next → submit
through the API never break the lease invariants.

Every thread has its own database connection (closed when it ends) and its own APIClient, and all
threads start together on a barrier, so row locks, SKIP LOCKED and the conditional slot UPDATE are
really contended. Celery is eager in the test settings: each submission runs the quality update and,
when the item closes, the reward accounting in the submitting thread right after its commit, so
those paths are contended too.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, cast

import pytest
from django.db import connections, transaction
from django.db.models import Count, Q
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from accounts.models import User
from labeling.fast_lane import FastLane
from labeling.models import (
    Annotation,
    Assignment,
    AssignmentStatus,
    Campaign,
    Item,
    ItemStatus,
    TaskType,
)
from labeling.selectors import campaign_label_count
from labeling.services import annotation_submit_label_for_token, leases_expire
from quality.models import ItemConsensus
from rewards.models import RewardEntry, RewardStatus

from ..accounts.factories import UserFactory
from ..conftest import client_for
from .factories import CampaignFactory, TextItemFactory
from .test_fast_lane import Spy, call

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.services]

CLASSES = ["cat", "dog", "bird"]
THREADS = 16
PER_THREAD = 3  # contributors each thread plays, taking turns: 48 people on 16 connections
JOIN_TIMEOUT = 120.0


def make_campaign(*, n_items: int, min_labels: int, max_labels: int) -> Campaign:
    campaign = cast(
        Campaign,
        CampaignFactory(
            task_type=TaskType.TEXT_CLASSIFICATION,
            label_schema={
                "classes": [
                    {"name": n, "hotkey": str(i + 1), "color": "#000000"}
                    for i, n in enumerate(CLASSES)
                ]
            },
            min_labels=min_labels,
            max_labels=max_labels,
        ),
    )
    # Items straight into the table: these tests are about leasing, not ingest or blobs.
    Item.objects.bulk_create(TextItemFactory.build_batch(n_items, campaign=campaign))
    Campaign.objects.filter(pk=campaign.pk).update(item_count=n_items)
    return campaign


def run_together(n: int, body: Callable[[int], None]) -> list[str]:
    """Run body(0..n-1) in n threads started on one barrier; return every exception, as text."""
    errors: list[str] = []
    barrier = threading.Barrier(n)

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            body(i)
        except BaseException as exc:  # any failure in a thread fails the test, with its message
            errors.append(f"thread {i}: {type(exc).__name__}: {exc}")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=JOIN_TIMEOUT)
    assert not [t for t in threads if t.is_alive()], "a contributor thread hung"
    return errors


@dataclass
class Tally:
    """What the contributors saw, summed over threads (Counter updates are under the GIL)."""

    status: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, key: str) -> None:
        with self.lock:
            self.status[key] += 1


class LaneClient:
    """An API client whose calls go through the fast lane in front of Django's WSGI handler, as
    the web server sends them (the APIClient calls Django's handler directly): on PostgreSQL
    next-task and a class label's submit are then one statement each."""

    def __init__(self, key: str) -> None:
        self.key = key

    def get(self, path: str) -> LaneAnswer:
        return LaneAnswer(*call(_LANE, "GET", path, token=self.key)[::2])

    def post(self, path: str, data: dict[str, Any], format: str = "json") -> LaneAnswer:
        assert format == "json"
        body = json.dumps(data).encode()
        return LaneAnswer(*call(_LANE, "POST", path, token=self.key, body=body)[::2])


@dataclass
class LaneAnswer:
    status_code: int
    content: bytes

    def json(self) -> Any:
        return json.loads(self.content)


_DJANGO = Spy()  # Django's handler behind the fast lane, counting the calls it served
_LANE = FastLane(_DJANGO)
Client = APIClient | LaneClient
WAYS = ["api", "fast lane"]


def client_of(user: User, way: str) -> Client:
    api = client_for(user)  # makes the token
    return api if way == "api" else LaneClient(Token.objects.get(user=user).key)


def one_cycle(*, client: Client, campaign_id: int, label: str, tally: Tally) -> bool:
    """next → submit; False when the server says nothing is left (204). Anything else raises."""
    task = client.get(f"/api/campaigns/{campaign_id}/next/")
    if task.status_code == 204:
        tally.add("next 204")
        return False
    assert task.status_code == 200, (task.status_code, task.content)
    tally.add("next 200")
    item_id = task.json()["item_id"]
    done = client.post(f"/api/items/{item_id}/annotations/", {"label": label}, format="json")
    if done.status_code == 409 and done.json()["error"]["code"] == "item_closed":
        # The item reached consensus while we held a lease on it: the lease was released.
        tally.add("submit 409 item_closed")
        return True
    assert done.status_code == 201, (done.status_code, done.content)
    tally.add("submit 201")
    return True


def label_until_done(
    *, clients: list[Client], campaign_id: int, label: str, tally: Tally, limit: int
) -> None:
    """The contributors take turns, a cycle each, until each has been told nothing is left."""
    active = list(clients)
    for _ in range(limit):
        active = [
            c
            for c in active
            if one_cycle(client=c, campaign_id=campaign_id, label=label, tally=tally)
        ]
        if not active:
            return
    raise AssertionError(f"still labeling after {limit} rounds")


def new_user() -> User:
    return cast(User, UserFactory())


def contributors(n: int, way: str = "api") -> list[tuple[User, Client]]:
    users = [new_user() for _ in range(n)]
    return [(u, client_of(u, way)) for u in users]  # tokens made here, not in the threads


def assert_lease_invariants(campaign: Campaign) -> None:
    """What must hold at any quiescent moment, whatever the consensus rule."""
    items = Item.objects.filter(campaign=campaign).annotate(
        n_annotations=Count("annotations", distinct=True),
        n_leased=Count(
            "assignments", filter=Q(assignments__status=AssignmentStatus.LEASED), distinct=True
        ),
        n_submitted=Count(
            "assignments", filter=Q(assignments__status=AssignmentStatus.SUBMITTED), distinct=True
        ),
    )
    for item in items:
        assert item.n_annotations <= campaign.max_labels, item
        assert item.slots_taken <= campaign.max_labels, item
        assert item.slots_taken == item.n_leased + item.n_annotations, item
        assert item.label_count == item.n_annotations == item.n_submitted, item
    pairs = Annotation.objects.filter(item__campaign=campaign).values("item_id", "worker_id")
    assert not pairs.annotate(n=Count("id")).filter(n__gt=1).exists()
    assert (
        not Assignment.objects.filter(campaign=campaign)
        .values("item_id", "worker_id")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .exists()
    )
    # The campaign's counters agree with the rows.
    campaign.refresh_from_db()
    labels = Annotation.objects.filter(item__campaign=campaign).count()
    assert campaign_label_count(campaign_id=campaign.pk) == labels
    assert (
        campaign.completed_count
        == Item.objects.filter(campaign=campaign, status=ItemStatus.COMPLETE).count()
    )


def sweep(pool: list[tuple[User, Client]], campaign: Campaign, label: str) -> int:
    """Once the threads are done, one contributor at a time: how many labels were still to give."""
    tally = Tally()
    for _, client in pool:
        label_until_done(
            clients=[client], campaign_id=campaign.pk, label=label, tally=tally, limit=1000
        )
    return tally.status["submit 201"]


@pytest.mark.parametrize("way", WAYS)
def test_parallel_contributors_fill_every_slot_exactly_once(way: str) -> None:
    """min_labels == max_labels == 3: every item closes with exactly 3 labels by 3 people."""
    n_items, k = 20, 3
    campaign = make_campaign(n_items=n_items, min_labels=k, max_labels=k)
    pool = contributors(THREADS * PER_THREAD, way)
    tally = Tally()
    _DJANGO.calls = 0

    def body(i: int) -> None:
        label_until_done(
            clients=[client for _, client in pool[i::THREADS]],
            campaign_id=campaign.pk,
            label=CLASSES[i % 3],
            tally=tally,
            limit=n_items + 1,
        )

    errors = run_together(THREADS, body)
    assert errors == []
    assert_lease_invariants(campaign)
    # Contributors stop at their first 204; a 204 must mean "nothing left for you", never
    # "everything left was locked by someone else at that instant": nobody finds work afterwards.
    assert sweep(pool, campaign, "cat") == 0

    assert tally.status["submit 201"] == n_items * k
    assert tally.status["submit 409 item_closed"] == 0  # nothing is released when max == min
    assert tally.status["next 204"] == len(pool)  # each stopped once, at the end
    if way == "fast lane":  # every call above was the fast lane's own (none was refused)
        assert _DJANGO.calls == 0
    items = list(Item.objects.filter(campaign=campaign))
    assert {(i.status, i.label_count, i.slots_taken) for i in items} == {
        (ItemStatus.COMPLETE, k, k)
    }
    assert (
        not Assignment.objects.filter(campaign=campaign)
        .exclude(status=AssignmentStatus.SUBMITTED)
        .exists()
    )
    consensus = ItemConsensus.objects.filter(campaign_id=campaign.pk)
    assert consensus.count() == n_items
    assert set(consensus.values_list("is_complete", "n_labels")) == {(True, k)}
    # Exactly one ledger row per label, however many quality/reward runs raced on an item.
    assert RewardEntry.objects.filter(campaign_id=campaign.pk).count() == n_items * k
    # Contention was real: many different people labeled, not a few fast threads.
    assert (
        Annotation.objects.filter(item__campaign=campaign).values("worker_id").distinct().count()
        > THREADS
    )


@pytest.mark.parametrize("way", WAYS)
def test_parallel_contributors_with_early_consensus(way: str) -> None:
    """min 2, max 3, all agree: items close at 2 labels, a 3rd only if leased before the close.

    A lease still out when the item closes is released (its slot freed) and its submission answered
    409 item_closed: so released leases, 409s and the labels above two add up exactly.
    """
    n_items = 24
    campaign = make_campaign(n_items=n_items, min_labels=2, max_labels=3)
    pool = contributors(THREADS * PER_THREAD, way)
    tally = Tally()

    def body(i: int) -> None:
        label_until_done(
            clients=[client for _, client in pool[i::THREADS]],
            campaign_id=campaign.pk,
            label="cat",
            tally=tally,
            limit=2 * n_items,
        )

    errors = run_together(THREADS, body)
    assert errors == []
    assert_lease_invariants(campaign)
    assert sweep(pool, campaign, "cat") == 0

    items = list(Item.objects.filter(campaign=campaign))
    assert {i.status for i in items} == {ItemStatus.COMPLETE}
    assert all(2 <= i.label_count <= 3 for i in items)
    assert all(
        i.slots_taken == i.label_count for i in items
    )  # released leases gave their slots back
    labels = sum(i.label_count for i in items)
    assert tally.status["submit 201"] == labels
    released = Assignment.objects.filter(campaign=campaign, status=AssignmentStatus.EXPIRED).count()
    assert tally.status["submit 409 item_closed"] == released
    assert tally.status["next 200"] == labels + released
    consensus = {c.item_id: c for c in ItemConsensus.objects.filter(campaign_id=campaign.pk)}
    assert {(c.is_complete, c.label) for c in consensus.values()} == {(True, "cat")}
    assert all(consensus[i.pk].n_labels == i.label_count for i in items)
    rewards = RewardEntry.objects.filter(campaign_id=campaign.pk)
    assert rewards.count() == labels
    assert set(rewards.values_list("status", flat=True)) == {RewardStatus.ACCEPTED}


@pytest.mark.parametrize("way", WAYS)
def test_one_contributor_calling_next_from_many_threads_gets_one_lease(way: str) -> None:
    campaign = make_campaign(n_items=50, min_labels=1, max_labels=3)
    user = new_user()
    client_for(user)  # makes the token
    key = Token.objects.get(user=user).key
    answers: list[tuple[int, Any]] = []
    lock = threading.Lock()

    def body(_: int) -> None:
        client: Client = LaneClient(key)
        if way == "api":
            client = APIClient()  # one client per thread, all with the same token
            client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
        response = client.get(f"/api/campaigns/{campaign.pk}/next/")
        with lock:
            answers.append(
                (response.status_code, response.json() if response.status_code == 200 else None)
            )

    n = 8
    errors = run_together(n, body)
    assert errors == []
    assert [code for code, _ in answers] == [200] * n
    assert len({task["item_id"] for _, task in answers}) == 1, answers
    assert Assignment.objects.filter(worker=user).count() == 1
    assert sum(Item.objects.filter(campaign=campaign).values_list("slots_taken", flat=True)) == 1
    assert_lease_invariants(campaign)


@pytest.mark.parametrize("way", WAYS)
def test_parallel_contributors_never_reserve_more_than_the_budget(way: str) -> None:
    campaign = make_campaign(n_items=20, min_labels=1, max_labels=2)
    Campaign.objects.filter(pk=campaign.pk).update(reward_per_label=10, budget=75)  # 7 labels
    people = contributors(THREADS, way)
    answers: list[tuple[int, str | None]] = []
    lock = threading.Lock()

    def body(i: int) -> None:
        _user, client = people[i]
        response = client.get(f"/api/campaigns/{campaign.pk}/next/")
        code = None if response.status_code == 200 else response.json()["error"]["code"]
        with lock:
            answers.append((response.status_code, code))

    errors = run_together(THREADS, body)
    assert errors == []
    assert sorted(answers, key=str) == sorted(
        [(200, None)] * 7 + [(409, "budget_exhausted")] * (THREADS - 7), key=str
    )
    campaign.refresh_from_db()
    assert campaign.labels_reserved == 7
    # Every refused lease was rolled back whole: no slot and no lease left behind.
    assert sum(Item.objects.filter(campaign=campaign).values_list("slots_taken", flat=True)) == 7
    assert Assignment.objects.filter(campaign=campaign).count() == 7
    assert_lease_invariants(campaign)


def _expire(assignment: Assignment) -> None:
    Assignment.objects.filter(pk=assignment.pk).update(
        leased_until=timezone.now() - timedelta(seconds=1)
    )


def test_expired_lease_returns_to_the_pool_but_not_to_its_holder() -> None:
    campaign = make_campaign(n_items=1, min_labels=1, max_labels=1)
    item = Item.objects.get(campaign=campaign)
    (late, late_client), (_other, other_client) = contributors(2)

    task = late_client.get(f"/api/campaigns/{campaign.pk}/next/")
    assert task.status_code == 200
    assert task.json()["item_id"] == item.pk
    # The only slot is leased: nobody else gets the item while the lease runs.
    assert other_client.get(f"/api/campaigns/{campaign.pk}/next/").status_code == 204

    _expire(Assignment.objects.get(worker=late))
    # The holder of the expired lease is not served the item again (not as a live lease either).
    assert late_client.get(f"/api/campaigns/{campaign.pk}/next/").status_code == 204
    # Another contributor asking finds the pool empty, reclaims the expired slot and gets the item.
    task = other_client.get(f"/api/campaigns/{campaign.pk}/next/")
    assert task.status_code == 200, task.content
    assert task.json()["item_id"] == item.pk
    assert Assignment.objects.get(worker=late).status == AssignmentStatus.EXPIRED
    item.refresh_from_db()
    assert item.slots_taken == 1

    # The late submission is refused with a clear error; the new holder's is accepted.
    late_submit = late_client.post(
        f"/api/items/{item.pk}/annotations/", {"label": "cat"}, format="json"
    )
    assert late_submit.status_code == 409
    assert late_submit.json()["error"]["code"] == "lease_expired"
    done = other_client.post(f"/api/items/{item.pk}/annotations/", {"label": "dog"}, format="json")
    assert done.status_code == 201, done.content
    assert late_client.get(f"/api/campaigns/{campaign.pk}/next/").status_code == 204
    assert_lease_invariants(campaign)
    item.refresh_from_db()
    assert (item.status, item.label_count, item.slots_taken) == (ItemStatus.COMPLETE, 1, 1)


def test_expiry_sweep_races_submissions_without_losing_or_doubling_a_slot() -> None:
    """Expired leases reclaimed by the sweep while their holders submit at the same time: each
    lease ends either submitted (a label) or expired (its slot back), never both, never neither."""
    n = 12
    campaign = make_campaign(n_items=n, min_labels=3, max_labels=3)
    pool = contributors(n)
    leased: list[int] = []
    for _user, client in pool:
        task = client.get(f"/api/campaigns/{campaign.pk}/next/")
        assert task.status_code == 200
        leased.append(task.json()["item_id"])
    Assignment.objects.filter(campaign=campaign).update(
        leased_until=timezone.now() - timedelta(seconds=1)
    )
    codes: list[int] = []
    lock = threading.Lock()

    def body(i: int) -> None:
        if i == n:
            while leases_expire(campaign_id=campaign.pk, limit=2):
                pass
            return
        _, client = pool[i]
        response = client.post(
            f"/api/items/{leased[i]}/annotations/", {"label": "cat"}, format="json"
        )
        assert response.status_code in (201, 409), response.content
        with lock:
            codes.append(response.status_code)

    errors = run_together(n + 1, body)
    assert errors == []
    assert_lease_invariants(campaign)
    submitted = Assignment.objects.filter(
        campaign=campaign, status=AssignmentStatus.SUBMITTED
    ).count()
    expired = Assignment.objects.filter(campaign=campaign, status=AssignmentStatus.EXPIRED).count()
    assert (submitted, expired) == (codes.count(201), codes.count(409))
    assert submitted + expired == n
    assert (
        sum(Item.objects.filter(campaign=campaign).values_list("slots_taken", flat=True))
        == submitted
    )


@pytest.mark.parametrize("way", ["api", "one statement"])
def test_submit_waits_for_the_item_lock_and_rechecks_the_lease(way: str) -> None:
    """The submit's one write statement locks the item before it touches the lease (the lock
    order of every writer), and re-checks the lease once it has the lock: a lease expired by the
    holder of the item's lock meanwhile gets no label, and the answer says why. `way`: through the
    API's submit, or the fast lane's one-statement submit (token, lease check and write), which
    then answers None for Django's path to name the error."""
    campaign = make_campaign(n_items=1, min_labels=3, max_labels=3)
    ((user, client),) = contributors(1)
    key = Token.objects.get(user=user).key
    task = client.get(f"/api/campaigns/{campaign.pk}/next/")
    assert task.status_code == 200
    item_id = task.json()["item_id"]
    locked, release = threading.Event(), threading.Event()
    answers: list[Any] = []

    def body(i: int) -> None:
        if i == 0:  # another writer of the item: takes its row lock, expires the lease, commits
            with transaction.atomic():
                list(Item.objects.select_for_update().filter(pk=item_id).values_list("pk"))
                locked.set()
                assert release.wait(timeout=30)
                Assignment.objects.filter(item_id=item_id).update(status=AssignmentStatus.EXPIRED)
        elif i == 1:  # the contributor's submit, sent while the item is locked
            assert locked.wait(timeout=30)
            if way == "api":
                answers.append(
                    client.post(
                        f"/api/items/{item_id}/annotations/", {"label": "cat"}, format="json"
                    )
                )
            else:
                answers.append(
                    annotation_submit_label_for_token(key=key, item_id=item_id, label="cat")
                )
        else:  # lets the writer commit once the submit has had time to reach the database
            assert locked.wait(timeout=30)
            time.sleep(0.5)
            assert answers == [], "the submit did not wait for the item's lock"
            release.set()

    errors = run_together(3, body)
    assert errors == []
    assert len(answers) == 1
    if way == "api":
        assert answers[0].status_code == 409, answers[0].content
        assert answers[0].json()["error"]["code"] == "lease_expired"
    else:
        assert answers[0] is None
    assert not Annotation.objects.filter(item_id=item_id).exists()
    assert Item.objects.get(pk=item_id).label_count == 0
    assert campaign_label_count(campaign_id=campaign.pk) == 0
