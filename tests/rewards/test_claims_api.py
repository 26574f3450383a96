"""The claims API and the watcher on py-evm: balances, proofs, relayed claims in claimMany
batches, events."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from rewards.merkle import verify
from rewards.models import (
    ChainCursor,
    ChainEvent,
    ChainTx,
    ChainTxKind,
    ChainTxStatus,
    ClaimRequest,
    ClaimRequestStatus,
    WalletClaim,
)
from rewards.services import chain_watch, claim_batches_build, outbox_process
from tests.conftest import client_for

from .conftest import TOKEN, RewardsChain, add_entries, wallet_user

pytestmark = pytest.mark.django_db


def relay() -> list[ChainTx]:
    """What the beat does for relayed claims: batch the queued requests, send, confirm."""
    built = claim_batches_build()
    outbox_process()
    outbox_process()
    return built


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
    body = first.json()
    assert body["status"] == "queued"
    assert body["tx"] is None
    assert body["account"] == alice.wallet_address
    assert body["cumulative_amount"] == body["amount"] == str(3 * TOKEN)
    assert body["epoch"] == 1
    again = client.post("/api/rewards/me/claim/")
    assert again.status_code == 202
    assert again.json()["id"] == body["id"]
    assert client.get("/api/rewards/me/").json()["last_claim"]["status"] == "queued"

    (batch,) = relay()
    assert batch.kind == ChainTxKind.CLAIM_MANY
    batch.refresh_from_db()
    assert batch.status == ChainTxStatus.CONFIRMED
    request = ClaimRequest.objects.get(pk=body["id"])
    assert (request.status, request.batch_tx_id, request.batch_index) == ("confirmed", batch.pk, 0)
    assert rc.contracts.token.balance_of(alice.wallet_address) == 3 * TOKEN
    assert WalletClaim.objects.get(wallet=alice.wallet_address).claimed == 3 * TOKEN
    assert relay() == []  # nothing queued: no transaction

    body = client.get("/api/rewards/me/").json()
    assert body["claimed"] == str(3 * TOKEN)
    assert body["claimable"] == "0"
    assert body["last_claim"]["status"] == "confirmed"
    assert body["last_claim"]["tx"]["status"] == "confirmed"
    assert body["last_claim"]["tx"]["mined_tx_hash"] == batch.mined_tx_hash
    response = client.post("/api/rewards/me/claim/")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "nothing_to_claim"
    assert client.get("/api/rewards/me/proof/").json()["error"]["code"] == "nothing_to_claim"


def test_requests_are_batched_up_to_the_batch_size(
    pyevm_rewards: RewardsChain, settings: Any
) -> None:
    rc = pyevm_rewards
    settings.KYODO_CLAIM_BATCH_SIZE = 2
    rc.open_campaign(1, 100 * TOKEN)
    users = [wallet_user(20 + i) for i in range(5)]
    for i, user in enumerate(users):
        add_entries(user, 1, i + 1, TOKEN)
    _accepted_epoch(rc)
    for user in users:
        assert client_for(user).post("/api/rewards/me/claim/").status_code == 202
    batches = relay()
    assert len(batches) == 3  # 2 + 2 + 1
    assert {b.kind for b in batches} == {ChainTxKind.CLAIM_MANY}
    assert [ClaimRequest.objects.filter(batch_tx=b).count() for b in batches] == [2, 2, 1]
    for i, user in enumerate(users):
        assert rc.contracts.token.balance_of(user.wallet_address) == (i + 1) * TOKEN
    assert set(ClaimRequest.objects.values_list("status", flat=True)) == {"confirmed"}
    chain_watch()  # the watcher agrees with the receipts
    assert ChainEvent.objects.filter(name="Claimed").count() == 5


def test_the_next_epoch_claims_only_the_difference(settled: Any) -> None:
    rc, alice, _ = settled
    client = client_for(alice)
    client.post("/api/rewards/me/claim/")
    relay()
    _accepted_epoch(rc)
    body = client.get("/api/rewards/me/").json()
    assert body["settled"] == str(4 * TOKEN)
    assert body["claimable"] == str(TOKEN)
    assert client.post("/api/rewards/me/claim/").json()["amount"] == str(TOKEN)
    relay()
    assert rc.contracts.token.balance_of(alice.wallet_address) == 4 * TOKEN
    assert rc.distributor.claimed(alice.wallet_address) == 4 * TOKEN


def test_a_rejected_entry_fails_alone_and_the_others_go_in_the_next_batch(settled: Any) -> None:
    rc, alice, bob = settled
    client_for(alice).post("/api/rewards/me/claim/")
    bob_request = client_for(bob).post("/api/rewards/me/claim/").json()
    # Bob claims by himself (with the proof from the API) before the platform's batch goes out.
    proof = client_for(bob).get("/api/rewards/me/proof/").json()["proof"]
    rc.distributor.claim(bob.wallet_address, TOKEN, proof, sender=rc.contracts.relayer)
    (first,) = claim_batches_build()
    outbox_process()  # the estimate reverts: ClaimRejected(1, NothingToClaim(1 token))
    first.refresh_from_db()
    assert first.status == ChainTxStatus.FAILED
    assert first.error_code == "ClaimRejected"
    bob_row = ClaimRequest.objects.get(pk=bob_request["id"])
    assert (bob_row.status, bob_row.error_code) == ("failed", "NothingToClaim")
    alice_row = ClaimRequest.objects.get(account=alice.wallet_address)
    assert (alice_row.status, alice_row.batch_tx) == ("queued", None)
    (second,) = relay()
    assert second.pk != first.pk
    alice_row.refresh_from_db()
    assert alice_row.status == "confirmed"
    assert rc.contracts.token.balance_of(alice.wallet_address) == 3 * TOKEN
    assert rc.contracts.token.balance_of(bob.wallet_address) == TOKEN  # paid once, by himself
    response = client_for(bob).post("/api/rewards/me/claim/")
    assert response.status_code == 409


def test_a_crash_while_batching_leaves_the_requests_queued(
    settled: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    rc, alice, bob = settled
    client_for(alice).post("/api/rewards/me/claim/")
    client_for(bob).post("/api/rewards/me/claim/")

    def crash(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("worker killed")

    with monkeypatch.context() as m:
        m.setattr(ClaimRequest.objects, "bulk_update", crash)
        with pytest.raises(RuntimeError):
            claim_batches_build()
    # The outbox row and the request updates were one transaction: neither happened.
    assert not ChainTx.objects.filter(kind=ChainTxKind.CLAIM_MANY).exists()
    assert set(ClaimRequest.objects.values_list("status", flat=True)) == {"queued"}
    (batch,) = relay()
    assert ClaimRequest.objects.filter(batch_tx=batch, status="confirmed").count() == 2
    # A rerun of every step afterwards changes nothing and pays nothing.
    assert relay() == []
    assert rc.contracts.token.balance_of(alice.wallet_address) == 3 * TOKEN
    assert rc.contracts.token.balance_of(bob.wallet_address) == TOKEN


def test_a_batch_failing_without_an_index_fails_its_requests(settled: Any) -> None:
    from rewards.chain import ContractRevert, error_selector
    from rewards.services.claims import claim_batch_settled

    _, alice, _ = settled
    client_for(alice).post("/api/rewards/me/claim/")
    (batch,) = claim_batches_build()
    ChainTx.objects.filter(pk=batch.pk).update(status="failed", error_code="EnforcedPause")
    batch.refresh_from_db()
    revert = ContractRevert(bytes.fromhex(error_selector("EnforcedPause")[2:]))
    claim_batch_settled(tx=batch, receipt=None, revert=revert)
    row = ClaimRequest.objects.get()
    assert (row.status, row.error_code) == ("failed", "EnforcedPause")
    # Asking again queues it again (only NothingToClaim is final).
    assert client_for(alice).post("/api/rewards/me/claim/").json()["status"] == "queued"


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
    assert client_for(stranger).get("/api/rewards/epochs/").json()["results"][0]["number"] == 1
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
    rc, alice, bob = settled
    first = client_for(alice).post("/api/rewards/me/claim/").json()  # leaf of epoch 1
    client_for(bob).post("/api/rewards/me/claim/")
    (batch,) = claim_batches_build()
    later = timezone.now() + timedelta(days=1)
    ChainTx.objects.filter(pk=batch.pk).update(next_attempt_at=later)  # not sent yet...
    rc.settle()  # ...while epoch 2 (alice's newer entry) is submitted
    rc.pass_timelock()
    # ...and the newer root is accepted on-chain (by anyone) before the batch goes out.
    rc.distributor.accept_root(sender=rc.contracts.relayer)
    ChainTx.objects.filter(pk=batch.pk).update(next_attempt_at=timezone.now())
    outbox_process()
    batch.refresh_from_db()
    assert batch.status == ChainTxStatus.FAILED
    assert batch.error_code == "ClaimRejected"  # InvalidProof at index 0: the root moved
    old = ClaimRequest.objects.get(pk=first["id"])
    assert (old.status, old.error_code) == ("failed", "InvalidProof")
    assert set(ClaimRequest.objects.values_list("status", flat=True)) == {"failed"}
    rc.settle()  # the database learns that epoch 2 is accepted: both are renewed under it
    old.refresh_from_db()
    assert old.status == ClaimRequestStatus.SUPERSEDED
    assert old.superseded_by is not None
    assert old.superseded_by.cumulative == 4 * TOKEN
    bob_row = ClaimRequest.objects.get(account=bob.wallet_address)  # his leaf did not change:
    assert (bob_row.status, bob_row.epoch) == ("queued", 1)  # the same request, queued again
    relay()
    assert rc.contracts.token.balance_of(alice.wallet_address) == 4 * TOKEN
    assert rc.contracts.token.balance_of(bob.wallet_address) == TOKEN
    bob_row.refresh_from_db()
    assert (bob_row.status, bob_row.epoch) == ("confirmed", 2)  # with epoch 2's proof
    body = client_for(alice).get("/api/rewards/me/").json()
    assert body["last_claim"]["status"] == "confirmed"
    assert body["last_claim"]["cumulative_amount"] == str(4 * TOKEN)


def test_a_queued_request_under_an_older_root_is_renewed_when_batched(settled: Any) -> None:
    rc, alice, _ = settled
    first = client_for(alice).post("/api/rewards/me/claim/").json()
    rc.settle()
    rc.pass_timelock()
    assert rc.settle().number == 2  # epoch 2 accepted, in the database too
    (batch,) = relay()  # the epoch-1 request is superseded; its renewal goes in this batch
    old = ClaimRequest.objects.get(pk=first["id"])
    assert old.status == ClaimRequestStatus.SUPERSEDED
    assert old.superseded_by is not None
    assert old.superseded_by.batch_tx_id == batch.pk
    assert rc.contracts.token.balance_of(alice.wallet_address) == 4 * TOKEN


def test_the_beat_tick_batches_and_sends_relayed_claims(settled: Any) -> None:
    from rewards import tasks

    rc, alice, bob = settled
    client_for(alice).post("/api/rewards/me/claim/")
    client_for(bob).post("/api/rewards/me/claim/")
    tasks.tick()  # watch, outbox, settle, batch, outbox: sent and mined (py-evm automines)
    tasks.tick()
    batch = ChainTx.objects.get(kind=ChainTxKind.CLAIM_MANY)
    assert batch.status == ChainTxStatus.CONFIRMED
    assert set(ClaimRequest.objects.values_list("status", flat=True)) == {"confirmed"}
    assert rc.contracts.token.balance_of(bob.wallet_address) == TOKEN
    assert claim_batches_build() == []  # nothing queued: the tick's batching step has no work


def test_a_batch_reverted_on_chain_after_a_newer_root_is_renewed(settled: Any) -> None:
    """Mined after acceptRoot in the same block, a batch's replay on the parent block succeeds:
    the revert is unknown, and the moved root says what happened."""
    from rewards.chain import ContractRevert
    from rewards.services.claims import claim_batch_settled

    rc, alice, _ = settled
    client_for(alice).post("/api/rewards/me/claim/")
    (batch,) = claim_batches_build()
    later = timezone.now() + timedelta(days=1)
    ChainTx.objects.filter(pk=batch.pk).update(next_attempt_at=later)  # not sent by settle()
    rc.settle()
    rc.pass_timelock()
    rc.distributor.accept_root(sender=rc.contracts.relayer)  # on-chain only, for now
    ChainTx.objects.filter(pk=batch.pk).update(status="failed", error_code="UnknownRevert")
    batch.refresh_from_db()
    claim_batch_settled(tx=batch, receipt=None, revert=ContractRevert(b""))
    row = ClaimRequest.objects.get()
    assert (row.status, row.error_code) == ("failed", "InvalidProof")
    rc.settle()  # the database accepts epoch 2: the request is renewed under it
    row.refresh_from_db()
    assert row.status == "superseded"
    relay()
    assert rc.contracts.token.balance_of(alice.wallet_address) == 4 * TOKEN


def test_a_batch_signed_but_never_broadcast_pays_once(
    settled: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker dies after committing the signed claimMany, before the broadcast; a rerun
    re-sends the same bytes, and rebuilding or re-asking changes nothing."""
    from rewards.services import outbox as outbox_module

    rc, alice, bob = settled
    client_for(alice).post("/api/rewards/me/claim/")
    client_for(bob).post("/api/rewards/me/claim/")
    (batch,) = claim_batches_build()
    with monkeypatch.context() as m:
        m.setattr(outbox_module, "_broadcast", lambda w3, tx, raw: None)
        assert outbox_process().sent == 1
    batch.refresh_from_db()
    assert batch.status == ChainTxStatus.SENT
    assert rc.contracts.token.balance_of(alice.wallet_address) == 0
    assert claim_batches_build() == []  # its requests are in flight: no second batch
    assert client_for(alice).post("/api/rewards/me/claim/").json()["status"] == "batched"
    outbox_process()  # the node does not know the hash: the same bytes again
    outbox_process()
    batch.refresh_from_db()
    assert batch.status == ChainTxStatus.CONFIRMED
    assert batch.tx_hashes == [batch.tx_hash]
    assert set(ClaimRequest.objects.values_list("status", flat=True)) == {"confirmed"}
    assert rc.contracts.token.balance_of(alice.wallet_address) == 3 * TOKEN
    assert rc.contracts.token.balance_of(bob.wallet_address) == TOKEN
    assert relay() == []


