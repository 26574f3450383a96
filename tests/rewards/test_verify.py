"""The payout table format and the verifier: pure checks, on-chain checks, the ledger check."""

from __future__ import annotations

import io
from dataclasses import replace
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from rewards.chain import RootStatus
from rewards.models import Epoch, RewardEntry
from rewards.payout import (
    CampaignShare,
    PayoutLeaf,
    PayoutTable,
    PayoutTableError,
    build_tree,
    check_successor,
    check_table,
    encode_table,
    leaves_from_rows,
    parse_table,
)
from rewards.verify import fetch_verified, verify_roots
from storage.services import get_store
from storage.unixfs import cid_of_bytes

from .conftest import TOKEN, RewardsChain, add_entries, wallet_of, wallet_user

A, B = wallet_of(1), wallet_of(2)


def _table(rows: list[tuple[str, int, int, int]], **kwargs: Any) -> PayoutTable:
    leaves = leaves_from_rows(rows)
    tree = build_tree(leaves)
    committed: dict[int, int] = {}
    for _, campaign, amount, _ in rows:
        committed[campaign] = committed.get(campaign, 0) + amount
    defaults: dict[str, Any] = {
        "epoch": 1,
        "chain_id": 31337,
        "distributor": wallet_of(99),
        "token": wallet_of(98),
        "entry_cutoff": 10,
        "root": tree.root,
        "total_committed": sum(committed.values()),
        "campaign_committed": committed,
        "campaigns_changed": committed,
        "leaves": tuple(leaves),
    }
    defaults.update(kwargs)
    return PayoutTable(**defaults)


def test_leaves_merge_case_variants_and_drop_zero_totals() -> None:
    leaves = leaves_from_rows(
        [(A.lower(), 1, 5, 1), (A, 2, 7, 2), (B, 1, 0, 3), (A.upper().replace("0X", "0x"), 1, 1, 1)]
    )
    assert [(leaf.account, leaf.cumulative, leaf.annotations) for leaf in leaves] == [(A, 13, 4)]
    assert leaves[0].campaigns == (CampaignShare(1, 6, 2), CampaignShare(2, 7, 2))


def test_encoding_is_canonical_and_round_trips() -> None:
    table = _table([(A, 1, 2**200, 3), (B, 2, 5, 1)])
    data = encode_table(table)
    assert encode_table(parse_table(data)) == data
    assert b'"cumulativeAmount":"' + str(2**200).encode() in data
    assert check_table(parse_table(data))[1] == []
    reordered = replace(table, leaves=tuple(reversed(table.leaves)))
    assert build_tree(reordered.leaves).root == table.root


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"total_committed": 1}, "totalCommitted"),
        ({"root": "0x" + "11" * 32}, "the leaves give root"),
        ({"campaign_committed": {1: 1, 2: 5}}, "campaignCommitted"),
    ],
)
def test_check_table_finds_inconsistencies(change: dict[str, Any], problem: str) -> None:
    table = replace(_table([(A, 1, 3, 1), (B, 2, 5, 1)]), **change)
    _, problems = check_table(table)
    assert any(problem in p for p in problems), problems


def test_a_leaf_whose_shares_do_not_add_up_is_reported() -> None:
    table = _table([(A, 1, 3, 1)])
    bad = PayoutLeaf(A, 4, table.leaves[0].campaigns)
    problems = check_table(replace(table, leaves=(bad,)))[1]
    assert any("campaign shares add up to 3" in p for p in problems)


def test_successor_must_not_go_down() -> None:
    before = _table([(A, 1, 5, 1), (B, 1, 5, 1)])
    after = _table([(A, 1, 6, 2), (B, 1, 4, 1)])
    problems = check_successor(before, after)
    assert len(problems) == 1
    assert B in problems[0]


@pytest.mark.parametrize(
    "doc",
    [b"[]", b"not json", b'{"format":"kyodo-payout-table","version":2}'],
)
def test_parse_refuses_what_is_not_a_table(doc: bytes) -> None:
    with pytest.raises(PayoutTableError):
        parse_table(doc)


def test_amounts_must_be_decimal_strings() -> None:
    data = encode_table(_table([(A, 1, 3, 1)])).replace(
        b'"cumulativeAmount":"3"', b'"cumulativeAmount":3'
    )
    with pytest.raises(PayoutTableError, match="decimal string"):
        parse_table(data)


def test_fetched_bytes_must_hash_to_the_cid() -> None:
    data = b'{"format":"kyodo-payout-table"}'
    cid = cid_of_bytes(data)
    assert fetch_verified(lambda _: data, cid) == data
    with pytest.raises(PayoutTableError, match="hash to"):
        fetch_verified(lambda _: data + b" ", cid)


