"""Celery tasks of the rewards app: thin, safe to rerun; the beat runs ``rewards.tick``.

Chain work is never retried by Celery itself: every step is a row, and the next tick (every
``KYODO_CHAIN_POLL_SECONDS``) picks up whatever a failed or killed run left.
"""

from __future__ import annotations

from typing import Any

from celery import shared_task
from django.db import OperationalError

from . import services


@shared_task(
    name="rewards.account_item",
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=5,
    time_limit=60,
)
def account_item(item_id: int) -> None:
    """Kept for messages queued before `rewards.account_items` (one per batch) replaced it."""
    services.rewards_account_item(item_id=item_id)


@shared_task(
    name="rewards.account_items",
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=5,
    time_limit=120,
)
def account_items(item_ids: list[int]) -> int:
    return services.rewards_account_items(item_ids=item_ids)


@shared_task(name="rewards.outbox_process", time_limit=300, soft_time_limit=240)
def outbox_process() -> dict[str, Any]:
    result = services.outbox_process()
    return {"sent": result.sent, "confirmed": result.confirmed, "failed": result.failed}


@shared_task(name="rewards.settle_tick", time_limit=900, soft_time_limit=840)
def settle_tick() -> int | None:
    epoch = services.settle_tick()
    return None if epoch is None else epoch.number


@shared_task(name="rewards.watch_chain", time_limit=300, soft_time_limit=240)
def watch_chain() -> int:
    return services.chain_watch().events


@shared_task(name="rewards.tick", time_limit=900, soft_time_limit=840)
def tick() -> None:
    """The beat's one entry: record events, move transactions, move the epoch, batch the
    relayed claims asked for since the last tick, send what was queued."""
    services.chain_watch()
    services.outbox_process()
    services.settle_tick()
    services.claim_batches_build()
    services.outbox_process()


@shared_task(name="rewards.resolve_pending", time_limit=300, soft_time_limit=240)
def resolve_pending() -> tuple[int, int]:
    """Held rewards of workers judged since: accepted for the trusted, rejected for spammers."""
    return services.rewards_resolve_all_pending()
