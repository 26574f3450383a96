"""A task with one id argument published as one prepared Redis LPUSH, not through apply_async.

Why: every submitted label publishes `quality.update_item`, and Celery's apply_async (signature,
routing, the message's build, kombu's producer, its declare cache and channel) cost ~0.40 ms of
CPU per call here, against ~0.07 ms for the LPUSH it ends in: on the hot path that was a third of
a submit's CPU in the web process (bench/README.md, "Next task").

The message stays Celery's own. Once per process and task, a real apply_async runs with a marker
id and argument, and our Redis channel (core.broker) holds back the LPUSH it ends in; what it
held is the template. Each publish fills in a fresh task id (as id, root_id and correlation_id,
which Celery sets alike for a task without a parent), a fresh delivery tag and the argument,
and pushes to the key kombu would have used. Anything else goes through apply_async: an eager
app (tests), another broker (the demo's folder, memory), a queue kombu would give an expiry, an
argument that is not one int, and a Redis error (apply_async then retries by Celery's policy,
and raises kombu's OperationalError when the broker stays down), and every publish while
anything listens to Celery's `before_task_publish` or `after_task_publish` (a prepared publish
sends no signals; nothing in Kyodo listens to them).
"""

from __future__ import annotations

import base64
import json
import os
import threading
from contextvars import ContextVar
from typing import Any
from uuid import uuid4

import redis
from celery import current_app
from celery.signals import after_task_publish, before_task_publish

# The channel's LPUSHes are held here, not sent, while a template is being captured.
HELD: ContextVar[list[tuple[str, dict[str, Any]]] | None] = ContextVar("held", default=None)

_ID = "00000000-4b59-4f44-8000-6b796f646f21"  # marker task id: never a uuid4
_ARG = 987_654_321_987_654_321  # marker argument


class _Prepared:
    """One task's message with the marker's places to fill, and its Redis key."""

    __slots__ = ("body", "key", "text")

    def __init__(self, key: str, message: dict[str, Any]) -> None:
        body = base64.b64decode(message["body"]).decode()
        if body.count(str(_ARG)) != 1:
            raise ValueError("the marker argument is not in the body once")
        self.key = key
        self.body = body.split(str(_ARG))
        message = {**message, "body": "@body@", "headers": dict(message["headers"])}
        message["headers"]["argsrepr"] = "@argsrepr@"
        properties = dict(message["properties"])
        properties["delivery_tag"] = "@tag@"
        message["properties"] = properties
        text = json.dumps(message)
        if text.count(_ID) != 3:  # id, root_id, correlation_id
            raise ValueError("the marker id is not where Celery puts it")
        self.text = text

    def message(self, arg: int) -> str:
        body = base64.b64encode(str(arg).join(self.body).encode()).decode()
        return (
            self.text.replace(_ID, str(uuid4()))
            .replace("@body@", body)
            .replace("@argsrepr@", f"({arg},)")
            .replace("@tag@", str(uuid4()))
        )


class Publisher:
    """Prepared publishes, per process (a forked worker captures its own: `origin` names it)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pid = 0
        self._prepared: dict[str, _Prepared | None] = {}
        self._client: redis.Redis | None = None

    def publish(self, task_name: str, args: tuple[Any, ...]) -> None:
        # Read on every call: tests switch eagerness, and a receiver may connect at any time.
        eager = current_app.conf.task_always_eager
        plain = _one_int(args) and not _signals_listened()
        prepared = self._get(task_name) if plain and not eager else None
        if prepared is not None and self._client is not None:
            try:
                self._client.lpush(prepared.key, prepared.message(args[0]))
                return
            except redis.RedisError:
                pass  # apply_async: Celery's retry policy and its error
        current_app.signature(task_name, args=args).apply_async()

    def _get(self, task_name: str) -> _Prepared | None:
        if self._pid == os.getpid() and task_name in self._prepared:
            return self._prepared[task_name]
        with self._lock:
            if self._pid != os.getpid():
                self._pid, self._prepared, self._client = os.getpid(), {}, _client()
            if task_name not in self._prepared:
                self._prepared[task_name] = _capture(task_name) if self._client else None
            return self._prepared[task_name]


def _signals_listened() -> bool:
    # `receivers` is the list Celery's Signal keeps (its type stubs do not name it).
    return any(getattr(s, "receivers", None) for s in (before_task_publish, after_task_publish))


def _one_int(args: tuple[Any, ...]) -> bool:
    return len(args) == 1 and type(args[0]) is int


def _client() -> redis.Redis | None:
    """A client of the broker's Redis, when the broker is core.broker's transport (else None)."""
    conf = current_app.conf
    if conf.broker_transport != "core.broker:Transport":
        return None
    if (conf.broker_transport_options or {}).get("global_keyprefix"):
        return None  # kombu would prefix every key
    client: redis.Redis = redis.Redis.from_url(conf.broker_url)
    return client


def _capture(task_name: str) -> _Prepared | None:
    held: list[tuple[str, dict[str, Any]]] = []
    token = HELD.set(held)
    try:
        current_app.signature(task_name, args=(_ARG,)).apply_async(task_id=_ID)
    finally:
        HELD.reset(token)
    if len(held) != 1 or not held[0][0]:
        return None
    key, message = held[0]
    try:
        return _Prepared(key, message)
    except (KeyError, ValueError):
        return None


PUBLISHER = Publisher()
