from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from .models import Annotation, Assignment, Campaign, Item
from .selectors import campaign_labels, campaigns_with_label_count


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin[Campaign]):
    list_display = (
        "id",
        "title",
        "task_type",
        "status",
        "owner",
        "item_count",
        "completed_count",
        "labels",
    )
    list_filter = ("status", "task_type")
    search_fields = ("title",)
    readonly_fields = (
        "item_count",
        "completed_count",
        "labels",
        "labels_reserved",
        "created_at",
    )
    raw_id_fields = ("owner",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Campaign]:
        return campaigns_with_label_count(super().get_queryset(request))

    @admin.display(description="labels")
    def labels(self, campaign: Campaign) -> int:
        return campaign_labels(campaign)


@admin.register(Item)
class ItemAdmin(admin.ModelAdmin[Item]):
    list_display = (
        "id",
        "campaign",
        "cid",
        "media_type",
        "status",
        "label_count",
        "slots_taken",
        "priority",
    )
    list_filter = ("status",)
    search_fields = ("cid", "filename")
    raw_id_fields = ("campaign",)
    list_select_related = ("campaign",)
    show_full_result_count = False  # counting 10M rows on every page view is not free


@admin.register(Assignment)
class AssignmentAdmin(admin.ModelAdmin[Assignment]):
    list_display = ("id", "item", "worker", "status", "leased_until")
    list_filter = ("status",)
    raw_id_fields = ("item", "worker", "campaign")
    show_full_result_count = False


@admin.register(Annotation)
class AnnotationAdmin(admin.ModelAdmin[Annotation]):
    list_display = ("id", "item", "worker", "label", "duration_ms", "created_at")
    raw_id_fields = ("item", "worker", "assignment")
    show_full_result_count = False
