"""Epoch settlement on py-evm: ledger → cumulative tree → payout table → submitRoot → acceptRoot."""

from __future__ import annotations

import json
from typing import Any

import pytest

from core.errors import Conflict
from rewards.chain import Role, RootStatus
from rewards.merkle import StandardMerkleTree
from rewards.models import (
    ChainTx,
    ChainTxKind,
    ChainTxStatus,
    Epoch,
    EpochLeaf,
    EpochStatus,
    RewardEntry,
    RewardStatus,
)
from rewards.payout import parse_table
from rewards.services import (
    campaign_chain_register,
    chain_tx_wait,
    epoch_open,
    epoch_store_table,
    outbox_process,
    settle_tick,
)
from storage.models import Pin, PinKind
from storage.services import get_store
from tests.accounts.factories import UserFactory
from tests.labeling.factories import CampaignFactory

from .conftest import TOKEN, RewardsChain, add_entries, wallet_user

pytestmark = pytest.mark.django_db


def _table(epoch: Epoch) -> Any:
    return parse_table(get_store().read_bytes(epoch.payout_table_cid))


def test_epoch_goes_from_ledger_to_an_accepted_root(pyevm_rewards: RewardsChain) -> None:
    rc = pyevm_rewards
    rc.open_campaign(1, 100 * TOKEN)
    rc.open_campaign(2, 100 * TOKEN)
    alice, bob = wallet_user(1), wallet_user(2)
    add_entries(alice, 1, 3, TOKEN)
    add_entries(alice, 2, 1, 2 * TOKEN)
    add_entries(bob, 1, 2, TOKEN)
    add_entries(bob, 1, 5, TOKEN, status=RewardStatus.REJECTED)
    add_entries(bob, 2, 4, TOKEN, status=RewardStatus.PENDING)

    epoch = rc.settle()
    assert epoch is not None
    assert epoch.status == EpochStatus.PENDING_TIMELOCK
    assert epoch.number == 1
    assert epoch.entry_count == 6
    assert epoch.total_committed == 7 * TOKEN
    on_chain = rc.distributor.pending_root()
    assert on_chain is not None
    assert on_chain.root_id == epoch.root_id
    assert on_chain.root == epoch.merkle_root
    assert on_chain.payout_table_cid == epoch.payout_table_cid
    assert on_chain.total_committed == 7 * TOKEN

    table = _table(epoch)
    expected = StandardMerkleTree.of(
        [(alice.wallet_address, 5 * TOKEN), (bob.wallet_address, 2 * TOKEN)]
    )
    assert table.root == expected.root == epoch.merkle_root
    leaf = table.leaf_of(alice.wallet_address)
    assert leaf is not None
    assert [(s.campaign_id, s.amount, s.annotations) for s in leaf.campaigns] == [
        (1, 3 * TOKEN, 3),
        (2, 2 * TOKEN, 1),
    ]
    assert table.campaign_committed == {1: 5 * TOKEN, 2: 2 * TOKEN}
    assert table.campaigns_changed == table.campaign_committed
    assert Pin.objects.filter(cid=epoch.payout_table_cid, kind=PinKind.PAYOUT_TABLE).exists()
    assert rc.distributor.campaign(1).reserved == 5 * TOKEN

    # Nothing happens before the timelock; afterwards acceptRoot goes through the outbox.
    assert rc.settle().status == EpochStatus.PENDING_TIMELOCK
    rc.pass_timelock()
    epoch = rc.settle()
    assert epoch.status == EpochStatus.ACCEPTED
    assert rc.distributor.root(epoch.root_id).status == RootStatus.ACCEPTED
    assert epoch.accept_tx_hash
    assert rc.distributor.totals().committed == 7 * TOKEN
    assert set(ChainTx.objects.values_list("idempotency_key", "status")) == {
        ("submit_root:1", ChainTxStatus.CONFIRMED),
        ("accept_root:1", ChainTxStatus.CONFIRMED),
    }
    # Entries are stamped with their epoch and the wallet they are paid to.
    settled = RewardEntry.objects.filter(epoch=1)
    assert settled.count() == 6
    assert set(settled.values_list("wallet", flat=True)) == {
        alice.wallet_address,
        bob.wallet_address,
    }


