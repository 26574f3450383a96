from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from .models import (
    ChainDeployment,
    ChainEvent,
    ChainTx,
    ChainTxKind,
    ClaimRequest,
    Epoch,
    RewardEntry,
    WalletClaim,
)
from .services import chain_tx_retry


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
        "wallet",
    )
    list_filter = ("status",)
    raw_id_fields = ("worker",)
    show_full_result_count = False


@admin.register(Epoch)
class EpochAdmin(admin.ModelAdmin[Epoch]):
    list_display = (
        "number",
        "status",
        "root_id",
        "merkle_root",
        "payout_table_cid",
        "total_committed",
        "leaf_count",
        "entry_count",
        "created_at",
    )
    list_filter = ("status",)
    readonly_fields = [f.name for f in Epoch._meta.fields]


@admin.register(ChainTx)
class ChainTxAdmin(admin.ModelAdmin[ChainTx]):
    list_display = (
        "id",
        "kind",
        "idempotency_key",
        "status",
        "nonce",
        "tx_hash",
        "attempts",
        "error_code",
        "updated_at",
    )
    list_filter = ("status", "kind")
    show_facets = admin.ShowFacets.ALWAYS
    search_fields = ("=idempotency_key", "=tx_hash")
    readonly_fields = [f.name for f in ChainTx._meta.fields]
    actions = ("retry",)
    show_full_result_count = False

    @admin.action(description="Retry the selected failed transactions")
    def retry(self, request: HttpRequest, queryset: QuerySet[ChainTx]) -> None:
        count = 0
        # A failed claimMany batch is not sent again as it was: its requests were settled or
        # queued again for a new batch when it failed (rewards.services.claims).
        for tx in queryset.filter(status="failed").exclude(kind=ChainTxKind.CLAIM_MANY):
            chain_tx_retry(tx=tx)
            count += 1
        self.message_user(request, f"{count} transaction(s) queued again.", messages.SUCCESS)


@admin.register(ChainEvent)
class ChainEventAdmin(admin.ModelAdmin[ChainEvent]):
    list_display = ("name", "block_number", "log_index", "tx_hash", "args")
    list_filter = ("name",)
    readonly_fields = [f.name for f in ChainEvent._meta.fields]
    show_full_result_count = False


@admin.register(WalletClaim)
class WalletClaimAdmin(admin.ModelAdmin[WalletClaim]):
    list_display = ("wallet", "claimed", "last_block", "updated_at")
    search_fields = ("=wallet",)


@admin.register(ClaimRequest)
class ClaimRequestAdmin(admin.ModelAdmin[ClaimRequest]):
    list_display = (
        "id",
        "account",
        "cumulative",
        "amount",
        "epoch",
        "status",
        "batch_tx",
        "batch_index",
        "error_code",
        "updated_at",
    )
    list_filter = ("status",)
    search_fields = ("=account",)
    raw_id_fields = ("requested_by", "batch_tx", "superseded_by")
    readonly_fields = [f.name for f in ClaimRequest._meta.fields]
    show_full_result_count = False


@admin.register(ChainDeployment)
class ChainDeploymentAdmin(admin.ModelAdmin[ChainDeployment]):
    list_display = ("chain_id", "distributor", "token", "deploy_block", "timelock", "active")
