from django.contrib import admin

from .models import Annotation, Assignment, Campaign, Item


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
        "label_count",
    )
    list_filter = ("status", "task_type")
    search_fields = ("title",)
    readonly_fields = (
        "item_count",
        "completed_count",
        "label_count",
        "labels_reserved",
        "created_at",
    )
    raw_id_fields = ("owner",)


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
