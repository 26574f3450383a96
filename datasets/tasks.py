from __future__ import annotations

from celery import shared_task
from django.db import OperationalError

from . import services


@shared_task(
    name="datasets.build_export",
    autoretry_for=(OSError, OperationalError),
    retry_backoff=True,
    max_retries=5,
    acks_late=True,
    time_limit=6 * 3600,
)
def build_export(export_id: int) -> None:
    services.export_build(export_id=export_id)
