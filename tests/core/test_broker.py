"""core.broker: the Redis transport keeps one client per channel, and messages still arrive."""

from __future__ import annotations

import os

import pytest
import redis
from kombu import Connection, Exchange, Queue

from core.broker import Channel, Transport

from ..conftest import need_service


@pytest.fixture
def redis_url() -> str:
    url = os.environ.get("REDIS_URL", "")
    if not url.startswith("redis://"):
        need_service("redis", "REDIS_URL is not a redis:// URL")
    try:
        redis.Redis.from_url(url).ping()
    except redis.RedisError as exc:
        need_service("redis", str(exc))
    return url


def test_settings_choose_the_transport_for_a_redis_broker() -> None:
    from config.celery import app

    if not app.conf.broker_url.startswith("redis://"):
        pytest.skip("the broker here is not Redis")
    assert app.conf.broker_transport == "core.broker:Transport"
    with app.connection_for_write() as conn:
        assert isinstance(conn.default_channel, Channel)


def test_one_client_for_many_publishes_and_every_message_arrives(redis_url: str) -> None:
    queue = Queue("kyodo-test-broker", Exchange("kyodo-test-broker"), "kyodo-test-broker")
    with Connection(redis_url, transport=Transport) as conn:
        channel = conn.channel()
        assert isinstance(channel, Channel)
        producer = conn.Producer(channel)
        made: list[object] = []
        original = Channel.__mro__[1]._create_client

        def counting(self: Channel, asynchronous: bool = False) -> object:
            client = original(self, asynchronous)
            made.append(client)
            return client

        try:
            Channel.__mro__[1]._create_client = counting  # type: ignore[method-assign]
            for n in range(5):
                producer.publish({"n": n}, exchange=queue.exchange, routing_key="kyodo-test-broker",
                                 declare=[queue], serializer="json")  # fmt: skip
        finally:
            Channel.__mro__[1]._create_client = original  # type: ignore[method-assign]
        assert len(made) == 1
        got = []
        with conn.SimpleQueue(queue) as simple:
            for _ in range(5):
                message = simple.get(timeout=5)
                got.append(message.payload["n"])
                message.ack()
        assert sorted(got) == [0, 1, 2, 3, 4]
        channel.close()
    raw = redis.Redis.from_url(redis_url)
    assert raw.llen("kyodo-test-broker") == 0
