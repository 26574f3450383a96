from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from core.fields import TokenAmountField
from core.jobs import JobStatus


class TaskType(models.TextChoices):
    IMAGE_CLASSIFICATION = "image_classification", "Image classification"
    TEXT_CLASSIFICATION = "text_classification", "Text classification"
    # Room for the next task types: their value shapes are validated by labeling.schema.
    IMAGE_BBOX = "image_bbox", "Image bounding boxes"
    TEXT_SPANS = "text_spans", "Text spans"


class CampaignStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    ACTIVE = "active", "Active"
    PAUSED = "paused", "Paused"
    CLOSED = "closed", "Closed"


class Campaign(models.Model):
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="campaigns"
    )
    title = models.CharField(max_length=200)
    instructions = models.TextField(blank=True)
    task_type = models.CharField(max_length=32, choices=TaskType.choices)
    # {"classes": [{"name": "cat", "hotkey": "1", "color": "#e6194b"}, ...]}; see labeling.schema.
    label_schema = models.JSONField()
    min_labels = models.PositiveSmallIntegerField(default=3)
    max_labels = models.PositiveSmallIntegerField(default=5)
    target_confidence = models.FloatField(default=0.95)
    gold_ratio = models.FloatField(default=0.0)
    reward_per_label = TokenAmountField(default=0)
    # None means no cap. A lease reserves one label's reward, so the cap holds under concurrency.
    budget = TokenAmountField(null=True, blank=True)
    labels_reserved = models.PositiveIntegerField(default=0)
    # Progress counters, kept by the services so no request counts a whole campaign. Labels are
    # counted in CampaignLabelTally (below), where submissions do not queue on one row.
    item_count = models.PositiveIntegerField(default=0)
    completed_count = models.PositiveIntegerField(default=0)
    status = models.CharField(
        max_length=16, choices=CampaignStatus.choices, default=CampaignStatus.ACTIVE
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(min_labels__gte=1), name="campaign_min_labels_positive"
            ),
            models.CheckConstraint(
                condition=Q(max_labels__gte=models.F("min_labels")), name="campaign_max_ge_min"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.title} (#{self.pk})"

    @property
    def class_names(self) -> list[str]:
        return [c["name"] for c in self.label_schema.get("classes", [])]


class CampaignLabelTally(models.Model):
    """A campaign's submitted labels, counted in shards: a submission adds one to its worker's
    shard inside the statement that stores the label. One counter row would make every
    submission of a campaign queue on that row until its commit; over SHARDS rows, keyed by
    worker, they do not (a worker submits one label at a time). The count is the shards' sum
    (`labeling.selectors.campaign_label_count`)."""

    SHARDS = 16

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="label_tallies")
    shard = models.PositiveSmallIntegerField()
    labels = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["campaign", "shard"], name="campaign_label_tally_shard")
        ]

    def __str__(self) -> str:
        return f"campaign {self.campaign_id} shard {self.shard}: {self.labels}"


class ItemStatus(models.TextChoices):
    # Written by an import job that has not finished: invisible to next-task until it does.
    STAGED = "staged", "Staged"
    OPEN = "open", "Open"
    COMPLETE = "complete", "Complete"


class ImportKind(models.TextChoices):
    IMAGES_ZIP = "images_zip", "Zip of images"
    TEXTS = "texts", "CSV or JSONL of texts"
    CIDS = "cids", "JSONL of existing CIDs"


# Import jobs share their life cycle with every job row (core.jobs); the old name stays for callers.
ImportStatus = JobStatus


class ImportJob(models.Model):
    """A large upload, imported by a Celery worker in batches; progress is readable while it runs.

    The uploaded file itself is a blob in the content store (`source_cid`), so any worker on any
    machine can read it. Items are written STAGED and opened together at the end, so an import is
    all or nothing: a crash resumes from `processed`, a failure deletes what was staged.
    """

    campaign = models.ForeignKey("Campaign", on_delete=models.CASCADE, related_name="imports")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    kind = models.CharField(max_length=16, choices=ImportKind.choices)
    source_cid = models.CharField(max_length=100)
    source_name = models.CharField(max_length=255)
    status = models.CharField(
        max_length=16, choices=ImportStatus.choices, default=ImportStatus.QUEUED
    )
    total = models.PositiveIntegerField(null=True, blank=True)
    processed = models.PositiveIntegerField(default=0)
    created = models.PositiveIntegerField(default=0)
    duplicates = models.PositiveIntegerField(default=0)
    # The first MAX_REJECTED_LISTED rejected units, [{name, reason}]; the count is of all of them,
    # a column so a poll never loads the list.
    rejected = models.JSONField(default=list)
    rejected_count = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    # A running job's claim: another copy of the task leaves it alone until this passes.
    locked_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"import {self.pk} ({self.kind}, {self.status})"


