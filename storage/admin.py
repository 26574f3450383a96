from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from .models import Pin
from .pins import pins_retry_now


@admin.register(Pin)
class PinAdmin(admin.ModelAdmin[Pin]):
    list_display = (
        "cid",
        "kind",
        "status",
        "attempts",
        "next_attempt_at",
        "short_error",
        "updated_at",
    )
    list_filter = ("status", "kind")
    # Counts next to each filter choice: how many pins are pending, pinned, failed.
    show_facets = admin.ShowFacets.ALWAYS
    search_fields = ("=cid",)  # exact match: a CID prefix search would scan the table
    ordering = ("-updated_at",)
    readonly_fields = (
        "cid",
        "kind",
        "status",
        "attempts",
        "next_attempt_at",
        "last_error",
        "created_at",
        "updated_at",
        "pinned_at",
    )
    actions = ("retry_now",)
    show_full_result_count = False

    @admin.display(description="last error")
    def short_error(self, obj: Pin) -> str:
        return obj.last_error if len(obj.last_error) <= 80 else obj.last_error[:77] + "..."

    @admin.action(description="Retry the selected failed pins now")
    def retry_now(self, request: HttpRequest, queryset: QuerySet[Pin]) -> None:
        count = pins_retry_now(ids=queryset.values_list("pk", flat=True))
        self.message_user(
            request,
            f"{count} failed pin(s) made due; the next ensure_pins run takes them.",
            messages.SUCCESS,
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # rows come from pin_ensure, keyed by CID
