"""Staff decisions about a contributor's standing in a campaign."""

from __future__ import annotations

from django.db import transaction

from labeling import services as labeling_services

from ..models import WorkerSkill, WorkerStatus


def next_status(before: str | None, *, spammer: bool, trusted: bool) -> tuple[str, bool, bool]:
    """A refit's verdict on one worker: (status, give the suspension reason, newly suspended).
    Suspension and trust are sticky: staff lift a suspension in the admin; a trusted worker found
    spamming is still suspended. Classification and bounding-box refits both use it."""
    if before == WorkerStatus.SUSPENDED:
        return WorkerStatus.SUSPENDED, True, False
    if spammer:
        return WorkerStatus.SUSPENDED, True, True
    if trusted or before == WorkerStatus.TRUSTED:
        return WorkerStatus.TRUSTED, False, False
    return WorkerStatus.PROBATION, False, False


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
