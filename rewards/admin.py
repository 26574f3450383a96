from django.contrib import admin

from .models import RewardEntry


@admin.register(RewardEntry)
class RewardEntryAdmin(admin.ModelAdmin[RewardEntry]):
    list_display = (
        "id",
        "worker",
        "campaign_id",
        "item_id",
        "annotation_id",
        "amount",
        "status",
        "epoch",
    )
    list_filter = ("status",)
    raw_id_fields = ("worker",)
    show_full_result_count = False
