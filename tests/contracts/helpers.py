"""Helpers shared by the contract tests."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress
from web3.types import Wei

from rewards.chain import ClaimEntry, ContractRevert, error_selector
from rewards.merkle import StandardMerkleTree
from tests.chain_fixtures import RewardContracts

CID = "bafkreihzg3z2b4qviggswvajxfwmsbyndfvhbn3np4ilx4dqs66sfq6rxm"
CID2 = "bafybeicicmkwdi4ejuls6owvsrzcty5kht3ydya35eqf4i46yjgbs6xggy"
ZERO_ADDRESS = "0x" + "00" * 20


@contextmanager
def reverts(name: str, **expected_args: Any) -> Iterator[pytest.ExceptionInfo[ContractRevert]]:
    """Expect a revert with custom error ``name``, asserted by its 4-byte selector."""
    with pytest.raises(ContractRevert) as info:
        yield info
    assert info.value.selector == error_selector(name), info.value.message
    for key, value in expected_args.items():
        assert info.value.args_by_name[key] == value, info.value.message


def contributor(seed: int) -> ChecksumAddress:
    """A deterministic address that holds nothing (contributors need no ETH: claims are relayed)."""
    return Account.from_key((seed + 1000).to_bytes(32, "big")).address


def funded_key(c: RewardContracts, seed: int, eth: int = 10**18) -> LocalAccount:
    """A local key with some ETH, to exercise the sign-locally path."""
    account = Account.from_key((seed + 5000).to_bytes(32, "big"))
    c.chain.w3.eth.send_transaction({"from": c.admin, "to": account.address, "value": Wei(eth)})
    return account


def open_campaign(c: RewardContracts, campaign_id: int, amount: int = 0) -> None:
    c.distributor.create_campaign(campaign_id, c.owner, sender=c.manager)
    if amount:
        fund(c, campaign_id, amount)


def fund(c: RewardContracts, campaign_id: int, amount: int, *, owner: str | None = None) -> None:
    owner = owner or c.owner
    c.token.approve(c.distributor.address, amount, sender=owner)
    c.distributor.fund(campaign_id, amount, sender=owner)


def submit(
    c: RewardContracts,
    leaves: Mapping[str, int],
    commitments: Mapping[int, int],
    *,
    total: int | None = None,
    cid: str = CID,
) -> StandardMerkleTree:
    """Submit the tree of ``leaves``; ``total`` defaults to the sum of the leaves."""
    tree = StandardMerkleTree.of(leaves.items())
    c.distributor.submit_root(
        tree.root,
        cid,
        sum(leaves.values()) if total is None else total,
        commitments,
        sender=c.updater,
    )
    return tree


def accept(c: RewardContracts) -> None:
    c.chain.increase_time(c.timelock)
    c.distributor.accept_root(sender=c.relayer)


def publish(
    c: RewardContracts,
    leaves: Mapping[str, int],
    commitments: Mapping[int, int],
    *,
    total: int | None = None,
    cid: str = CID,
) -> StandardMerkleTree:
    tree = submit(c, leaves, commitments, total=total, cid=cid)
    accept(c)
    return tree


def claim(c: RewardContracts, tree: StandardMerkleTree, account: str) -> Any:
    return c.distributor.claim(
        account, tree.amount_of(account), tree.proof(account), sender=c.relayer
    )


def claim_many(c: RewardContracts, tree: StandardMerkleTree, accounts: list[str]) -> Any:
    entries = [ClaimEntry(a, tree.amount_of(a), tree.proof(a)) for a in accounts]
    return c.distributor.claim_many(entries, sender=c.relayer)


@contextmanager
def rejects(index: int, name: str, **expected_args: Any) -> Iterator[None]:
    """Expect ``claimMany`` to revert with ``ClaimRejected(index, <name>(...))``."""
    with reverts("ClaimRejected", index=index) as info:
        yield
    inner = info.value.inner
    assert inner is not None
    assert inner.selector == error_selector(name), inner.message
    for key, value in expected_args.items():
        assert inner.args_by_name[key] == value, inner.message
