from __future__ import annotations

from typing import Any

from celery import Task, shared_task
from django.conf import settings
from django.db import OperationalError

from core.batches import BATCHES

from . import services


@shared_task(
    name="quality.update_item",
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=5,
    time_limit=60,
)
def update_item(item_id: int) -> None:
    """Kept for messages queued before `quality.update_items` (batches) replaced it."""
    services.item_consensus_update(item_id=item_id)


@shared_task(
    name="quality.update_items",
    bind=True,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=5,
    time_limit=120,
)
def update_items(self: Task, item_ids: list[int] | None = None) -> int:
    """The quality update of these items, or (no ids: a drain) of a batch of the items whose
    labels came in since the last drain (core.batches; a submit hands its item over there)."""
    if item_ids is not None:
        return len(services.items_consensus_update(item_ids=item_ids))
    limit = settings.KYODO_QUALITY_BATCH_MAX
    with BATCHES.draining(self.name, str(self.request.id), limit=limit) as batch:
        return len(services.items_consensus_update(item_ids=batch))


@shared_task(
    name="quality.refit_campaign",
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=3,
    time_limit=1800,
)
def refit_campaign(campaign_id: int) -> dict[str, Any] | None:
    return services.campaign_refit(campaign_id=campaign_id)


@shared_task(
    name="quality.train_model",
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=3,
    time_limit=3600,
)
def train_model(campaign_id: int) -> int | None:
    version = services.model_train(campaign_id=campaign_id)
    return None if version is None else version.version


@shared_task(name="quality.sweep_lagging", time_limit=120)
def sweep_lagging() -> int:
    """The beat: the quality update again for labels whose message was lost (services.sweep)."""
    return len(services.consensus_sweep_lagging())


@shared_task(name="quality.refit_due", time_limit=120)
def refit_due() -> int:
    """The beat: one refit task per campaign due for one (services.campaigns_refit_due)."""
    due = services.campaigns_refit_due()
    for campaign_id in due:
        refit_campaign.delay(campaign_id)
    return len(due)
