"""core.batches on real Redis: ids gather in one set, one drain is queued for them, a drain takes
a batch and queues the next while ids remain, a failed drain keeps its ids for its retry, and two
drains take disjoint ids. The drain messages are recorded here instead of sent (a real worker
drains real batches: tests/integration/test_celery_worker.py)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from celery import current_app

from core import batches as batches_module
from core.batches import BATCHES

from ..conftest import need_service


class Sent:
    """The messages `current_app.signature(...).apply_async()` would have sent: (name, args)."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, tuple[Any, ...]]] = []
        self.countdowns: list[float] = []

    def signature(self, name: str, args: tuple[Any, ...] = ()) -> Any:
        sent = self

        class _Signature:
            def apply_async(self, countdown: float = 0.0) -> None:
                sent.messages.append((name, args))
                sent.countdowns.append(countdown)

        return _Signature()


@pytest.fixture
def task(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Sent, redis.Redis]]:
    url = os.environ.get("REDIS_URL", "")
    if not url.startswith("redis://"):
        need_service("redis", "REDIS_URL is not a redis:// URL")
    try:
        redis.Redis.from_url(url).ping()
    except redis.RedisError as exc:
        need_service("redis", str(exc))
    assert current_app.conf.broker_transport == "core.broker:Transport"
    monkeypatch.setattr(current_app.conf, "task_always_eager", False)
    sent = Sent()
    monkeypatch.setattr(batches_module, "current_app", _App(sent))
    name = f"test.batch-{uuid.uuid4().hex[:8]}"
    client = batches_module.broker_redis()
    assert client is not None
    yield name, sent, client
    for key in client.scan_iter(f"kyodo:batch:{name}:*"):
        client.delete(key)


class _App:
    """current_app with signature() recorded and the real configuration."""

    def __init__(self, sent: Sent) -> None:
        self.signature = sent.signature
        self.conf = current_app.conf


def test_ids_gather_and_one_drain_is_queued(
    task: tuple[str, Sent, redis.Redis], settings: Any
) -> None:
    settings.KYODO_BATCH_LINGER_SECONDS = 0.25
    name, sent, _ = task
    for item_id in (3, 1, 2, 3):
        BATCHES.add(name, item_id)
    assert sent.messages == [(name, ())]  # one drain for all four adds
    assert sent.countdowns == [0.25]  # due after the linger: more may gather
    assert BATCHES.pending(name) == 3  # a set: 3 is there once
    with BATCHES.draining(name, "drain-1", limit=100) as ids:
        assert ids == [1, 2, 3]
        assert BATCHES.pending(name) == 0
    assert sent.messages == [(name, ())]  # nothing left: no next drain
    BATCHES.add(name, 4)  # the drain started: the next add queues the next drain
    assert sent.messages == [(name, ()), (name, ())]


def test_a_drain_takes_at_most_its_limit_and_queues_the_next(
    task: tuple[str, Sent, redis.Redis],
) -> None:
    name, sent, _ = task
    for item_id in range(10):
        BATCHES.add(name, item_id)
    with BATCHES.draining(name, "drain-1", limit=4) as first:
        assert len(first) == 4
        # Six left, a full batch among them: the next drain is queued now, at once, for
        # another process to take while this one works.
        assert len(sent.messages) == 2
        assert sent.countdowns[1] == 0.0
    assert len(sent.messages) == 2  # it is queued already: no second one at the end
    with BATCHES.draining(name, "drain-2", limit=100) as second:
        assert sorted(first + second) == list(range(10))


def test_a_failed_drain_keeps_its_ids_for_its_retry(task: tuple[str, Sent, redis.Redis]) -> None:
    name, _, client = task
    for item_id in (5, 6):
        BATCHES.add(name, item_id)
    taken: list[int] = []

    def fail() -> None:
        with BATCHES.draining(name, "drain-1", limit=100) as ids:
            taken.extend(ids)
            raise RuntimeError("the database went away")

    with pytest.raises(RuntimeError):
        fail()
    assert taken == [5, 6]
    BATCHES.add(name, 7)
    # The retry (Celery keeps the task id) takes the same ids again, not the new one.
    with BATCHES.draining(name, "drain-1", limit=100) as again:
        assert again == [5, 6]
    assert client.exists(f"kyodo:batch:{name}:inflight:drain-1") == 0
    with BATCHES.draining(name, "drain-2", limit=100) as rest:
        assert rest == [7]


def test_two_drains_take_disjoint_ids(task: tuple[str, Sent, redis.Redis]) -> None:
    name, _, _ = task
    for item_id in range(20):
        BATCHES.add(name, item_id)
    with (
        BATCHES.draining(name, "a", limit=10) as a,
        BATCHES.draining(name, "b", limit=10) as b,
    ):
        assert set(a).isdisjoint(b)
        assert sorted(a + b) == list(range(20))


def test_an_eager_app_sends_each_id_as_its_own_message(
    task: tuple[str, Sent, redis.Redis], monkeypatch: pytest.MonkeyPatch
) -> None:
    name, sent, _ = task
    monkeypatch.setattr(current_app.conf, "task_always_eager", True)
    BATCHES.add(name, 9)
    assert sent.messages == [(name, ([9],))]
    assert BATCHES.pending(name) == 0
