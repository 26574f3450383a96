from __future__ import annotations

from celery import shared_task

from . import pins

# Bounded work per run: a backlog (a 10,000-image ingest) drains over chained runs instead of one
# task that outlives its time limit.
RUN_LIMIT = 500


@shared_task(name="storage.ensure_pins", time_limit=30 * 60, soft_time_limit=25 * 60)
def ensure_pins() -> dict[str, int]:
    """Pin what is due. Rerunning is harmless: rows are claimed, pinned rows are never redone."""
    result = pins.pins_process_due(limit=RUN_LIMIT)
    if result.pinned + result.failed >= RUN_LIMIT and not result.stopped_early:
        ensure_pins.delay()
    return {"pinned": result.pinned, "failed": result.failed}
