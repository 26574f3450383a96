"""Token amounts: unsigned integers in token base units, exact up to uint256.

Stored as numeric(78, 0): exact, wide enough for any uint256, and summed exactly in SQL
(`core.amounts.sum_amounts`).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db import models
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models.expressions import Expression

UINT256_MAX = 2**256 - 1


class TokenAmountField(models.Field[int | None, int | None]):
    """Python ints in, Python ints out (a DecimalField would hand out Decimals)."""

    description = "Token amount in base units (uint256)"

    def get_internal_type(self) -> str:
        return "TokenAmountField"

    def db_type(self, connection: BaseDatabaseWrapper) -> str | None:
        return "numeric(78, 0)"

    def from_db_value(
        self, value: Any, expression: Expression, connection: BaseDatabaseWrapper
    ) -> int | None:
        if value is None:
            return None
        return int(Decimal(value))

    def to_python(self, value: Any) -> int | None:
        if value is None or isinstance(value, int):
            return value
        return int(Decimal(str(value)))

    def get_db_prep_value(
        self, value: Any, connection: BaseDatabaseWrapper, prepared: bool = False
    ) -> Any:
        if value is None or hasattr(value, "resolve_expression"):
            return value
        amount = int(value)
        if amount < 0 or amount > UINT256_MAX:
            raise ValueError(f"token amount out of range: {amount}")
        return Decimal(amount)