# ------------------------------------------------------------------ against the chain


@pytest.fixture
def two_epochs(pyevm_rewards: RewardsChain) -> RewardsChain:
    rc = pyevm_rewards
    rc.open_campaign(1, 100 * TOKEN)
    alice, bob = wallet_user(1), wallet_user(2)
    add_entries(alice, 1, 2, TOKEN)
    rc.settle()
    rc.pass_timelock()
    rc.settle()
    add_entries(bob, 1, 1, TOKEN)
    rc.settle()  # epoch 2 pending
    return rc


@pytest.mark.django_db
def test_every_root_verifies_against_chain_and_ledger(two_epochs: RewardsChain) -> None:
    reports = verify_roots(two_epochs.distributor, get_store().read_bytes)
    assert [(r.root_id, r.status, r.ok) for r in reports] == [
        (1, RootStatus.ACCEPTED, True),
        (2, RootStatus.PENDING, True),
    ]
    out = io.StringIO()
    call_command("verify_epoch", "--all", stdout=out)
    assert out.getvalue().count(": OK;") == 2
    out = io.StringIO()
    call_command("verify_epoch", "2", stdout=out)
    assert "root 2 (pending, epoch 2): OK" in out.getvalue()


@pytest.mark.django_db
def test_a_ledger_that_changed_after_settlement_fails_verification(
    two_epochs: RewardsChain,
) -> None:
    entry = RewardEntry.objects.filter(epoch=1).first()
    assert entry is not None
    RewardEntry.objects.filter(pk=entry.pk).update(amount=5 * TOKEN)
    out = io.StringIO()
    with pytest.raises(CommandError, match="verification failed"):
        call_command("verify_epoch", "1", stdout=out)
    assert "MISMATCH" in out.getvalue()
    assert "the ledger says" in out.getvalue()
    # The on-chain check alone still passes: the table matches the root.
    call_command("verify_epoch", "1", "--no-ledger", stdout=io.StringIO())


@pytest.mark.django_db
def test_a_root_whose_table_does_not_match_is_a_mismatch(pyevm_rewards: RewardsChain) -> None:
    rc = pyevm_rewards
    rc.open_campaign(1, 100 * TOKEN)
    honest = _table(
        [(wallet_of(1), 1, TOKEN, 1)],
        chain_id=rc.chain.w3.eth.chain_id,
        distributor=rc.distributor.address,
        token=rc.contracts.token.address,
    )
    # A faulty updater publishes a root that pays wallet 1 more than the table it points to.
    cid = get_store().put_bytes(encode_table(honest)).cid
    bad_root = build_tree(leaves_from_rows([(wallet_of(1), 1, 2 * TOKEN, 1)])).root
    rc.distributor.submit_root(bad_root, cid, TOKEN, {1: TOKEN}, sender=rc.updater)
    [report] = verify_roots(rc.distributor, get_store().read_bytes)
    assert not report.ok
    assert any("the chain has" in p for p in report.problems)
    # Once the guardian revokes it, it is only a warning: a revoked root never paid anyone.
    rc.distributor.revoke_pending_root(sender=rc.contracts.guardian)
    [report] = verify_roots(rc.distributor, get_store().read_bytes)
    assert report.ok
    assert report.warnings


@pytest.mark.django_db
def test_verify_epoch_needs_an_on_chain_root(pyevm_rewards: RewardsChain) -> None:
    with pytest.raises(CommandError, match="no epoch 3"):
        call_command("verify_epoch", "3", stdout=io.StringIO())
    with pytest.raises(CommandError, match="exactly one"):
        call_command("verify_epoch", stdout=io.StringIO())


@pytest.mark.django_db
def test_settle_epoch_command_prints_number_root_and_cid(pyevm_rewards: RewardsChain) -> None:
    rc = pyevm_rewards
    out = io.StringIO()
    call_command("settle_epoch", stdout=out)
    assert "nothing to settle" in out.getvalue()
    rc.open_campaign(1, 100 * TOKEN)
    add_entries(wallet_user(1), 1, 2, TOKEN)
    out = io.StringIO()
    call_command("settle_epoch", stdout=out)
    epoch = Epoch.objects.get()
    assert epoch.status == "pending_timelock"
    text = out.getvalue()
    assert f"epoch {epoch.number} pending_timelock" in text
    assert epoch.merkle_root in text
    assert epoch.payout_table_cid in text
    rc.pass_timelock()
    call_command("settle_epoch", "--accept", stdout=io.StringIO())
    assert Epoch.objects.get().status == "accepted"
