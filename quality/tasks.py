from __future__ import annotations

from celery import shared_task
from django.db import OperationalError

from . import services


@shared_task(
    name="quality.update_item",
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=5,
    time_limit=60,
)
def update_item(item_id: int) -> None:
    services.item_consensus_update(item_id=item_id)
