from __future__ import annotations

from typing import Any

from django.db import connection
from django.db.models import QuerySet, Sum


def sum_amounts(queryset: QuerySet[Any], field: str) -> int:
    """Exact sum of a TokenAmountField: in SQL on PostgreSQL, in Python on SQLite (text)."""
    if connection.vendor == "sqlite":
        return sum(int(v) for v in queryset.values_list(field, flat=True).iterator())
    total = queryset.aggregate(total=Sum(field))["total"]
    return int(total or 0)
