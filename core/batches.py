"""Ids handed to one task in batches: a Redis set of pending ids, drained by one task at a time.

Why: every submitted label asks for its item's quality update. One Celery message and one task
run per label cost the worker ~15 ms of CPU per label, most of it per-task overhead and the
same queries again for every item (bench/README.md, "The whole pipeline"). Here a label adds its
item's id to a set; one task takes whatever has gathered since the last one and updates those
items together, with a fixed number of queries. Under load the batches grow by themselves; a
quiet campaign gets batches of one, at once.

The protocol, for a task `T` (keys `kyodo:batch:T:*` on the broker's Redis):

- `add(T, id)`, one script, one round trip: SADD the id to `pending`; SET `armed` NX with an
  expiry. When the SET took, nobody had a drain queued: publish one message of `T` with no
  arguments, due after the linger (KYODO_BATCH_LINGER_SECONDS), so that a batch gathers what
  comes in meanwhile.
- A drain (`draining(T, task_id)`) deletes `armed` first, so that any later add queues the next
  drain, then moves up to `limit` ids from `pending` to `inflight:<task id>` (one script) and
  yields them. When a full batch still waits, it queues the next drain at once, so that a
  backlog is drained by as many processes as there are. After the work has committed it
  deletes `inflight:<task id>`, and queues another drain if ids are still pending and none is
  queued (at once when a full batch waits, else after the linger).
- A drain that fails or dies keeps its `inflight` set. Celery redelivers the message (acks late,
  reject on worker lost) or retries it with the same task id, and the drain takes those ids
  again before any new ones. A message lost for good (its inflight set expires after a day, an
  `armed` flag whose message vanished expires after ARM_SECONDS) is repaired by the task's own
  sweep (quality's: quality/services/sweep.py): the ids are only a hint, the rows are the truth.

Drains run at once on as many worker processes as there are (a backlog spawns them; under load
every drain that starts lets the next add queue another): each takes a disjoint set of ids.

Without the broker's Redis (an eager app in tests, the demo's folder broker) `add` sends the id
at once as a message of its own, `T([id])`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

import redis
from celery import current_app
from django.conf import settings
from django.db import transaction
from kombu.exceptions import OperationalError
from redis.commands.core import Script

log = logging.getLogger(__name__)

ARM_SECONDS = 60  # a drain queued but not started for this long is queued again
INFLIGHT_SECONDS = 24 * 3600

_ADD = """
redis.call('SADD', KEYS[1], ARGV[1])
return redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[2])
"""

_TAKE = """
redis.call('DEL', KEYS[1])
local held = redis.call('SMEMBERS', KEYS[3])
if #held > 0 then return held end
local ids = redis.call('SPOP', KEYS[2], ARGV[1])
if #ids > 0 then
  redis.call('SADD', KEYS[3], unpack(ids))
  redis.call('EXPIRE', KEYS[3], ARGV[2])
end
if redis.call('SCARD', KEYS[2]) >= tonumber(ARGV[1])
   and redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[3]) then
  table.insert(ids, 1, 'spawn')
