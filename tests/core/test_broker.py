"""core.broker: the Redis transport keeps one client per channel, and messages still arrive."""

from __future__ import annotations

import os
from typing import Any
from unittest import mock

import pytest
import redis
from kombu import Connection, Exchange, Queue
from kombu.transport import redis as kombu_redis

from core.broker import Channel, Transport

from ..conftest import need_service

QUEUE = "kyodo-test-broker"


@pytest.fixture
def redis_url() -> str:
    url = os.environ.get("REDIS_URL", "")
    if not url.startswith("redis://"):
        need_service("redis", "REDIS_URL is not a redis:// URL")
    try:
        redis.Redis.from_url(url).delete(QUEUE)  # what an interrupted run may have left
    except redis.RedisError as exc:
        need_service("redis", str(exc))
    return url


def test_settings_choose_the_transport_for_a_redis_broker() -> None:
    from config.celery import app

    if not app.conf.broker_url.startswith("redis://"):
        pytest.skip("the broker here is not Redis")
    assert app.conf.broker_transport == "core.broker:Transport"
    conn: Any = app.connection_for_write()
    with conn:
        assert isinstance(conn.default_channel, Channel)


def test_one_client_for_many_publishes_and_every_message_arrives(redis_url: str) -> None:
    queue = Queue(QUEUE, Exchange(QUEUE), QUEUE)
    made: list[object] = []
    original = kombu_redis.Channel._create_client

    def counting(self: Any, asynchronous: bool = False) -> object:
        client = original(self, asynchronous)
        if not asynchronous:  # the publishing client; the asynchronous one is the consumer's
            made.append(client)
        return client

    conn: Any = Connection(redis_url, transport=Transport)  # type: ignore[arg-type]
    with conn, mock.patch.object(kombu_redis.Channel, "_create_client", counting):
        channel = conn.channel()
        assert isinstance(channel, Channel)
        producer = conn.Producer(channel)
        for n in range(5):
            producer.publish({"n": n}, exchange=queue.exchange, routing_key=QUEUE, declare=[queue])
        # kombu's own channel makes one client per publish; ours one for all of them.
        assert len(made) == 1
        got = []
        with conn.SimpleQueue(queue) as simple:
            for _ in range(5):
                message = simple.get(timeout=5)
                got.append(message.payload["n"])
                message.ack()
        channel.close()
    assert sorted(got) == [0, 1, 2, 3, 4]
    assert redis.Redis.from_url(redis_url).llen(QUEUE) == 0
