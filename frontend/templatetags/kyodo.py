"""Template filters of the pages."""

from __future__ import annotations

from django import template

register = template.Library()


@register.filter
def thousands(value: int) -> str:
    """12345 -> "12,345", as campaign.js writes numbers (Intl.NumberFormat("en-US"))."""
    return f"{value:,}"