end
return ids
"""

_DONE = """
redis.call('DEL', KEYS[1])
local pending = redis.call('SCARD', KEYS[2])
if pending == 0 then return -1 end
if not redis.call('SET', KEYS[3], '1', 'NX', 'EX', ARGV[1]) then return -1 end
return pending
"""


def _keys(task_name: str) -> tuple[str, str]:
    base = f"kyodo:batch:{task_name}"
    return f"{base}:pending", f"{base}:armed"


def _inflight(task_name: str, task_id: str) -> str:
    return f"kyodo:batch:{task_name}:inflight:{task_id}"


_BROKER: dict[tuple[int, str, str], redis.Redis | None] = {}


def broker_redis() -> redis.Redis | None:
    """The broker's Redis, one client per process, or None when the broker is not core.broker's
    Redis transport (the demo's folder broker) or kombu would prefix its keys."""
    conf = current_app.conf
    key = (os.getpid(), str(conf.broker_url), str(conf.broker_transport))
    if key not in _BROKER:
        usable = conf.broker_transport == "core.broker:Transport" and not (
            (conf.broker_transport_options or {}).get("global_keyprefix")
        )
        _BROKER[key] = redis.Redis.from_url(conf.broker_url) if usable else None
    return _BROKER[key]


class Batches:
    """The scripts, registered once per process on the broker's client."""

    def __init__(self) -> None:
        self._client: redis.Redis | None = None
        self._scripts: dict[str, Script] = {}

    def _script(self, name: str, source: str) -> Script | None:
        client = broker_redis()
        if client is None:
            return None
        if client is not self._client:
            self._client, self._scripts = client, {}
        if name not in self._scripts:
            self._scripts[name] = client.register_script(source)
        return self._scripts[name]

    def add(self, task_name: str, item_id: int) -> None:
        """Hand one id to the task's next batch (or, without the broker's Redis, to a message
        of its own). Raises kombu's OperationalError or redis' RedisError when the broker
        cannot be reached."""
        add = None if current_app.conf.task_always_eager else self._script("add", _ADD)
        if add is None:
            current_app.signature(task_name, args=([item_id],)).apply_async()
            return
        pending, armed = _keys(task_name)
        if add(keys=[pending, armed], args=[item_id, ARM_SECONDS]):
            _publish_drain(task_name, countdown=linger())

    @contextmanager
    def draining(self, task_name: str, task_id: str, *, limit: int) -> Iterator[list[int]]:
        """The ids of this drain (those a failed run of the same task id held, else up to
        `limit` pending ones); forgotten, and the next drain queued, when the block succeeds."""
        take = self._script("take", _TAKE)
        done = self._script("done", _DONE)
        if take is None or done is None:
            yield []
            return
        pending, armed = _keys(task_name)
        inflight = _inflight(task_name, task_id)
        raw = take(keys=[armed, pending, inflight], args=[limit, INFLIGHT_SECONDS, ARM_SECONDS])
        if raw and raw[0] == b"spawn":
            # Another full batch waits: its drain starts now, on another process if there is one.
            _publish_drain(task_name, countdown=0.0)
            raw = raw[1:]
        yield sorted(int(x) for x in raw)
        left = int(done(keys=[inflight, pending, armed], args=[ARM_SECONDS]))
        if left >= 0:
            # A full batch waiting already: at once; else the next gathers for the linger.
            _publish_drain(task_name, countdown=0.0 if left >= limit else linger())

    def pending(self, task_name: str) -> int:
        """How many ids wait for a drain (0 without the broker's Redis): for metrics and tests."""
        client = broker_redis()
        return 0 if client is None else int(client.scard(_keys(task_name)[0]))


BATCHES = Batches()


def linger() -> float:
    """KYODO_BATCH_LINGER_SECONDS: how long a drain waits after the first id of its batch came
    in, for more to gather. Longer: bigger batches, less per-batch work per label; the lag from
    a label to its batch grows by as much."""
    return max(0.0, float(settings.KYODO_BATCH_LINGER_SECONDS))


def _publish_drain(task_name: str, *, countdown: float) -> None:
    signature = current_app.signature(task_name)
    if countdown > 0:
        signature.apply_async(countdown=countdown)
    else:
        signature.apply_async()


def enqueue_batched_on_commit_or_log(task_name: str, item_id: int) -> None:
    """Once the surrounding transaction commits, hand `item_id` to the task's next batch (above).
    When the broker cannot be reached the error is logged, not raised: the caller's write has
    committed and its answer should say so; the task's sweep sends the id again."""

    def add() -> None:
        try:
            BATCHES.add(task_name, item_id)
        except (OperationalError, redis.RedisError):
            log.exception("could not queue %s for %s; its sweep sends it again", task_name, item_id)

    transaction.on_commit(add)
