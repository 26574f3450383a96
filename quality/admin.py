from django.contrib import admin

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
    """Staff lift a suspension here by setting the status back to probation or trusted."""

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
