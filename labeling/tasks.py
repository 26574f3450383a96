from __future__ import annotations

from celery import shared_task
from django.db import OperationalError

from . import services
from .services import imports


@shared_task(name="labeling.expire_leases", time_limit=120)
def expire_leases() -> int:
    total = 0
    # Bounded batches: a backlog drains over successive beats instead of one long transaction.
    for _ in range(20):
        n = services.leases_expire(limit=1000)
        total += n
        if n < 1000:
            break
    return total


@shared_task(
    name="labeling.run_import",
    autoretry_for=(OSError, OperationalError),
    retry_backoff=True,
    max_retries=8,
    acks_late=True,
    time_limit=6 * 3600,
)
def run_import(job_id: int) -> None:
    imports.import_job_run(job_id=job_id)
