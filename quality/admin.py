from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from . import services
from .models import CampaignQuality, ItemConsensus, ItemPrediction, ModelVersion, WorkerSkill


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
    """Staff lift a suspension with the "Lift the suspension" action (status alone is not enough:
    next-task reads labeling's block list, which the action clears too)."""

    actions = ("lift_suspension",)

    list_display = (
        "worker",
        "campaign_id",
        "status",
        "accuracy",
        "answers",
        "gold_seen",
        "gold_passed",
        "spam_score",
        "informative",
    )
    list_filter = ("status",)
    raw_id_fields = ("worker",)
    show_full_result_count = False

    @admin.action(description="Lift the suspension (back on probation)")
    def lift_suspension(self, request: HttpRequest, queryset: QuerySet[WorkerSkill]) -> None:
        lifted = sum(
            services.worker_reinstate(worker_id=skill.worker_id, campaign_id=skill.campaign_id)
            for skill in queryset
        )
        self.message_user(request, f"{lifted} suspension(s) lifted.", messages.SUCCESS)


@admin.register(CampaignQuality)
class CampaignQualityAdmin(admin.ModelAdmin[CampaignQuality]):
    list_display = ("campaign_id", "method", "calibrated", "temperature", "labels_at_fit")
    readonly_fields = ("fitted_at",)


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin[ModelVersion]):
    list_display = ("campaign_id", "version", "kind", "trained_on", "oof_accuracy", "created_at")


@admin.register(ItemPrediction)
class ItemPredictionAdmin(admin.ModelAdmin[ItemPrediction]):
    list_display = ("item_id", "campaign_id", "version", "label", "probability")
    show_full_result_count = False
