"""The outbox and settlement on a real node (anvil): stuck transactions, confirmations, claims."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from rewards.models import ChainTx, ChainTxStatus, EpochStatus
from rewards.services import campaign_chain_register, outbox_process
from tests.conftest import client_for

from .conftest import TOKEN, RewardsChain, add_entries, wallet_user

pytestmark = [pytest.mark.services, pytest.mark.django_db]


@pytest.fixture
def manual_mining(anvil_rewards: RewardsChain) -> Iterator[RewardsChain]:
    """Blocks only when the test mines one: a sent transaction sits in the pool, unmined."""
    rpc = anvil_rewards.chain._rpc  # type: ignore[attr-defined]
    rpc("evm_setAutomine", [False])
    try:
        yield anvil_rewards
    finally:
        rpc("evm_setAutomine", [True])


def _mine(rc: RewardsChain) -> None:
    rc.chain.mine()


def test_a_stuck_transaction_is_re_sent_with_a_higher_fee_and_the_same_nonce(
    manual_mining: RewardsChain, settings: Any
) -> None:
    rc = manual_mining
    settings.KYODO_CHAIN_RESEND_SECONDS = 30
    tx = campaign_chain_register(campaign_id=41, owner=rc.contracts.owner)
    outbox_process()
    tx.refresh_from_db()
    assert tx.status == ChainTxStatus.SENT
    first_hash, first_fee = tx.tx_hash, tx.max_fee_per_gas
    assert first_fee is not None

    outbox_process()  # not stuck yet: nothing changes
    tx.refresh_from_db()
    assert tx.tx_hashes == [first_hash]

    assert tx.sent_at is not None
    ChainTx.objects.filter(pk=tx.pk).update(sent_at=tx.sent_at - timedelta(seconds=31))
    outbox_process()
    tx.refresh_from_db()
    assert len(tx.tx_hashes) == 2
    assert tx.tx_hashes[0] == first_hash
    assert tx.max_fee_per_gas is not None
    assert tx.max_fee_per_gas >= first_fee * 125 // 100
    assert tx.max_priority_fee_per_gas is not None
    nonce = tx.nonce

    _mine(rc)
    outbox_process()
    tx.refresh_from_db()
    assert tx.status == ChainTxStatus.CONFIRMED
    assert tx.mined_tx_hash == tx.tx_hashes[1]  # the replacement won
    assert tx.nonce == nonce
    assert rc.distributor.campaign(41) is not None


def test_confirmations_are_waited_for(anvil_rewards: RewardsChain, settings: Any) -> None:
    rc = anvil_rewards
    settings.KYODO_CHAIN_CONFIRMATIONS = 3
    tx = campaign_chain_register(campaign_id=42, owner=rc.contracts.owner)
    assert tx.confirmations == 3
    outbox_process()  # sent and (automine) mined at once
    outbox_process()
    tx.refresh_from_db()
    assert tx.status == ChainTxStatus.SENT  # mined, one confirmation of three
    assert tx.mined_tx_hash == tx.tx_hash
    _mine(rc)
    outbox_process()
    tx.refresh_from_db()
    assert tx.status == ChainTxStatus.SENT
    _mine(rc)
    outbox_process()
    tx.refresh_from_db()
    assert tx.status == ChainTxStatus.CONFIRMED


def test_settle_and_claim_on_anvil(anvil_rewards: RewardsChain) -> None:
    rc = anvil_rewards
    rc.open_campaign(1, 50 * TOKEN)
    alice = wallet_user(1)
    add_entries(alice, 1, 4, TOKEN)
    epoch = rc.settle()
    assert epoch.status == EpochStatus.PENDING_TIMELOCK
    rc.pass_timelock()
    epoch = rc.settle()
    assert epoch.status == EpochStatus.ACCEPTED
    response = client_for(alice).post("/api/rewards/me/claim/")
    assert response.status_code == 202
    outbox_process()
    outbox_process()
    assert rc.contracts.token.balance_of(alice.wallet_address) == 4 * TOKEN
    assert client_for(alice).get("/api/rewards/me/").json()["claimed"] == str(4 * TOKEN)
