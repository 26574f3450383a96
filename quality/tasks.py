from __future__ import annotations

from typing import Any

from celery import Task, shared_task
from django.conf import settings
from django.db import OperationalError

from core.batches import BATCHES
from labeling import selectors as labeling_selectors

from . import services
from .models import CampaignQuality


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
    """The beat: one refit task per campaign with enough new labels since its last refit."""
    fitted = dict(CampaignQuality.objects.values_list("campaign_id", "labels_at_fit"))
    due = 0
    for campaign_id, labels in labeling_selectors.campaigns_with_labels():
        if labels - fitted.get(campaign_id, 0) >= settings.KYODO_QUALITY_REFIT_MIN_NEW_LABELS:
            refit_campaign.delay(campaign_id)
            due += 1
    return due
