from __future__ import annotations

from typing import Any

from django.db import transaction

from accounts.models import User
from core.errors import ApplicationError

from ..models import Campaign, CampaignStatus
from ..schema import normalize_schema
from ..selectors import campaign_check_can_manage


@transaction.atomic
def campaign_create(
    *,
    owner: User,
    title: str,
    task_type: str,
    label_schema: Any,
    instructions: str = "",
    min_labels: int = 3,
    max_labels: int = 5,
    target_confidence: float = 0.95,
    gold_ratio: float = 0.0,
    reward_per_label: int = 0,
    budget: int | None = None,
    status: str = CampaignStatus.ACTIVE,
) -> Campaign:
    campaign_check_can_manage(user=owner)
    if max_labels < min_labels:
        raise ApplicationError("max_labels must be at least min_labels", code="invalid_overlap")
    if not 0.5 <= target_confidence < 1.0:
        raise ApplicationError("target_confidence must be in [0.5, 1)", code="invalid_confidence")
    if not 0.0 <= gold_ratio <= 0.5:
        raise ApplicationError("gold_ratio must be in [0, 0.5]", code="invalid_gold_ratio")
    schema = normalize_schema(label_schema, task_type=task_type)
    return Campaign.objects.create(
        owner=owner,
        title=title,
        instructions=instructions,
        task_type=task_type,
        label_schema=schema,
        min_labels=min_labels,
        max_labels=max_labels,
        target_confidence=target_confidence,
        gold_ratio=gold_ratio,
        reward_per_label=reward_per_label,
        budget=budget,
        status=status,
    )


def campaign_set_status(*, campaign: Campaign, status: str) -> Campaign:
    if status not in CampaignStatus.values:
        raise ApplicationError(f"unknown status {status!r}", code="invalid_status")
    campaign.status = status
    campaign.save(update_fields=["status"])
    return campaign
