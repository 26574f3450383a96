"""Barring a worker from a campaign, as the quality engine decides; next-task honours it."""

from __future__ import annotations

from core.errors import PermissionDenied

from ..models import WorkerBlock


def worker_block(*, campaign_id: int, worker_id: int, reason: str) -> None:
    """Idempotent: blocking twice keeps the first reason."""
    WorkerBlock.objects.get_or_create(
        campaign_id=campaign_id, worker_id=worker_id, defaults={"reason": reason[:200]}
    )


def worker_unblock(*, campaign_id: int, worker_id: int) -> None:
    WorkerBlock.objects.filter(campaign_id=campaign_id, worker_id=worker_id).delete()


def worker_check_not_blocked(*, campaign_id: int, worker_id: int) -> None:
    """403 `worker_suspended`, naming the reason, for a blocked worker. One indexed lookup."""
    reason = (
        WorkerBlock.objects.filter(campaign_id=campaign_id, worker_id=worker_id)
        .values_list("reason", flat=True)
        .first()
    )
    if reason is None:
        return
    raise worker_blocked_error(campaign_id=campaign_id, reason=reason)


def worker_blocked_error(*, campaign_id: int, reason: str) -> PermissionDenied:
    """403 `worker_suspended`, naming the reason."""
    return PermissionDenied(
        "you are suspended from this campaign: "
        + (reason or "your answers did not match its consensus")
        + ". Other campaigns are not affected; contact the campaign's owner if you think this "
        "is a mistake.",
        code="worker_suspended",
        extra={"campaign_id": campaign_id},
    )
