"""Client of ``RewardDistributor`` (contracts/src/RewardDistributor.sol).

Every state-changing method comes in two forms: ``build_<name>_tx(..., sender=address)`` returns an
unsigned transaction dict for the outbox, ``<name>(..., sender=address_or_key)`` sends it and waits
for the receipt. Amounts are integers in token base units.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum, IntEnum
from typing import Any

from eth_typing import ChecksumAddress
from eth_utils import keccak
from web3 import Web3
from web3.contract.contract import ContractFunction
from web3.types import BlockIdentifier, TxParams, TxReceipt

from .base import ContractClient, deploy_contract
from .errors import reverts_translated
from .token import PermitSignature
from .tx import Sender


class Role(bytes, Enum):
    """AccessControl role ids."""

    ADMIN = bytes(32)  # DEFAULT_ADMIN_ROLE: grants roles, unpauses
    ROOT_UPDATER = keccak(text="ROOT_UPDATER_ROLE")  # submits roots
    GUARDIAN = keccak(text="GUARDIAN_ROLE")  # revokes pending roots, pauses
    CAMPAIGN_MANAGER = keccak(text="CAMPAIGN_MANAGER_ROLE")  # creates and closes campaigns


class RootStatus(IntEnum):
    NONE = 0
    PENDING = 1
    ACCEPTED = 2
    REVOKED = 3


@dataclass(frozen=True)
class RootInfo:
    root_id: int
    root: str  # 0x-prefixed 32-byte hex
    payout_table_cid: str
    total_committed: int
    valid_at: int  # unix seconds; acceptRoot succeeds from this block timestamp on
    status: RootStatus


@dataclass(frozen=True)
class CampaignInfo:
    campaign_id: int
    owner: ChecksumAddress
    closed: bool
    deposited: int
    refunded: int
    committed: int  # by the accepted root
    reserved: int  # max(accepted, pending) commitment: what refunds must leave in place
    refundable: int  # what `refund` would accept now (0 while open)


@dataclass(frozen=True)
class DistributorTotals:
    deposited: int
    refunded: int
    committed: int  # by the current root
    claimed: int
    outstanding: int  # committed - claimed: still owed under the current root


def _bytes32(value: bytes | str) -> bytes:
    raw = bytes.fromhex(value.removeprefix("0x")) if isinstance(value, str) else bytes(value)
    if len(raw) != 32:
        raise ValueError("expected 32 bytes")
    return raw


class RewardDistributorClient(ContractClient):
    artifact_name = "RewardDistributor"

    # ------------------------------------------------------------ campaigns

    def build_create_campaign_tx(
        self, campaign_id: int, owner: str, *, sender: str, **overrides: Any
    ) -> TxParams:
        return self._build(self._create_campaign(campaign_id, owner), sender, overrides)

    def create_campaign(
        self,
        campaign_id: int,
        owner: str,
        *,
        sender: Sender,
        confirmations: int = 1,
        **overrides: Any,
    ) -> TxReceipt:
        return self._send(
            self._create_campaign(campaign_id, owner), sender, confirmations, overrides
        )

    def _create_campaign(self, campaign_id: int, owner: str) -> ContractFunction:
        return self.contract.functions.createCampaign(campaign_id, Web3.to_checksum_address(owner))

    def build_close_campaign_tx(
        self, campaign_id: int, *, sender: str, **overrides: Any
    ) -> TxParams:
        return self._build(self.contract.functions.closeCampaign(campaign_id), sender, overrides)

    def close_campaign(
        self, campaign_id: int, *, sender: Sender, confirmations: int = 1, **overrides: Any
    ) -> TxReceipt:
        fn = self.contract.functions.closeCampaign(campaign_id)
        return self._send(fn, sender, confirmations, overrides)

    def build_fund_tx(
        self, campaign_id: int, amount: int, *, sender: str, **overrides: Any
    ) -> TxParams:
        return self._build(self.contract.functions.fund(campaign_id, amount), sender, overrides)

    def fund(
        self,
        campaign_id: int,
        amount: int,
        *,
        sender: Sender,
        confirmations: int = 1,
        **overrides: Any,
    ) -> TxReceipt:
        """Needs a prior ``approve(distributor, amount)`` by the campaign owner."""
        fn = self.contract.functions.fund(campaign_id, amount)
        return self._send(fn, sender, confirmations, overrides)

    def build_fund_with_permit_tx(
        self,
        campaign_id: int,
        amount: int,
        permit: PermitSignature,
        *,
        sender: str,
        **overrides: Any,
    ) -> TxParams:
        return self._build(self._fund_with_permit(campaign_id, amount, permit), sender, overrides)

    def fund_with_permit(
        self,
        campaign_id: int,
        amount: int,
        permit: PermitSignature,
        *,
        sender: Sender,
        confirmations: int = 1,
        **overrides: Any,
    ) -> TxReceipt:
        fn = self._fund_with_permit(campaign_id, amount, permit)
        return self._send(fn, sender, confirmations, overrides)

    def _fund_with_permit(
        self, campaign_id: int, amount: int, permit: PermitSignature
    ) -> ContractFunction:
        return self.contract.functions.fundWithPermit(
            campaign_id, amount, permit.deadline, permit.v, permit.r, permit.s
        )

    def build_refund_tx(
        self, campaign_id: int, amount: int, *, sender: str, **overrides: Any
    ) -> TxParams:
        return self._build(self.contract.functions.refund(campaign_id, amount), sender, overrides)

    def refund(
        self,
        campaign_id: int,
        amount: int,
        *,
        sender: Sender,
        confirmations: int = 1,
        **overrides: Any,
    ) -> TxReceipt:
        fn = self.contract.functions.refund(campaign_id, amount)
        return self._send(fn, sender, confirmations, overrides)

    # ------------------------------------------------------------ roots

    def build_submit_root_tx(
        self,
        root: bytes | str,
        payout_table_cid: str,
        total_committed: int,
        campaign_commitments: Mapping[int, int],
        *,
        sender: str,
        **overrides: Any,
    ) -> TxParams:
        fn = self._submit_root(root, payout_table_cid, total_committed, campaign_commitments)
        return self._build(fn, sender, overrides)

    def submit_root(
        self,
        root: bytes | str,
        payout_table_cid: str,
        total_committed: int,
        campaign_commitments: Mapping[int, int],
        *,
        sender: Sender,
        confirmations: int = 1,
        **overrides: Any,
    ) -> TxReceipt:
        """``campaign_commitments``: new cumulative commitment of each campaign that changed."""
        fn = self._submit_root(root, payout_table_cid, total_committed, campaign_commitments)
        return self._send(fn, sender, confirmations, overrides)

    def _submit_root(
        self,
        root: bytes | str,
        payout_table_cid: str,
        total_committed: int,
        campaign_commitments: Mapping[int, int],
    ) -> ContractFunction:
        ids = sorted(campaign_commitments)  # the contract wants strictly increasing ids
        return self.contract.functions.submitRoot(
            _bytes32(root),
            payout_table_cid,
            total_committed,
            ids,
            [campaign_commitments[i] for i in ids],
        )

    def build_accept_root_tx(self, *, sender: str, **overrides: Any) -> TxParams:
        return self._build(self.contract.functions.acceptRoot(), sender, overrides)

    def accept_root(self, *, sender: Sender, confirmations: int = 1, **overrides: Any) -> TxReceipt:
        return self._send(self.contract.functions.acceptRoot(), sender, confirmations, overrides)

    def build_revoke_pending_root_tx(self, *, sender: str, **overrides: Any) -> TxParams:
        return self._build(self.contract.functions.revokePendingRoot(), sender, overrides)

    def revoke_pending_root(
        self, *, sender: Sender, confirmations: int = 1, **overrides: Any
    ) -> TxReceipt:
        fn = self.contract.functions.revokePendingRoot()
        return self._send(fn, sender, confirmations, overrides)

    # ------------------------------------------------------------ claims

    def build_claim_tx(
        self,
        account: str,
        cumulative_amount: int,
        proof: Sequence[bytes | str],
        *,
        sender: str,
        **overrides: Any,
    ) -> TxParams:
        return self._build(self._claim(account, cumulative_amount, proof), sender, overrides)

    def claim(
        self,
        account: str,
        cumulative_amount: int,
        proof: Sequence[bytes | str],
        *,
        sender: Sender,
        confirmations: int = 1,
        **overrides: Any,
    ) -> TxReceipt:
        """Pays ``cumulative_amount - claimed(account)`` to ``account``; any sender may relay."""
        fn = self._claim(account, cumulative_amount, proof)
        return self._send(fn, sender, confirmations, overrides)

    def _claim(
        self, account: str, cumulative_amount: int, proof: Sequence[bytes | str]
    ) -> ContractFunction:
        return self.contract.functions.claim(
            Web3.to_checksum_address(account), cumulative_amount, [_bytes32(p) for p in proof]
        )

    # ------------------------------------------------------------ pause and roles

    def build_pause_tx(self, *, sender: str, **overrides: Any) -> TxParams:
        return self._build(self.contract.functions.pause(), sender, overrides)

    def pause(self, *, sender: Sender, confirmations: int = 1, **overrides: Any) -> TxReceipt:
        return self._send(self.contract.functions.pause(), sender, confirmations, overrides)

    def build_unpause_tx(self, *, sender: str, **overrides: Any) -> TxParams:
        return self._build(self.contract.functions.unpause(), sender, overrides)

    def unpause(self, *, sender: Sender, confirmations: int = 1, **overrides: Any) -> TxReceipt:
        return self._send(self.contract.functions.unpause(), sender, confirmations, overrides)

    def build_grant_role_tx(
        self, role: Role, account: str, *, sender: str, **overrides: Any
    ) -> TxParams:
        fn = self.contract.functions.grantRole(role.value, Web3.to_checksum_address(account))
        return self._build(fn, sender, overrides)

    def grant_role(
        self, role: Role, account: str, *, sender: Sender, confirmations: int = 1, **overrides: Any
    ) -> TxReceipt:
        fn = self.contract.functions.grantRole(role.value, Web3.to_checksum_address(account))
        return self._send(fn, sender, confirmations, overrides)

    def revoke_role(
        self, role: Role, account: str, *, sender: Sender, confirmations: int = 1, **overrides: Any
    ) -> TxReceipt:
        fn = self.contract.functions.revokeRole(role.value, Web3.to_checksum_address(account))
        return self._send(fn, sender, confirmations, overrides)

    # ------------------------------------------------------------ views

    def _view(self, fn: ContractFunction, block: BlockIdentifier = "latest") -> Any:
        with reverts_translated():
            return fn.call(block_identifier=block)

    def token(self) -> ChecksumAddress:
        return Web3.to_checksum_address(self._view(self.contract.functions.token()))

    def timelock(self) -> int:
        return int(self._view(self.contract.functions.timelock()))

    def paused(self, block: BlockIdentifier = "latest") -> bool:
        return bool(self._view(self.contract.functions.paused(), block))

    def has_role(self, role: Role, account: str) -> bool:
        fn = self.contract.functions.hasRole(role.value, Web3.to_checksum_address(account))
        return bool(self._view(fn))

    def claimed(self, account: str, block: BlockIdentifier = "latest") -> int:
        fn = self.contract.functions.claimed(Web3.to_checksum_address(account))
        return int(self._view(fn, block))

    def root(self, root_id: int, block: BlockIdentifier = "latest") -> RootInfo:
        root, cid, total, valid_at, status = self._view(
            self.contract.functions.rootInfo(root_id), block
        )
        return RootInfo(root_id, "0x" + bytes(root).hex(), cid, total, valid_at, RootStatus(status))

    def root_count(self, block: BlockIdentifier = "latest") -> int:
        return int(self._view(self.contract.functions.rootCount(), block))

    def current_root(self, block: BlockIdentifier = "latest") -> RootInfo | None:
        root_id = int(self._view(self.contract.functions.currentRootId(), block))
        return self.root(root_id, block) if root_id else None

    def pending_root(self, block: BlockIdentifier = "latest") -> RootInfo | None:
        root_id = int(self._view(self.contract.functions.pendingRootId(), block))
        return self.root(root_id, block) if root_id else None

    def campaign(self, campaign_id: int, block: BlockIdentifier = "latest") -> CampaignInfo | None:
        """``None`` if the campaign was never created."""
        owner, closed, deposited, refunded, committed, reserved, refundable = self._view(
            self.contract.functions.campaign(campaign_id), block
        )
        if int(owner, 16) == 0:
            return None
        return CampaignInfo(
            campaign_id,
            Web3.to_checksum_address(owner),
            closed,
            deposited,
            refunded,
            committed,
            reserved,
            refundable,
        )

    def totals(self, block: BlockIdentifier = "latest") -> DistributorTotals:
        f = self.contract.functions
        committed = int(self._view(f.currentTotalCommitted(), block))
        outstanding = int(self._view(f.outstanding(), block))
        return DistributorTotals(
            deposited=int(self._view(f.totalDeposited(), block)),
            refunded=int(self._view(f.totalRefunded(), block)),
            committed=committed,
            claimed=committed - outstanding,
            outstanding=outstanding,
        )


def deploy_distributor(
    w3: Web3,
    *,
    token: str,
    timelock: int,
    admin: str,
    updater: str | None = None,
    guardian: str | None = None,
    manager: str | None = None,
    sender: Sender,
    confirmations: int = 1,
) -> RewardDistributorClient:
    """Deploy a distributor paying in ``token``; optional roles are granted in the constructor."""
    zero = "0x" + "00" * 20
    address, _ = deploy_contract(
        w3,
        "RewardDistributor",
        Web3.to_checksum_address(token),
        timelock,
        Web3.to_checksum_address(admin),
        Web3.to_checksum_address(updater or zero),
        Web3.to_checksum_address(guardian or zero),
        Web3.to_checksum_address(manager or zero),
        sender=sender,
        confirmations=confirmations,
    )
    return RewardDistributorClient(w3, address)
