"""The Redis broker transport, with one Redis client per channel instead of one per message.

kombu's Redis channel builds a new `redis.Redis` client for every message it publishes, and
redis-py fills a table of some 170 response callbacks for each client it builds: about a sixth of
the CPU a publish costs, and every submitted label publishes one (bench/README.md, "Next task").
A `redis.Redis` is safe to share (its connections come from the channel's pool), so the channel
keeps the first one. The asynchronous client (the worker's BRPOP) is left as kombu makes it.

Chosen by `CELERY_BROKER_TRANSPORT` when the broker URL is a Redis one (config/settings).
"""

from __future__ import annotations

from typing import Any

from kombu.transport import redis


class Channel(redis.Channel):
    _shared_client: Any = None

    def _create_client(self, asynchronous: bool = False) -> Any:
        if asynchronous:
            return super()._create_client(asynchronous=True)
        if self._shared_client is None:
            self._shared_client = super()._create_client()
        return self._shared_client


class Transport(redis.Transport):
    Channel = Channel
