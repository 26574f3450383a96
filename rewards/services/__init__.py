"""Writes of the rewards app (a package: ledger, epochs, outbox, watcher, claims, deployments)."""

from .claims import (
    claim_batches_build,
    claim_check,
    claim_request,
    claim_request_ensure,
    claims_renew_superseded,
)
from .deploy import (
    campaign_chain_register,
    chain_deploy,
    chain_deployment_record,
    chain_state_forget,
)
from .epoch_roots import epoch_fail, epoch_submit
from .epoch_table import epoch_store_table
from .epochs import epoch_advance, epoch_open, epoch_settle_now, settle_tick
from .ledger import (
    rewards_account_completed,
    rewards_account_item,
    rewards_account_items,
    rewards_resolve_all_pending,
    rewards_resolve_pending,
)
from .outbox import chain_tx_ensure, chain_tx_retry, chain_tx_wait, outbox_process
from .watcher import chain_watch, wallet_claim_record

__all__ = [
    "campaign_chain_register",
    "chain_deploy",
    "chain_deployment_record",
    "chain_state_forget",
    "chain_tx_ensure",
    "chain_tx_retry",
    "chain_tx_wait",
    "chain_watch",
    "claim_batches_build",
    "claim_check",
    "claim_request",
    "claim_request_ensure",
    "claims_renew_superseded",
    "epoch_advance",
    "epoch_fail",
    "epoch_open",
    "epoch_settle_now",
    "epoch_store_table",
    "epoch_submit",
    "outbox_process",
    "rewards_account_completed",
    "rewards_account_item",
    "rewards_account_items",
    "rewards_resolve_all_pending",
    "rewards_resolve_pending",
    "settle_tick",
    "wallet_claim_record",
]
