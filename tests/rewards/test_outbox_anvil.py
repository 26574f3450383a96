"""The outbox and settlement on a real node (anvil): stuck transactions, confirmations, claims."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from hexbytes import HexBytes

from rewards.models import ChainTx, ChainTxKind, ChainTxStatus, ClaimRequest, EpochStatus
from rewards.services import campaign_chain_register, claim_batches_build, outbox_process
from storage.services import get_store
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
    claim_batches_build()
    outbox_process()
    outbox_process()
    assert rc.contracts.token.balance_of(alice.wallet_address) == 4 * TOKEN
    assert client_for(alice).get("/api/rewards/me/").json()["claimed"] == str(4 * TOKEN)


def test_relayed_claims_go_out_in_claim_many_batches_on_anvil(
    anvil_rewards: RewardsChain, settings: Any
) -> None:
    """Twelve wallets ask; batches of five; one wallet claims by itself in the meantime."""
    rc = anvil_rewards
    settings.KYODO_CLAIM_BATCH_SIZE = 5
    settings.KYODO_CHAIN_CONFIRMATIONS = 2
    rc.open_campaign(1, 500 * TOKEN)
    users = [wallet_user(40 + i) for i in range(12)]
    for i, user in enumerate(users):
        add_entries(user, 1, i + 1, TOKEN)
    rc.settle()
    rc.pass_timelock()
    for _ in range(3):
        rc.chain.mine()
        rc.settle()
    for user in users:
        assert client_for(user).post("/api/rewards/me/claim/").status_code == 202
    self_claimer = users[3]
    proof = client_for(self_claimer).get("/api/rewards/me/proof/").json()["proof"]
    rc.distributor.claim(self_claimer.wallet_address, 4 * TOKEN, proof, sender=rc.contracts.relayer)
    for _ in range(6):
        claim_batches_build()
        outbox_process()
        rc.chain.mine()
        outbox_process()
    batches = ChainTx.objects.filter(kind=ChainTxKind.CLAIM_MANY)
    confirmed = batches.filter(status=ChainTxStatus.CONFIRMED)
    # The first batch held the self-claimer and was rejected before any nonce was used.
    assert batches.filter(status=ChainTxStatus.FAILED, error_code="ClaimRejected").count() == 1
    assert sum(ClaimRequest.objects.filter(batch_tx=b).count() for b in confirmed) == 11
    for i, user in enumerate(users):
        assert rc.contracts.token.balance_of(user.wallet_address) == (i + 1) * TOKEN
        assert rc.distributor.claimed(user.wallet_address) == (i + 1) * TOKEN
    failed = ClaimRequest.objects.get(account=self_claimer.wallet_address)
    assert (failed.status, failed.error_code) == ("failed", "NothingToClaim")
    for batch in confirmed:
        receipt = rc.chain.w3.eth.get_transaction_receipt(HexBytes(batch.mined_tx_hash))
        assert receipt["status"] == 1
        claims = ClaimRequest.objects.filter(batch_tx=batch).count()
        assert receipt["gasUsed"] / claims < 75_000  # new wallets, short proofs: batched


@pytest.fixture
def gateway() -> Iterator[str]:
    """An IPFS-gateway look-alike serving the content store at /ipfs/<cid> (altered bytes under
    /lying/ipfs/<cid>)."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    store = get_store()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            cid = self.path.rsplit("/", 1)[-1]
            try:
                data = store.read_bytes(cid)
            except Exception:
                self.send_error(404)
                return
            if self.path.startswith("/lying/"):
                data = data.replace(b'"annotations":1', b'"annotations":9')
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def test_an_outsider_verifies_with_rpc_distributor_and_gateway_only(
    anvil_rewards: RewardsChain, gateway: str, anvil_rpc_url: str
) -> None:
    rc = anvil_rewards
    rc.open_campaign(1, 50 * TOKEN)
    alice = wallet_user(1)
    add_entries(alice, 1, 2, TOKEN)
    add_entries(wallet_user(2), 1, 1, TOKEN)
    rc.settle()
    rc.pass_timelock()
    rc.settle()
    add_entries(alice, 1, 1, TOKEN)
    rc.settle()
    args = ["--rpc-url", anvil_rpc_url, "--distributor", rc.distributor.address]
    # No Django, no database: a fresh interpreter with nothing but the repository.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO", "DATABASE"))}
    done = subprocess.run(
        [sys.executable, "-m", "rewards.verify", *args, "--gateway", gateway, "--all"],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "root 1 (accepted, epoch 1): OK" in done.stdout
    assert "root 2 (pending, epoch 2): OK" in done.stdout
    out = io.StringIO()
    call_command("verify_epoch", "2", *args, "--gateway", gateway, stdout=out)
    assert "root 2 (pending, epoch 2): OK" in out.getvalue()

    # A gateway that serves other bytes for the CID is caught.
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "rewards.verify",
            *args,
            "--gateway",
            gateway + "/lying",
            "--root",
            "1",
        ],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 1
    assert "MISMATCH" in bad.stdout
