"""Staff decisions about a contributor's standing in a campaign."""

from __future__ import annotations

from django.db import transaction

from labeling import services as labeling_services

from ..models import WorkerSkill, WorkerStatus


@transaction.atomic
def worker_reinstate(*, worker_id: int, campaign_id: int) -> bool:
    """Lift a suspension: back on probation, and next-task serves the worker again.

    Returns False when the worker was not suspended. Rewards already rejected stay rejected.
    """
    lifted = WorkerSkill.objects.filter(
        worker_id=worker_id, campaign_id=campaign_id, status=WorkerStatus.SUSPENDED
    ).update(status=WorkerStatus.PROBATION, status_reason="", suspended_at=None)
    labeling_services.worker_unblock(campaign_id=campaign_id, worker_id=worker_id)
    return bool(lifted)
