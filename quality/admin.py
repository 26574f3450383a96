from django.contrib import admin

from .models import ItemConsensus, WorkerSkill


@admin.register(ItemConsensus)
class ItemConsensusAdmin(admin.ModelAdmin[ItemConsensus]):
    list_display = (
        "item_id",
        "campaign_id",
        "label",
        "confidence",
        "n_labels",
        "method",
        "is_complete",
    )
    list_filter = ("is_complete", "method")
    show_full_result_count = False


@admin.register(WorkerSkill)
class WorkerSkillAdmin(admin.ModelAdmin[WorkerSkill]):
    list_display = (
        "worker",
        "campaign_id",
        "accuracy",
        "gold_seen",
        "gold_passed",
        "spam_score",
        "status",
    )
    raw_id_fields = ("worker",)