class Item(models.Model):
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="items")
    cid = models.CharField(max_length=100)
    media_type = models.CharField(max_length=100)
    size = models.PositiveBigIntegerField(default=0)
    filename = models.CharField(max_length=255, blank=True)
    # Short texts are served inline; the same bytes are also stored under `cid`.
    text = models.TextField(blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    # Never serialized to contributors: see labeling.selectors.task_for_worker.
    gold_label = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=16, choices=ItemStatus.choices, default=ItemStatus.OPEN)
    # Lower is served first. Set by the quality engine (uncertain items first, gold at gold_ratio).
    priority = models.IntegerField(default=0)
    # Leases outstanding plus labels submitted: never above the campaign's max_labels, except on
    # gold items, which every contributor may meet (they score workers and never close).
    slots_taken = models.PositiveIntegerField(default=0)
    label_count = models.PositiveIntegerField(default=0)
    import_job = models.ForeignKey(
        ImportJob, null=True, blank=True, on_delete=models.SET_NULL, related_name="items"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "cid"], name="item_unique_cid_per_campaign"
            ),
        ]
        indexes = [
            # The next-task scan: open items of one campaign in priority order. Gold items have
            # a queue of their own, so the main scan never steps over them.
            models.Index(
                fields=["campaign", "priority", "id"],
                name="item_open_queue",
                condition=Q(status="open", gold_label=""),
            ),
            models.Index(
                fields=["campaign", "id"],
                name="item_gold_queue",
                condition=Q(status="open") & ~Q(gold_label=""),
            ),
            models.Index(fields=["cid"], name="item_cid"),
            models.Index(fields=["campaign", "status", "id"], name="item_campaign_status"),
        ]

    def __str__(self) -> str:
        return f"item {self.pk} {self.cid}"

    @property
    def is_gold(self) -> bool:
        return bool(self.gold_label)


class AssignmentStatus(models.TextChoices):
    LEASED = "leased", "Leased"
    SUBMITTED = "submitted", "Submitted"
    EXPIRED = "expired", "Expired"


class Assignment(models.Model):
    """A lease of one item to one worker. Unique per (item, worker): nobody sees an item twice."""

    # No index of its own: assignment_unique_item_worker (item, worker) serves item lookups, and
    # every index is one more write per lease and per submit (the hot path).
    item = models.ForeignKey(
        Item, on_delete=models.CASCADE, related_name="assignments", db_index=False
    )
    worker = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="assignments"
    )
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="+")
    status = models.CharField(
        max_length=16, choices=AssignmentStatus.choices, default=AssignmentStatus.LEASED
    )
    leased_until = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["item", "worker"], name="assignment_unique_item_worker"
            ),
        ]
        indexes = [
            models.Index(
                fields=["worker", "campaign"],
                name="assignment_active",
                condition=Q(status="leased"),
            ),
            models.Index(
                fields=["campaign", "leased_until"],
                name="assignment_expiry",
                condition=Q(status="leased"),
            ),
        ]

    def __str__(self) -> str:
        return f"lease of item {self.item_id} to {self.worker_id} ({self.status})"


class Annotation(models.Model):
    # No indexes of their own: annotation_unique_item_worker (item, worker) and
    # annotation_worker_time (worker, created_at) lead with them (fewer writes per label).
    item = models.ForeignKey(
        Item, on_delete=models.CASCADE, related_name="annotations", db_index=False
    )
    worker = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="annotations",
        db_index=False,
    )
    assignment = models.OneToOneField(
        Assignment, on_delete=models.PROTECT, related_name="annotation"
    )
    # The validated value, shaped by task type; `label` is its class for classification tasks.
    value = models.JSONField()
    label = models.CharField(max_length=200, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["item", "worker"], name="annotation_unique_item_worker"
            ),
        ]
        indexes = [models.Index(fields=["worker", "created_at"], name="annotation_worker_time")]

    def __str__(self) -> str:
        return f"{self.label or self.value} on item {self.item_id} by {self.worker_id}"


class WorkerBlock(models.Model):
    """A worker barred from one campaign (the quality engine's suspension of a spammer).

    Kept here, in labeling, so next-task can refuse a blocked worker without importing the
    quality engine, which sits downstream (`labeling.services.worker_block`).
    """

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="+")
    worker = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    reason = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["worker", "campaign"], name="worker_block_unique")
        ]

    def __str__(self) -> str:
        return f"worker {self.worker_id} blocked from campaign {self.campaign_id}"
