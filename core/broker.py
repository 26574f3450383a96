"""The Redis broker transport, with one Redis client per channel instead of one per message.

kombu's Redis channel builds a new `redis.Redis` client for every message it publishes, and
redis-py fills a table of some 170 response callbacks for each client it builds: about a sixth of
the CPU a publish costs, and every submitted label publishes one (bench/README.md, "Next task").
A `redis.Redis` is safe to share (its connections come from the channel's pool), so the channel
keeps the first one. The asynchronous client (the worker's BRPOP) is left as kombu makes it.

While core.publish captures a message template, the channel holds back the LPUSH instead.

Chosen by `CELERY_BROKER_TRANSPORT` when the broker URL is a Redis one (config/settings).
"""

from __future__ import annotations

from typing import Any

from kombu.transport import redis

from .publish import HELD


class Channel(redis.Channel):
    _shared_client: Any = None

    def _put(self, queue: str, message: dict[str, Any], **kwargs: Any) -> None:
        held = HELD.get()
        if held is not None:
            # A template being captured (core.publish): the key and message kombu would LPUSH.
            # Never sent; a queue kombu gives an expiry is more than one LPUSH: no key, no template.
            expires = bool(self._expires and queue in self._expires)
            pri = self._get_message_priority(message, reverse=False)
            held.append(("" if expires else self._q_for_pri(queue, pri), message))
            return
        super()._put(queue, message, **kwargs)

    def _create_client(self, asynchronous: bool = False) -> Any:
        if asynchronous:
            return super()._create_client(asynchronous=True)
        if self._shared_client is None:
            self._shared_client = super()._create_client()
        return self._shared_client


class Transport(redis.Transport):
    Channel = Channel
