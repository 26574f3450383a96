from __future__ import annotations

from django.conf import settings
from django.db import models

from core.fields import TokenAmountField


class RewardStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    ACCEPTED = "accepted", "Accepted"
    REJECTED = "rejected", "Rejected"


class RewardEntry(models.Model):
    """The ledger: one row per annotation, written once when its item closes."""

    worker = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="reward_entries"
    )
    campaign_id = models.BigIntegerField()
    item_id = models.BigIntegerField()
    # Unique: this is what makes accounting exactly-once however often the task runs.
    annotation_id = models.BigIntegerField(unique=True)
    amount = TokenAmountField()
    status = models.CharField(
        max_length=16, choices=RewardStatus.choices, default=RewardStatus.PENDING
    )
    reason = models.CharField(max_length=64, blank=True)
    epoch = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [
            models.Index(fields=["worker", "status"], name="reward_worker_status"),
            models.Index(fields=["campaign_id", "status"], name="reward_campaign_status"),
            models.Index(fields=["item_id"], name="reward_item"),
        ]

    def __str__(self) -> str:
        return (
            f"{self.amount} to {self.worker_id} for annotation {self.annotation_id} ({self.status})"
        )
