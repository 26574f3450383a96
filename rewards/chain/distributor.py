"""Client of ``RewardDistributor`` (contracts/src/RewardDistributor.sol).

Every state-changing function is one row of the client's transaction table (:class:`Transaction`):
``client.<name>(..., sender=address_or_key)`` sends it and waits for the receipt,
``client.<name>.build(..., sender=address)`` returns an unsigned transaction dict, and
``client.<name>.data(...)`` its call data for the outbox. Amounts are integers in token base units.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
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


def _address(value: str) -> ChecksumAddress:
    return Web3.to_checksum_address(value)


def _proof(proof: Sequence[bytes | str]) -> list[bytes]:
    return [_bytes32(p) for p in proof]


@dataclass(frozen=True)
class ClaimEntry:
    """One entry of ``claimMany``: a leaf of the current root and its proof."""

    account: str
    cumulative_amount: int
    proof: Sequence[bytes | str]


def _submit_root_args(
    root: bytes | str,
    payout_table_cid: str,
    total_committed: int,
    campaign_commitments: Mapping[int, int],
) -> tuple[Any, ...]:
    """``campaign_commitments``: new cumulative commitment of each campaign that changed."""
    ids = sorted(campaign_commitments)  # the contract wants strictly increasing ids
    return (
        _bytes32(root),
        payout_table_cid,
        total_committed,
        ids,
        [campaign_commitments[i] for i in ids],
    )


def _claim_many_args(entries: Sequence[ClaimEntry]) -> tuple[Any, ...]:
    return (
        [_address(e.account) for e in entries],
        [e.cumulative_amount for e in entries],
        [_proof(e.proof) for e in entries],
    )


class BoundTransaction:
    """One state-changing function of one deployed contract.

    ``f(*args, sender=address_or_key)`` sends it and waits for the receipt;
    ``f.build(*args, sender=address)`` returns the unsigned transaction (gas estimated, so a call
    that would revert raises :class:`ContractRevert` here); ``f.data(*args)`` is its call data, for
    the outbox. ``args`` are the Python-side arguments of the table row (see the client).
    """

    def __init__(self, client: ContractClient, spec: Transaction) -> None:
        self._client = client
        self._spec = spec

    def function(self, *args: Any) -> ContractFunction:
        return self._client.contract.functions[self._spec.solidity](*self._spec.adapt(*args))

    def __call__(
        self, *args: Any, sender: Sender, confirmations: int = 1, **overrides: Any
    ) -> TxReceipt:
        return self._client._send(self.function(*args), sender, confirmations, overrides)

    def build(self, *args: Any, sender: str, **overrides: Any) -> TxParams:
        return self._client._build(self.function(*args), sender, overrides)

    def data(self, *args: Any) -> str:
        spec = self._spec
        return str(self._client.contract.encode_abi(spec.solidity, args=list(spec.adapt(*args))))


@dataclass(frozen=True)
class Transaction:
    """A row of a client's transaction table: the Solidity function and how the Python
    arguments become its arguments (checksummed addresses, bytes32, sorted ids ...)."""

    solidity: str
    adapt: Callable[..., tuple[Any, ...]] = lambda *args: args

    def __get__(self, client: ContractClient | None, owner: type | None = None) -> BoundTransaction:
        if client is None:
            raise AttributeError(f"{self.solidity} is bound to a deployed contract")
        return BoundTransaction(client, self)


class RewardDistributorClient(ContractClient):
    artifact_name = "RewardDistributor"

    # ------------------------------------------------------------ transactions
    # One row per state-changing function: ``d.fund(1, 100, sender=owner)`` sends and waits,
    # ``d.fund.build(1, 100, sender=owner)`` returns the unsigned dict, ``d.fund.data(1, 100)``
    # the call data (see BoundTransaction). Amounts are integers in token base units.

    create_campaign = Transaction("createCampaign", lambda cid, owner: (cid, _address(owner)))
    close_campaign = Transaction("closeCampaign")
    fund = Transaction("fund")  # needs a prior approve(distributor, amount) by the owner
    fund_with_permit = Transaction(
        "fundWithPermit",
        lambda cid, amount, p: (cid, amount, p.deadline, p.v, p.r, p.s),
    )
    refund = Transaction("refund")
    submit_root = Transaction("submitRoot", _submit_root_args)
    accept_root = Transaction("acceptRoot")
    revoke_pending_root = Transaction("revokePendingRoot")
    # Pays cumulative_amount - claimed(account) to account; any sender may relay.
    claim = Transaction(
        "claim", lambda account, amount, proof: (_address(account), amount, _proof(proof))
    )
    # claim for a batch of ClaimEntry, all or nothing (ClaimRejected(index, reason)).
    claim_many = Transaction("claimMany", _claim_many_args)
    pause = Transaction("pause")
    unpause = Transaction("unpause")
    grant_role = Transaction("grantRole", lambda role, account: (role.value, _address(account)))
    revoke_role = Transaction("revokeRole", lambda role, account: (role.value, _address(account)))

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
