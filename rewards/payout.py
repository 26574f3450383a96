"""The payout table: what every epoch's root commits to, as one JSON document on IPFS.

Pure functions, no Django: the settlement service writes tables with them and the verifier, which
an outsider runs with only an RPC URL and an IPFS gateway, reads them. The format (version 1) is
documented in docs/rewards.md. Amounts are uint256, so JSON carries them as decimal strings.
The encoding is canonical (sorted keys, no spaces, leaves sorted by lower-case address): the same
epoch always gives the same bytes, hence the same CID, however often it is rebuilt.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .merkle import LEAF_ENCODING, StandardMerkleTree, checksum_address, verify

FORMAT = "kyodo-payout-table"
VERSION = 1
_UINT = re.compile(r"0|[1-9][0-9]{0,77}")
_UINT256_MAX = 2**256 - 1


class PayoutTableError(ValueError):
    """A document that is not a well-formed payout table."""


@dataclass(frozen=True)
class CampaignShare:
    campaign_id: int
    amount: int  # cumulative, token base units
    annotations: int  # accepted annotations behind ``amount``


@dataclass(frozen=True)
class PayoutLeaf:
    account: str  # EIP-55
    cumulative: int
    campaigns: tuple[CampaignShare, ...]
    proof: tuple[str, ...] | None = None

    @property
    def annotations(self) -> int:
        return sum(share.annotations for share in self.campaigns)


@dataclass(frozen=True)
class PayoutTable:
    epoch: int
    chain_id: int
    distributor: str
    token: str
    entry_cutoff: int
    root: str
    total_committed: int
    campaign_committed: dict[int, int]  # cumulative, every campaign
    campaigns_changed: dict[int, int]  # what submitRoot listed
    leaves: tuple[PayoutLeaf, ...]
    previous_epoch: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def leaf_of(self, account: str) -> PayoutLeaf | None:
        lower = account.lower()
        for leaf in self.leaves:
            if leaf.account.lower() == lower:
                return leaf
        return None


def leaves_from_rows(rows: Iterable[tuple[str, int, int, int]]) -> list[PayoutLeaf]:
    """Leaves from ``(wallet, campaign_id, amount, annotations)`` rows, in canonical order.

    Rows of the same wallet written in different letter cases are one leaf; wallets whose total is
    zero get no leaf (a claim of nothing would only revert).
    """
    by_wallet: dict[str, dict[int, list[int]]] = {}
    for wallet, campaign_id, amount, count in rows:
        account = checksum_address(wallet)
        share = by_wallet.setdefault(account, {}).setdefault(int(campaign_id), [0, 0])
        share[0] += int(amount)
        share[1] += int(count)
    leaves = []
    for account in sorted(by_wallet, key=str.lower):
        shares = tuple(
            CampaignShare(campaign_id, amount, count)
            for campaign_id, (amount, count) in sorted(by_wallet[account].items())
        )
        total = sum(share.amount for share in shares)
        if total > 0:
            leaves.append(PayoutLeaf(account, total, shares))
    return leaves


def campaign_totals(leaves: Iterable[PayoutLeaf]) -> dict[int, int]:
    totals: dict[int, int] = {}
    for leaf in leaves:
        for share in leaf.campaigns:
            totals[share.campaign_id] = totals.get(share.campaign_id, 0) + share.amount
    return dict(sorted(totals.items()))


def build_tree(leaves: Iterable[PayoutLeaf]) -> StandardMerkleTree:
    return StandardMerkleTree.of((leaf.account, leaf.cumulative) for leaf in leaves)


def _amount(value: int) -> str:
    return str(int(value))


def _campaign_map(values: Mapping[int, int]) -> dict[str, str]:
    return {str(k): _amount(v) for k, v in sorted(values.items())}


def table_to_dict(table: PayoutTable) -> dict[str, Any]:
    leaves = []
    for leaf in table.leaves:
        entry: dict[str, Any] = {
            "account": leaf.account,
            "cumulativeAmount": _amount(leaf.cumulative),
            "annotations": leaf.annotations,
            "campaigns": [
                {
                    "campaignId": str(share.campaign_id),
                    "amount": _amount(share.amount),
                    "annotations": share.annotations,
                }
                for share in leaf.campaigns
            ],
        }
        if leaf.proof is not None:
            entry["proof"] = list(leaf.proof)
        leaves.append(entry)
    return {
        "format": FORMAT,
        "version": VERSION,
        "epoch": table.epoch,
        "previousEpoch": table.previous_epoch,
        "chainId": table.chain_id,
        "distributor": table.distributor,
        "token": table.token,
        "entryCutoff": table.entry_cutoff,
        "root": table.root,
        "leafEncoding": list(LEAF_ENCODING),
        "totalCommitted": _amount(table.total_committed),
        "campaignCommitted": _campaign_map(table.campaign_committed),
        "campaignsChanged": _campaign_map(table.campaigns_changed),
        "leafCount": len(table.leaves),
        "leaves": leaves,
        **table.extra,
    }


def encode_table(table: PayoutTable) -> bytes:
    """Canonical bytes of the table (what is stored, and hashed into its CID)."""
    return (
        json.dumps(
            table_to_dict(table), sort_keys=True, separators=(",", ":"), ensure_ascii=True
        ).encode("ascii")
        + b"\n"
    )


def _uint(value: Any, what: str) -> int:
    if not isinstance(value, str) or not _UINT.fullmatch(value) or int(value) > _UINT256_MAX:
        raise PayoutTableError(f"{what}: expected a uint256 as a decimal string, got {value!r}")
    return int(value)


def _count(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise PayoutTableError(f"{what}: expected a non-negative integer, got {value!r}")
    return value


def _campaigns(value: Any, what: str) -> dict[int, int]:
    if not isinstance(value, dict):
        raise PayoutTableError(f"{what}: expected an object")
    return {_uint(k, f"{what} id"): _uint(v, f"{what}[{k}]") for k, v in value.items()}


def _address(value: Any, what: str) -> str:
    try:
        return checksum_address(value)
    except ValueError:
        raise PayoutTableError(f"{what}: not an address: {value!r}") from None


def parse_table(data: bytes) -> PayoutTable:
    """Read a stored table, checking its shape (not its sums: see :func:`check_table`)."""
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise PayoutTableError(f"not JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise PayoutTableError(f"not a {FORMAT} document")
    if doc.get("version") != VERSION:
        raise PayoutTableError(f"unsupported version {doc.get('version')!r}")
    if list(doc.get("leafEncoding", [])) != list(LEAF_ENCODING):
        raise PayoutTableError(f"unsupported leaf encoding {doc.get('leafEncoding')!r}")
    raw_leaves = doc.get("leaves")
    if not isinstance(raw_leaves, list):
        raise PayoutTableError("leaves: expected a list")
    leaves = []
    for i, raw in enumerate(raw_leaves):
        if not isinstance(raw, dict) or not isinstance(raw.get("campaigns"), list):
            raise PayoutTableError(f"leaves[{i}]: malformed")
        shares = tuple(
            CampaignShare(
                _uint(s.get("campaignId"), f"leaves[{i}].campaignId"),
                _uint(s.get("amount"), f"leaves[{i}].amount"),
                _count(s.get("annotations"), f"leaves[{i}].annotations"),
            )
            for s in raw["campaigns"]
            if isinstance(s, dict)
        )
        if len(shares) != len(raw["campaigns"]):
            raise PayoutTableError(f"leaves[{i}].campaigns: malformed")
        proof = raw.get("proof")
        leaves.append(
            PayoutLeaf(
                _address(raw.get("account"), f"leaves[{i}].account"),
                _uint(raw.get("cumulativeAmount"), f"leaves[{i}].cumulativeAmount"),
                shares,
                tuple(str(p) for p in proof) if isinstance(proof, list) else None,
            )
        )
    previous = doc.get("previousEpoch")
    return PayoutTable(
        epoch=_count(doc.get("epoch"), "epoch"),
        chain_id=_count(doc.get("chainId"), "chainId"),
        distributor=_address(doc.get("distributor"), "distributor"),
        token=_address(doc.get("token"), "token") if doc.get("token") else "",
        entry_cutoff=_count(doc.get("entryCutoff"), "entryCutoff"),
        root=str(doc.get("root", "")),
        total_committed=_uint(doc.get("totalCommitted"), "totalCommitted"),
        campaign_committed=_campaigns(doc.get("campaignCommitted"), "campaignCommitted"),
        campaigns_changed=_campaigns(doc.get("campaignsChanged"), "campaignsChanged"),
        leaves=tuple(leaves),
        previous_epoch=None if previous is None else _count(previous, "previousEpoch"),
    )


def check_table(table: PayoutTable) -> tuple[StandardMerkleTree | None, list[str]]:
    """Recompute what the table claims; returns the rebuilt tree and every inconsistency."""
    problems: list[str] = []
    if not table.leaves:
        return None, ["the table has no leaves"]
    accounts = [leaf.account.lower() for leaf in table.leaves]
    if len(set(accounts)) != len(accounts):
        problems.append("an account has more than one leaf")
    for leaf in table.leaves:
        shares = sum(share.amount for share in leaf.campaigns)
        if shares != leaf.cumulative:
            problems.append(
                f"{leaf.account}: campaign shares add up to {shares}, leaf says {leaf.cumulative}"
            )
    total = sum(leaf.cumulative for leaf in table.leaves)
    if total != table.total_committed:
        problems.append(f"leaves add up to {total}, totalCommitted is {table.total_committed}")
    per_campaign = campaign_totals(table.leaves)
    committed = {k: v for k, v in table.campaign_committed.items() if v}
    if per_campaign != committed:
        problems.append("campaignCommitted differs from the leaves' campaign shares")
    if sum(table.campaign_committed.values()) != table.total_committed:
        problems.append("campaignCommitted does not add up to totalCommitted")
    for campaign_id, value in table.campaigns_changed.items():
        if table.campaign_committed.get(campaign_id) != value:
            problems.append(f"campaignsChanged[{campaign_id}] differs from campaignCommitted")
    tree = build_tree(table.leaves)
    if tree.root != table.root.lower():
        problems.append(f"the leaves give root {tree.root}, the table says {table.root}")
    for leaf in table.leaves:
        if leaf.proof is not None and not verify(
            tree.root, leaf.account, leaf.cumulative, leaf.proof
        ):
            problems.append(f"{leaf.account}: the proof in the table does not verify")
    return tree, problems


def check_successor(previous: PayoutTable, table: PayoutTable) -> list[str]:
    """What a newer cumulative root must keep: no leaf and no campaign commitment goes down."""
    problems = []
    now = {leaf.account.lower(): leaf.cumulative for leaf in table.leaves}
    for leaf in previous.leaves:
        if now.get(leaf.account.lower(), 0) < leaf.cumulative:
            problems.append(
                f"{leaf.account}: {now.get(leaf.account.lower(), 0)} < {leaf.cumulative} "
                f"in epoch {previous.epoch}"
            )
    for campaign_id, value in previous.campaign_committed.items():
        if table.campaign_committed.get(campaign_id, 0) < value:
            problems.append(f"campaign {campaign_id}: commitment went down")
    return problems
