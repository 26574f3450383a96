"""Clients of Kyodo's contracts (ABIs and bytecode from ``contracts/build``).

``rewards.chain`` imports nothing from Django: it is usable from scripts, the verifier and tests.
"""

from .artifacts import Artifact, load_artifact
from .base import ChainEvent, ContractClient, deploy_contract
from .distributor import (
    BoundTransaction,
    CampaignInfo,
    ClaimEntry,
    DistributorTotals,
    RewardDistributorClient,
    Role,
    RootInfo,
    RootStatus,
    deploy_distributor,
)
from .errors import (
    ChainError,
    ContractRevert,
    TransactionTimeout,
    error_registry,
    error_selector,
    revert_data,
    reverts_translated,
    translate_revert,
)
from .token import PermitSignature, TokenClient, deploy_token
from .tx import (
    Sender,
    build_transaction,
    replay_revert,
    send_and_wait,
    send_transaction,
    sender_address,
    wait_for_receipt,
)

__all__ = [
    "Artifact",
    "BoundTransaction",
    "CampaignInfo",
    "ChainError",
    "ChainEvent",
    "ClaimEntry",
    "ContractClient",
    "ContractRevert",
    "DistributorTotals",
    "PermitSignature",
    "RewardDistributorClient",
    "Role",
    "RootInfo",
    "RootStatus",
    "Sender",
    "TokenClient",
    "TransactionTimeout",
    "build_transaction",
    "deploy_contract",
    "deploy_distributor",
    "deploy_token",
    "error_registry",
    "error_selector",
    "load_artifact",
    "replay_revert",
    "revert_data",
    "reverts_translated",
    "send_and_wait",
    "send_transaction",
    "sender_address",
    "translate_revert",
    "wait_for_receipt",
]
