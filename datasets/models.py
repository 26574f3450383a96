from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from core.jobs import JobStatus


class ExportKind(models.TextChoices):
    RAW_CAR = "raw_car", "Campaign raw data as a CARv1 archive"


class Export(models.Model):
    """An export to build: a row before it is an action, so a retry never builds it twice."""

    campaign_id = models.BigIntegerField()
    kind = models.CharField(max_length=16, choices=ExportKind.choices)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED)
    # The collection's root (a UnixFS directory of every item) and the CAR file holding its DAG.
    root_cid = models.CharField(max_length=100, blank=True)
    cid = models.CharField(max_length=100, blank=True)
    size = models.PositiveBigIntegerField(default=0)
    item_count = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            # One export of a kind in flight per campaign: asking twice returns the same row.
            models.UniqueConstraint(
                fields=["campaign_id", "kind"],
                condition=Q(status__in=["queued", "running"]),
                name="export_one_in_flight",
            )
        ]

    def __str__(self) -> str:
        return f"export {self.pk} ({self.kind}, {self.status})"