def test_roots_are_cumulative_and_list_only_changed_campaigns(pyevm_rewards: RewardsChain) -> None:
    rc = pyevm_rewards
    rc.open_campaign(1, 100 * TOKEN)
    rc.open_campaign(2, 100 * TOKEN)
    alice, bob = wallet_user(1), wallet_user(2)
    add_entries(alice, 1, 2, TOKEN)
    add_entries(bob, 2, 1, TOKEN)
    rc.settle()
    rc.pass_timelock()
    first = rc.settle()
    assert first.status == EpochStatus.ACCEPTED

    add_entries(alice, 1, 1, TOKEN)
    second = rc.settle()
    assert second.number == 2
    assert second.entry_count == 1
    assert second.total_committed == 4 * TOKEN
    table = _table(second)
    assert {leaf.account: leaf.cumulative for leaf in table.leaves} == {
        alice.wallet_address: 3 * TOKEN,
        bob.wallet_address: TOKEN,
    }
    assert table.campaigns_changed == {1: 3 * TOKEN}
    assert table.previous_epoch == 1
    rc.pass_timelock()
    assert rc.settle().status == EpochStatus.ACCEPTED
    # Only the newest accepted epoch keeps its leaves in the database.
    assert set(EpochLeaf.objects.values_list("epoch__number", flat=True)) == {2}


def test_entries_of_workers_without_a_wallet_wait_for_a_later_epoch(
    pyevm_rewards: RewardsChain,
) -> None:
    rc = pyevm_rewards
    rc.open_campaign(1, 100 * TOKEN)
    alice = wallet_user(1)
    carol = wallet_user(3, wallet_address="")
    add_entries(alice, 1, 1, TOKEN)
    add_entries(carol, 1, 2, TOKEN)
    rc.settle()
    rc.pass_timelock()
    first = rc.settle()
    assert first.leaf_count == 1
    assert RewardEntry.objects.filter(worker=carol, epoch__isnull=True).count() == 2

    carol.wallet_address = "0x" + "ab" * 20
    carol.save()
    second = rc.settle()
    assert second.number == 2
    table = _table(second)
    assert table.leaf_of(carol.wallet_address).cumulative == 2 * TOKEN


