"""core.publish: a prepared publish pushes the message Celery's apply_async would, with fresh ids,
to the key it would; everything it cannot prepare goes through apply_async. On real Redis (a real
worker consuming prepared messages: tests/integration/test_celery_worker.py)."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from typing import Any, cast

import pytest
import redis
from celery import current_app
from celery.signals import after_task_publish

from core import publish as publish_module
from core.publish import Publisher

from ..conftest import need_service

TASK = "quality.update_item"  # routed to the "quality" queue


@pytest.fixture
def broker(monkeypatch: pytest.MonkeyPatch) -> Iterator[redis.Redis]:
    """The Redis broker with the app not eager; the messages a test pushes are taken off again."""
    url = os.environ.get("REDIS_URL", "")
    if not url.startswith("redis://"):
        need_service("redis", "REDIS_URL is not a redis:// URL")
    client = redis.Redis.from_url(url)
    try:
        before = client.llen("quality")
    except redis.RedisError as exc:
        need_service("redis", str(exc))
    assert current_app.conf.broker_transport == "core.broker:Transport"
    monkeypatch.setattr(current_app.conf, "task_always_eager", False)
    yield client
    extra = client.llen("quality") - before
    if extra > 0:
        client.lpop("quality", extra)  # LPUSH puts at the head: ours are the first `extra`


def _pushed(client: redis.Redis, n: int) -> list[dict[str, Any]]:
    """The n newest messages on the quality queue, oldest first."""
    raw: list[bytes] = client.lrange("quality", 0, n - 1)  # type: ignore[assignment]
    return [json.loads(m) for m in reversed(raw)]


def _ids(message: dict[str, Any]) -> tuple[str, str, str, str]:
    headers, properties = message["headers"], message["properties"]
    return (
        headers["id"],
        headers["root_id"],
        properties["correlation_id"],
        properties["delivery_tag"],
    )


def _without_ids(message: dict[str, Any]) -> dict[str, Any]:
    headers = {k: v for k, v in message["headers"].items() if k not in ("id", "root_id")}
    properties = {
        k: v
        for k, v in message["properties"].items()
        if k not in ("correlation_id", "delivery_tag")
    }
    return {**message, "headers": headers, "properties": properties}


def test_the_prepared_message_is_celery_s_own_with_fresh_ids(broker: redis.Redis) -> None:
    current_app.signature(TASK, args=(42,)).apply_async()
    publisher = Publisher()
    publisher.publish(TASK, (42,))
    publisher.publish(TASK, (7,))
    celery_s, ours, other = _pushed(broker, 3)

    assert _without_ids(ours) == _without_ids(celery_s)
    assert json.loads(base64.b64decode(other["body"]))[0] == [7]
    assert other["headers"]["argsrepr"] == "(7,)"
    for message in (ours, other):
        task_id, root_id, correlation_id, tag = _ids(message)
        assert task_id == root_id == correlation_id
        assert task_id != tag
    assert len({_ids(m)[0] for m in (celery_s, ours, other)}) == 3
    assert len({_ids(m)[3] for m in (celery_s, ours, other)}) == 3
    assert publish_module._ID not in json.dumps([ours, other])
    assert str(publish_module._ARG) not in json.dumps([ours, other])


def test_the_template_is_captured_once_and_never_sent(broker: redis.Redis) -> None:
    calls: list[str] = []
    original = publish_module._capture

    def counting(task_name: str) -> Any:
        calls.append(task_name)
        return original(task_name)

    publisher = Publisher()
    before = broker.llen("quality")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(publish_module, "_capture", counting)
        for n in range(3):
            publisher.publish(TASK, (n,))
    assert calls == [TASK]
    assert broker.llen("quality") - before == 3  # the three publishes, not the capture
    assert [json.loads(base64.b64decode(m["body"]))[0] for m in _pushed(broker, 3)] == [
        [0],
        [1],
        [2],
    ]


@pytest.mark.parametrize("args", [("42",), (True,), (4.0,)])
def test_other_arguments_go_through_apply_async(
    broker: redis.Redis, args: tuple[Any, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(publish_module, "_capture", _no_capture)
    Publisher().publish(TASK, args)
    (message,) = _pushed(broker, 1)
    assert json.loads(base64.b64decode(message["body"]))[0] == list(args)


def test_an_eager_app_runs_the_task_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[tuple[Any, ...]] = []

    class Signature:
        def __init__(self, name: str, args: tuple[Any, ...]) -> None:
            self.args = args

        def apply_async(self) -> None:
            ran.append(self.args)

    monkeypatch.setattr(current_app.conf, "task_always_eager", True)
    monkeypatch.setattr(current_app, "signature", Signature)
    monkeypatch.setattr(publish_module, "_capture", _no_capture)
    Publisher().publish(TASK, (5,))
    assert ran == [(5,)]


def test_a_publish_signal_receiver_gets_its_signals(
    broker: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While anything listens to Celery's publish signals, every publish is apply_async's."""
    seen: list[Any] = []

    def receiver(sender: Any = None, body: Any = None, **kwargs: Any) -> None:
        seen.append(body)

    publisher = Publisher()
    publisher.publish(TASK, (1,))  # prepared: no signal
    after_task_publish.connect(receiver)
    try:
        publisher.publish(TASK, (2,))
    finally:
        cast(Any, after_task_publish).disconnect(receiver)  # not in Celery's type stubs
    publisher.publish(TASK, (3,))
    assert [body[0] for body in seen] == [(2,)]
    assert [json.loads(base64.b64decode(m["body"]))[0] for m in _pushed(broker, 3)] == [
        [1],
        [2],
        [3],
    ]


def test_a_redis_error_falls_back_to_apply_async(
    broker: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The prepared LPUSH failed (nothing pushed): apply_async sends it, with Celery's retries."""
    publisher = Publisher()
    publisher.publish(TASK, (1,))  # prepared
    assert publisher._client is not None

    def refuse(*args: Any) -> None:
        raise redis.ConnectionError("refused")

    monkeypatch.setattr(publisher._client, "lpush", refuse)
    publisher.publish(TASK, (2,))
    assert [json.loads(base64.b64decode(m["body"]))[0] for m in _pushed(broker, 2)] == [[1], [2]]


def _no_capture(task_name: str) -> Any:
    raise AssertionError("no template should be needed")
