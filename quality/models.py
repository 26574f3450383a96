from __future__ import annotations

from django.conf import settings
from django.db import models


class ItemConsensus(models.Model):
    """The current decision on one item: its label, how sure we are, and how it was decided."""

    # Item lives in labeling; referenced by id only so quality never writes labeling's tables.
    item_id = models.BigIntegerField(unique=True)
    campaign_id = models.BigIntegerField(db_index=True)
    label = models.CharField(max_length=200)
    confidence = models.FloatField()
    n_labels = models.PositiveSmallIntegerField()
    method = models.CharField(max_length=40)
    model_version = models.CharField(max_length=64, blank=True)
    # Weights given to each label (per class) and, for explanations, to each annotator.
    votes = models.JSONField(default=dict)
    is_complete = models.BooleanField(default=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["campaign_id", "is_complete", "item_id"], name="consensus_campaign_done"
            )
        ]

    def __str__(self) -> str:
        return f"item {self.item_id}: {self.label} ({self.confidence:.2f})"


class WorkerSkill(models.Model):
    worker = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="skills"
    )
    campaign_id = models.BigIntegerField()
    accuracy = models.FloatField(default=0.0)
    confusion = models.JSONField(default=dict)
    gold_seen = models.PositiveIntegerField(default=0)
    gold_passed = models.PositiveIntegerField(default=0)
    spam_score = models.FloatField(default=0.0)
    status = models.CharField(max_length=16, default="active")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["worker", "campaign_id"], name="skill_unique_worker_campaign"
            )
        ]

    def __str__(self) -> str:
        return f"worker {self.worker_id} in campaign {self.campaign_id}"