def test_a_campaign_is_settled_only_up_to_its_on_chain_budget(pyevm_rewards: RewardsChain) -> None:
    rc = pyevm_rewards
    rc.open_campaign(1, 100 * TOKEN)
    rc.open_campaign(2, 2 * TOKEN + TOKEN // 2)  # room for two and a half entries
    alice = wallet_user(1)
    add_entries(alice, 1, 1, TOKEN)
    add_entries(alice, 2, 4, TOKEN)
    add_entries(alice, 3, 1, TOKEN)  # campaign 3 is not on-chain at all
    epoch = rc.settle()
    assert epoch.status == EpochStatus.PENDING_TIMELOCK
    assert epoch.total_committed == 3 * TOKEN
    assert epoch.deferred == {"2": str(2 * TOKEN), "3": str(TOKEN)}
    rc.pass_timelock()
    rc.settle()

    rc.fund(2, 10 * TOKEN)
    second = rc.settle()
    assert second.total_committed == 5 * TOKEN
    assert second.deferred == {"3": str(TOKEN)}


def test_no_epoch_without_new_rewards_and_none_while_one_is_unfinished(
    pyevm_rewards: RewardsChain,
) -> None:
    rc = pyevm_rewards
    rc.open_campaign(1, 100 * TOKEN)
    assert epoch_open() is None
    assert not Epoch.objects.exists()
    add_entries(wallet_user(1), 1, 1, TOKEN)
    epoch = epoch_open()
    assert epoch is not None
    with pytest.raises(Conflict) as info:
        epoch_open()
    assert info.value.code == "epoch_unfinished"


def test_storing_the_table_twice_gives_the_same_cid(pyevm_rewards: RewardsChain) -> None:
    rc = pyevm_rewards
    rc.open_campaign(1, 100 * TOKEN)
    add_entries(wallet_user(1), 1, 2, TOKEN)
    add_entries(wallet_user(2), 1, 1, TOKEN)
    epoch = epoch_open()
    assert epoch is not None
    stored = epoch_store_table(epoch=epoch)
    # A rerun after a crash between the store and the status update rebuilds the same bytes.
    Epoch.objects.filter(pk=epoch.pk).update(status=EpochStatus.BUILDING)
    again = epoch_store_table(epoch=Epoch.objects.get(pk=epoch.pk))
    assert again.payout_table_cid == stored.payout_table_cid
    assert again.merkle_root == stored.merkle_root
    assert EpochLeaf.objects.filter(epoch=epoch).count() == 2
    doc = json.loads(get_store().read_bytes(stored.payout_table_cid))
    assert doc["format"] == "kyodo-payout-table"
    assert doc["totalCommitted"] == str(3 * TOKEN)
    assert all(isinstance(leaf["cumulativeAmount"], str) for leaf in doc["leaves"])


def test_a_failed_submission_releases_its_entries_to_the_next_epoch(
    pyevm_rewards: RewardsChain,
) -> None:
    rc = pyevm_rewards
    rc.open_campaign(1, 100 * TOKEN)
    alice = wallet_user(1)
    add_entries(alice, 1, 2, TOKEN)
    c = rc.contracts
    c.distributor.revoke_role(Role.ROOT_UPDATER, rc.updater.address, sender=c.admin)
    epoch = rc.settle(rounds=2)
    assert epoch.status == EpochStatus.FAILED
    assert "AccessControlUnauthorizedAccount" in epoch.error
    assert RewardEntry.objects.filter(epoch__isnull=True).count() == 2
    assert ChainTx.objects.get(kind=ChainTxKind.SUBMIT_ROOT).status == ChainTxStatus.FAILED

    c.distributor.grant_role(Role.ROOT_UPDATER, rc.updater.address, sender=c.admin)
    second = rc.settle()
    assert second.number == 2
    assert second.status == EpochStatus.PENDING_TIMELOCK
    assert second.total_committed == 2 * TOKEN
    assert second.root_id == 1  # the failed epoch never reached the chain


def test_a_revoked_root_fails_its_epoch_and_the_next_one_pays(pyevm_rewards: RewardsChain) -> None:
    rc = pyevm_rewards
    rc.open_campaign(1, 100 * TOKEN)
    add_entries(wallet_user(1), 1, 2, TOKEN)
    rc.settle()
    rc.distributor.revoke_pending_root(sender=rc.contracts.guardian)
    rc.settle(rounds=1)
    assert Epoch.objects.get(number=1).status == EpochStatus.FAILED
    assert "revoked" in Epoch.objects.get(number=1).error
    second = rc.settle()
    assert second.number == 2
    assert second.root_id == 2
    rc.pass_timelock()
    assert rc.settle().status == EpochStatus.ACCEPTED
    assert rc.distributor.totals().committed == 2 * TOKEN


def test_campaigns_are_registered_on_chain_through_the_outbox(pyevm_rewards: RewardsChain) -> None:
    rc = pyevm_rewards
    tx = campaign_chain_register(campaign_id=77, owner=rc.contracts.owner)
    assert campaign_chain_register(campaign_id=77, owner=rc.contracts.owner).pk == tx.pk
    tx = chain_tx_wait(tx=tx, timeout=10)
    assert tx.status == ChainTxStatus.CONFIRMED
    info = rc.distributor.campaign(77)
    assert info is not None
    assert info.owner == rc.contracts.owner


def test_the_chain_tasks_do_nothing_without_a_chain(db: Any, settings: Any) -> None:
    settings.ETH_RPC_URL = ""
    add_entries(wallet_user(1), 1, 1, TOKEN)
    assert settle_tick() is None
    assert outbox_process().sent == 0
    assert not Epoch.objects.exists()


def test_an_earning_campaign_missing_on_chain_is_registered_for_its_owner_to_fund(
    pyevm_rewards: RewardsChain,
) -> None:
    rc = pyevm_rewards
    owner = UserFactory.create(role="requester", wallet_address=rc.contracts.owner)
    campaign = CampaignFactory.create(owner=owner)
    add_entries(wallet_user(1), campaign.pk, 2, TOKEN)
    assert rc.settle() is None  # nothing settleable: no budget on-chain
    tx = ChainTx.objects.get(kind=ChainTxKind.CREATE_CAMPAIGN)
    assert tx.idempotency_key == f"create_campaign:{campaign.pk}"
    assert tx.status == ChainTxStatus.CONFIRMED
    assert rc.distributor.campaign(campaign.pk).owner == rc.contracts.owner

    rc.fund(campaign.pk, 10 * TOKEN)  # the requester funds from their wallet
    epoch = rc.settle()
    assert epoch.total_committed == 2 * TOKEN
