from __future__ import annotations

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
    services.rewards_account_item(item_id=item_id)
