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
    # Gold items are labeled by every contributor who meets them: no small-integer cap.
    n_labels = models.PositiveIntegerField()
    method = models.CharField(max_length=40)
    model_version = models.CharField(max_length=64, blank=True)
    # How the label was decided, for explanations: see quality.services.consensus.votes_payload.
    votes = models.JSONField(default=dict)
    is_complete = models.BooleanField(default=False)
    # The next-task priority last asked of labeling (None: never), so unchanged ones are skipped.
    priority = models.IntegerField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["campaign_id", "is_complete", "item_id"], name="consensus_campaign_done"
            )
        ]

    def __str__(self) -> str:
        return f"item {self.item_id}: {self.label} ({self.confidence:.2f})"


class WorkerStatus(models.TextChoices):
    # New to the campaign: labels count, accepted rewards wait until the worker is trusted.
    PROBATION = "probation", "On probation"
    # 95 % sure not to be a spammer (quality.aggregation.spam): accepted rewards are paid.
    TRUSTED = "trusted", "Trusted"
    # 95 % sure to be a spammer: no more tasks, accepted-but-unpaid rewards rejected.
    SUSPENDED = "suspended", "Suspended"


class WorkerSkill(models.Model):
    """One contributor in one campaign, as the last full refit saw them."""

    worker = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="skills"
    )
    campaign_id = models.BigIntegerField()
    # P(answer right) under the campaign's class priors.
    accuracy = models.FloatField(default=0.0)
    # {"classes": [...], "matrix": [[...]]}: rows the true class, columns the answer.
    confusion = models.JSONField(default=dict)
    answers = models.PositiveIntegerField(default=0)
    gold_seen = models.PositiveIntegerField(default=0)
    gold_passed = models.PositiveIntegerField(default=0)
    # Raykar-Yu spammer score of the confusion matrix: 0 a spammer, 1 a perfect worker.
    spam_score = models.FloatField(default=0.0)
    # P(spammer score >= the threshold | this worker's evidence).
    informative = models.FloatField(default=0.0)
    status = models.CharField(
        max_length=16, choices=WorkerStatus.choices, default=WorkerStatus.PROBATION
    )
    status_reason = models.CharField(max_length=200, blank=True)
    suspended_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["worker", "campaign_id"], name="skill_unique_worker_campaign"
            )
        ]
        indexes = [models.Index(fields=["campaign_id", "status"], name="skill_campaign_status")]

    def __str__(self) -> str:
        return f"worker {self.worker_id} in campaign {self.campaign_id}"


class CampaignQuality(models.Model):
    """A campaign's parameters between two full refits, and the refit and training schedule."""

    campaign_id = models.BigIntegerField(unique=True)
    classes = models.JSONField(default=list)
    class_priors = models.JSONField(default=list)
    # The confusion matrix of a worker the last refit did not see.
    default_confusion = models.JSONField(default=list)
    default_accuracy = models.FloatField(default=0.0)
    temperature = models.FloatField(default=1.0)
    # False until a refit has enough overlap to be trusted (quality.aggregation.campaign).
    calibrated = models.BooleanField(default=False)
    method = models.CharField(max_length=40, blank=True)
    model_version = models.PositiveIntegerField(null=True, blank=True)
    model_confusion = models.JSONField(null=True, blank=True)  # capped
    # The contributor the next label is valued with (policy.label_value): the median trusted
    # worker's matrix; null until the campaign is calibrated and someone is trusted.
    typical_confusion = models.JSONField(null=True, blank=True)
    stats = models.JSONField(default=dict, blank=True)
    labels_at_fit = models.PositiveIntegerField(default=0)
    # The campaign label count at which a submission asks for the next refit.
    next_refit_at = models.PositiveIntegerField(default=0)
    # No refit or training is asked for before this: the last one's CPU time, stretched so that
    # whole-campaign work takes at most KYODO_QUALITY_REFIT_CPU_SHARE of a process
    # (quality.services.params.work_pause).
    pause_until = models.DateTimeField(null=True, blank=True)
    # Confident items the next model training waits for, and the campaign's label count when the
    # last one was asked for: a training needs both more confident items and new labels
    # (quality.services.refit.training_due), so a refit that a training queued cannot queue
    # another one on its own.
    next_train_at = models.PositiveIntegerField(default=0)
    labels_at_train = models.PositiveIntegerField(default=0)
    fitted_at = models.DateTimeField(null=True, blank=True)
    # Short claims, so two copies of a task never refit or train one campaign at once.
    refit_claimed_until = models.DateTimeField(null=True, blank=True)
    train_claimed_until = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"quality of campaign {self.campaign_id}"


class ModelVersion(models.Model):
    """One trained ML model of a campaign (the model itself is not kept: its predictions are)."""

    campaign_id = models.BigIntegerField()
    version = models.PositiveIntegerField()
    kind = models.CharField(max_length=40)
    classes = models.JSONField(default=list)
    trained_on = models.PositiveIntegerField()
    # Out-of-fold accuracy against the consensus (and gold) labels it was trained on.
    oof_accuracy = models.FloatField()
    predicted = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["campaign_id", "version"], name="model_unique_campaign_version"
            )
        ]

    def __str__(self) -> str:
        return f"model v{self.version} of campaign {self.campaign_id}"


class ItemPrediction(models.Model):
    """The latest model's class for one item, predicted by a model that never saw its label."""

    item_id = models.BigIntegerField(unique=True)
    campaign_id = models.BigIntegerField()
    version = models.PositiveIntegerField()
    label = models.CharField(max_length=200)
    probability = models.FloatField()

    class Meta:
        indexes = [
            models.Index(fields=["campaign_id", "version", "item_id"], name="prediction_campaign")
        ]

    def __str__(self) -> str:
        return f"item {self.item_id}: {self.label} (model v{self.version})"


class ImageFeatures(models.Model):
    """An image's feature vector (quality.ml.features), cached by content: a CID names exactly one
    content, so the row holds for every item and campaign with that CID until the features change
    (`version` is `FEATURES_VERSION`; rows of another version are ignored and replaced)."""

    cid = models.CharField(max_length=100, unique=True)
    version = models.PositiveSmallIntegerField()
    # float64, little-endian, IMAGE_FEATURES of them.
    features = models.BinaryField()
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"features v{self.version} of {self.cid}"


class ConsensusSweep(models.Model):
    """How far `quality.sweep_lagging` has looked: every label up to this annotation id has been
    checked against its item's consensus (one row, pk 1)."""

    last_annotation_id = models.BigIntegerField(default=0)
    swept_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"labels checked up to annotation {self.last_annotation_id}"
