from __future__ import annotations

from celery import shared_task

from . import services


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
