from __future__ import annotations

from django.db import models
from django.db.models import Q


class PinKind(models.TextChoices):
    ITEM = "item", "Item"
    MANIFEST = "manifest", "Dataset manifest"
    PAYOUT_TABLE = "payout_table", "Payout table"
    EXPORT = "export", "Export"


class PinStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    PINNED = "pinned", "Pinned"
    # Failed rows are not given up on: they are retried at next_attempt_at, with backoff.
    FAILED = "failed", "Failed"


OPEN_PIN_STATUSES = (PinStatus.PENDING, PinStatus.FAILED)


class Pin(models.Model):
    """A CID the platform depends on, and whether the store is keeping it.

    One row per CID (the business key): ensuring a pin twice is a no-op, and a worker claims a row
    before acting, so a CID is never pinned by two workers at once. ``kind`` is the first use that
    asked for the pin; the same bytes used twice are pinned once.
    """

    cid = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=16, choices=PinKind.choices)
    status = models.CharField(max_length=8, choices=PinStatus.choices, default=PinStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    # When a worker may next try. Also the claim lease: claiming moves it past the attempt's
    # time limit, so a worker that dies mid-pin hands the row back when the lease runs out.
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    pinned_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            # The claim query: open rows by due time. Partial, so the millions of pinned rows
            # stay out of it; the condition matches the query's filter exactly (PostgreSQL only
            # uses a partial index when the WHERE clause implies its predicate).
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(status__in=["pending", "failed"]),
                name="pin_open_due_idx",
            ),
            models.Index(fields=["status", "kind"], name="pin_status_kind_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.cid} ({self.kind}, {self.status})"
