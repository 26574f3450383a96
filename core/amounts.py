from __future__ import annotations

from typing import Any

from django.db.models import QuerySet, Sum


def sum_amounts(queryset: QuerySet[Any], field: str) -> int:
    """Exact sum of a TokenAmountField, in SQL (numeric(78, 0) sums exactly)."""
    total = queryset.aggregate(total=Sum(field))["total"]
    return int(total or 0)