def test_the_admin_retry_leaves_failed_claim_batches_alone(settled: Any, rf: Any) -> None:
    from django.contrib import admin as django_admin

    from rewards.admin import ChainTxAdmin

    _, alice, _ = settled
    client_for(alice).post("/api/rewards/me/claim/")
    (batch,) = claim_batches_build()
    ChainTx.objects.filter(pk=batch.pk).update(status="failed", error_code="ClaimRejected")
    model_admin = ChainTxAdmin(ChainTx, django_admin.site)
    request = rf.post("/")
    model_admin.message_user = lambda *args, **kwargs: None  # type: ignore[method-assign]
    model_admin.retry(request, ChainTx.objects.all())
    batch.refresh_from_db()
    assert batch.status == "failed"


def test_a_part_batch_waits_for_company_until_its_oldest_request_has_waited(
    pyevm_rewards: RewardsChain, settings: Any
) -> None:
    """KYODO_CLAIM_BATCH_WAIT_SECONDS: gas per claim falls with batch size, so a batch that is
    not full goes out only once its oldest request has waited that long; a full one at once."""
    rc = pyevm_rewards
    settings.KYODO_CLAIM_BATCH_SIZE = 2
    settings.KYODO_CLAIM_BATCH_WAIT_SECONDS = 60
    rc.open_campaign(1, 100 * TOKEN)
    users = [wallet_user(40 + i) for i in range(3)]
    for user in users:
        add_entries(user, 1, 1, TOKEN)
    _accepted_epoch(rc)
    assert client_for(users[0]).post("/api/rewards/me/claim/").status_code == 202
    assert claim_batches_build() == []  # one request, just made: it waits
    for user in users[1:]:
        client_for(user).post("/api/rewards/me/claim/")
    (full,) = claim_batches_build()  # two make a full batch: out at once; the third waits
    assert ClaimRequest.objects.filter(batch_tx=full).count() == 2
    ClaimRequest.objects.filter(status=ClaimRequestStatus.QUEUED).update(
        created_at=timezone.now() - timedelta(seconds=61)
    )
    (late,) = claim_batches_build()
    assert ClaimRequest.objects.filter(batch_tx=late).count() == 1
