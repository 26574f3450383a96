"""The claims API and the watcher on py-evm: balances, proofs, relayed claims, events."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from rewards.merkle import verify
from rewards.models import ChainCursor, ChainEvent, ChainTx, ChainTxStatus, WalletClaim
from rewards.services import chain_watch, outbox_process
from tests.conftest import client_for

from .conftest import TOKEN, RewardsChain, add_entries, wallet_user

pytestmark = pytest.mark.django_db


def _accepted_epoch(rc: RewardsChain) -> None:
    rc.settle()
    rc.pass_timelock()
    epoch = rc.settle()
    assert epoch.status == "accepted"


@pytest.fixture
def settled(pyevm_rewards: RewardsChain) -> Any:
    rc = pyevm_rewards
    rc.open_campaign(1, 100 * TOKEN)
    alice, bob = wallet_user(1), wallet_user(2)
    add_entries(alice, 1, 3, TOKEN)
    add_entries(alice, 1, 2, TOKEN, status="pending")
    add_entries(bob, 1, 1, TOKEN)
    _accepted_epoch(rc)
    add_entries(alice, 1, 1, TOKEN)  # accepted after the epoch: awaiting settlement
    return rc, alice, bob


def test_me_shows_every_balance_as_strings(settled: Any) -> None:
    _, alice, _ = settled
    body = client_for(alice).get("/api/rewards/me/").json()
    assert body["wallet"] == alice.wallet_address
    assert body["pending"] == str(2 * TOKEN)
    assert body["accepted"] == str(4 * TOKEN)
    assert body["settled"] == str(3 * TOKEN)
    assert body["awaiting_settlement"] == str(TOKEN)
    assert body["claimable"] == str(3 * TOKEN)
    assert body["claimed"] == "0"
    assert body["epoch"]["number"] == 1
    assert body["epoch"]["total_committed"] == str(4 * TOKEN)
    assert body["last_claim"] is None


def test_proof_verifies_against_the_on_chain_root(settled: Any) -> None:
    rc, alice, _ = settled
    body = client_for(alice).get("/api/rewards/me/proof/").json()
    assert body["account"] == alice.wallet_address
    assert body["cumulative_amount"] == str(3 * TOKEN)
    current = rc.distributor.current_root()
    assert body["merkle_root"] == current.root
    assert body["root_id"] == current.root_id
    assert verify(current.root, alice.wallet_address, 3 * TOKEN, body["proof"])
    # The proof is enough to claim from any wallet, without the platform.
    rc.distributor.claim(
        alice.wallet_address, 3 * TOKEN, body["proof"], sender=rc.contracts.relayer
    )
    assert rc.contracts.token.balance_of(alice.wallet_address) == 3 * TOKEN


def test_relayed_claim_is_idempotent_and_pays_once(settled: Any) -> None:
    rc, alice, _ = settled
    client = client_for(alice)
    first = client.post("/api/rewards/me/claim/")
    assert first.status_code == 202, first.json()
    again = client.post("/api/rewards/me/claim/")
    assert again.status_code == 202
    assert first.json()["tx"]["id"] == again.json()["tx"]["id"]
    assert first.json()["amount"] == str(3 * TOKEN)
    assert first.json()["tx"]["idempotency_key"] == f"claim:{alice.wallet_address}:{3 * TOKEN}"

    outbox_process()
    outbox_process()
    tx = ChainTx.objects.get(pk=first.json()["tx"]["id"])
    assert tx.status == ChainTxStatus.CONFIRMED
    assert rc.contracts.token.balance_of(alice.wallet_address) == 3 * TOKEN
    assert WalletClaim.objects.get(wallet=alice.wallet_address).claimed == 3 * TOKEN

    body = client.get("/api/rewards/me/").json()
    assert body["claimed"] == str(3 * TOKEN)
    assert body["claimable"] == "0"
    assert body["last_claim"]["status"] == "confirmed"
    response = client.post("/api/rewards/me/claim/")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "nothing_to_claim"
    assert client.get("/api/rewards/me/proof/").json()["error"]["code"] == "nothing_to_claim"


def test_the_next_epoch_claims_only_the_difference(settled: Any) -> None:
    rc, alice, _ = settled
    client = client_for(alice)
    client.post("/api/rewards/me/claim/")
    outbox_process()
    outbox_process()
    _accepted_epoch(rc)
    body = client.get("/api/rewards/me/").json()
    assert body["settled"] == str(4 * TOKEN)
    assert body["claimable"] == str(TOKEN)
    assert client.post("/api/rewards/me/claim/").json()["amount"] == str(TOKEN)
    outbox_process()
    outbox_process()
    assert rc.contracts.token.balance_of(alice.wallet_address) == 4 * TOKEN
    assert rc.distributor.claimed(alice.wallet_address) == 4 * TOKEN


def test_errors_are_json_4xx(settled: Any) -> None:
    no_wallet = wallet_user(9, wallet_address="")
    response = client_for(no_wallet).post("/api/rewards/me/claim/")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "no_wallet"
    body = client_for(no_wallet).get("/api/rewards/me/").json()
    assert body["wallet"] is None
    assert body["claimable"] == "0"
    stranger = wallet_user(10)
    response = client_for(stranger).get("/api/rewards/me/proof/")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_in_root"
    assert client_for(stranger).get("/api/rewards/epochs/").json()[0]["number"] == 1
    assert client_for(stranger).get("/api/rewards/epochs/7/").status_code == 404


def test_no_root_yet(pyevm_rewards: RewardsChain) -> None:
    response = client_for(wallet_user(1)).post("/api/rewards/me/claim/")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "no_root"


def test_without_a_chain_the_claim_api_says_so(db: Any, settings: Any) -> None:
    settings.ETH_RPC_URL = ""
    response = client_for(wallet_user(1)).post("/api/rewards/me/claim/")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "chain_not_configured"
    assert client_for(wallet_user(2)).get("/api/rewards/me/").status_code == 200


def test_the_watcher_records_each_event_once_and_direct_claims_count(settled: Any) -> None:
    rc, _, bob = settled
    proof = client_for(bob).get("/api/rewards/me/proof/").json()["proof"]
    rc.distributor.claim(bob.wallet_address, TOKEN, proof, sender=rc.contracts.relayer)
    result = chain_watch()
    assert result.events > 0
    names = set(ChainEvent.objects.values_list("name", flat=True))
    assert {"CampaignCreated", "Funded", "RootSubmitted", "RootAccepted", "Claimed"} <= names
    claimed = ChainEvent.objects.get(name="Claimed")
    assert claimed.args["cumulativeAmount"] == str(TOKEN)
    assert WalletClaim.objects.get(wallet=bob.wallet_address).claimed == TOKEN
    count = ChainEvent.objects.count()

    # A crash after recording but before the cursor moved replays the range: nothing doubles.
    ChainCursor.objects.update(last_block=rc.start_block - 1)
    chain_watch()
    assert ChainEvent.objects.count() == count
    assert WalletClaim.objects.get(wallet=bob.wallet_address).claimed == TOKEN
    cursor = ChainCursor.objects.get()
    assert cursor.last_block == rc.chain.w3.eth.block_number


def test_the_watcher_reads_in_bounded_ranges(settled: Any, settings: Any) -> None:
    rc, _, _ = settled
    settings.KYODO_CHAIN_LOG_RANGE = 3
    first = chain_watch(max_ranges=2)
    assert first.to_block - first.from_block + 1 == 6
    chain_watch(max_ranges=1000)
    assert ChainCursor.objects.get().last_block == rc.chain.w3.eth.block_number
    assert ChainEvent.objects.filter(name="RootAccepted").count() == 1


def test_confirmations_hold_back_the_newest_blocks(settled: Any, settings: Any) -> None:
    rc, _, _ = settled
    settings.KYODO_CHAIN_CONFIRMATIONS = 3
    head = rc.chain.w3.eth.block_number
    chain_watch()
    assert ChainCursor.objects.get().last_block == head - 2


def test_a_claim_overtaken_by_a_newer_root_is_relayed_again_under_it(settled: Any) -> None:
    rc, alice, _ = settled
    client = client_for(alice)
    first = client.post("/api/rewards/me/claim/").json()["tx"]  # proof of epoch 1
    later = timezone.now() + timedelta(days=1)
    ChainTx.objects.filter(pk=first["id"]).update(next_attempt_at=later)  # not sent yet...
    rc.settle()  # ...while epoch 2 (alice's newer entry) is submitted
    rc.pass_timelock()
    # ...and the newer root is accepted on-chain (by anyone) before the claim goes out.
    rc.distributor.accept_root(sender=rc.contracts.relayer)
    ChainTx.objects.filter(pk=first["id"]).update(next_attempt_at=timezone.now())
    outbox_process()
    old = ChainTx.objects.get(pk=first["id"])
    assert old.status == ChainTxStatus.FAILED
    assert old.error_code == "InvalidProof"  # the database does not know epoch 2 is accepted yet
    rc.settle()  # now it does: the claim is relayed again with the newer leaf
    old.refresh_from_db()
    assert old.error_code == "superseded"
    renewed = ChainTx.objects.get(idempotency_key=f"claim:{alice.wallet_address}:{4 * TOKEN}")
    assert renewed.status == ChainTxStatus.CONFIRMED
    assert rc.contracts.token.balance_of(alice.wallet_address) == 4 * TOKEN


def test_a_claim_sent_after_the_database_saw_the_newer_root_is_renewed_at_once(
    settled: Any,
) -> None:
    rc, alice, _ = settled
    first = client_for(alice).post("/api/rewards/me/claim/").json()["tx"]
    later = timezone.now() + timedelta(days=1)
    ChainTx.objects.filter(pk=first["id"]).update(next_attempt_at=later)
    rc.settle()
    rc.pass_timelock()
    assert rc.settle().number == 2  # epoch 2 accepted, in the database too
    ChainTx.objects.filter(pk=first["id"]).update(next_attempt_at=timezone.now())
    outbox_process()  # InvalidProof, and relayed again under epoch 2 in the same step
    assert ChainTx.objects.get(pk=first["id"]).error_code == "superseded"
    outbox_process()
    outbox_process()
    assert rc.contracts.token.balance_of(alice.wallet_address) == 4 * TOKEN
