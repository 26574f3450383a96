from __future__ import annotations

from django.db.models import Count, QuerySet

from storage.models import Pin, PinStatus


def pin_list(*, status: str | None = None, cid: str | None = None) -> QuerySet[Pin]:
    """Pins, optionally by status and exact CID (the caller orders and pages them)."""
    qs = Pin.objects.all()
    if status:
        qs = qs.filter(status=status)
    if cid:
        qs = qs.filter(cid=cid)
    return qs


def pin_status_counts() -> dict[str, int]:
    """Rows per status, every status present (zero when none)."""
    counts = {value: 0 for value in PinStatus.values}
    for row in Pin.objects.values("status").annotate(n=Count("id")).order_by():
        counts[row["status"]] = row["n"]
    return counts
