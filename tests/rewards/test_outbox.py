"""The transaction outbox on py-evm: keys, nonces, crashes around the broadcast, reverts."""

from __future__ import annotations

from typing import Any

import pytest
from web3.types import Wei

from rewards.models import ChainSender, ChainTx, ChainTxKind, ChainTxStatus
from rewards.services import (
    campaign_chain_register,
    chain_tx_ensure,
    chain_tx_retry,
    outbox_process,
)
from rewards.services import outbox as outbox_module

from .conftest import RewardsChain

pytestmark = pytest.mark.django_db


def _no_broadcast(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The worker dies right after committing the signed row, before the broadcast."""
    dropped: list[bytes] = []
    monkeypatch.setattr(outbox_module, "_broadcast", lambda w3, tx, raw: dropped.append(raw))
    return dropped


def test_same_key_same_row(pyevm_rewards: RewardsChain) -> None:
    a = campaign_chain_register(campaign_id=5, owner=pyevm_rewards.contracts.owner)
    b = campaign_chain_register(campaign_id=5, owner=pyevm_rewards.contracts.owner)
    assert a.pk == b.pk
    assert ChainTx.objects.count() == 1
    assert a.idempotency_key == "create_campaign:5"


def test_create_campaign_call_data_and_only_checksummed_owners(
    pyevm_rewards: RewardsChain,
) -> None:
    from web3.exceptions import InvalidAddress

    owner = pyevm_rewards.contracts.owner
    tx = campaign_chain_register(campaign_id=5, owner=owner)
    distributor = pyevm_rewards.contracts.distributor
    assert tx.data == distributor.contract.encode_abi("createCampaign", args=[5, owner])
    typo = owner[:-1] + ("1" if owner[-1] != "1" else "2")  # the client would re-case it
    for bad in (owner.lower(), typo):
        with pytest.raises(InvalidAddress):
            campaign_chain_register(campaign_id=6, owner=bad)
    assert ChainTx.objects.count() == 1


def test_a_row_signed_but_never_broadcast_is_sent_by_the_next_run(
    pyevm_rewards: RewardsChain, monkeypatch: pytest.MonkeyPatch
) -> None:
    w3 = pyevm_rewards.chain.w3
    tx = campaign_chain_register(campaign_id=6, owner=pyevm_rewards.contracts.owner)
    with monkeypatch.context() as m:
        dropped = _no_broadcast(m)
        assert outbox_process().sent == 1
    tx.refresh_from_db()
    assert tx.status == ChainTxStatus.SENT
    assert tx.nonce == w3.eth.get_transaction_count(pyevm_rewards.updater.address)
    assert len(dropped) == 1
    assert tx.tx_hashes == [tx.tx_hash]
    assert pyevm_rewards.distributor.campaign(6) is None

    outbox_process()  # the node does not know the hash: the same bytes go out again
    outbox_process()
    tx.refresh_from_db()
    assert tx.status == ChainTxStatus.CONFIRMED
    assert tx.mined_tx_hash == tx.tx_hash
    assert tx.tx_hashes == [tx.tx_hash]
    assert pyevm_rewards.distributor.campaign(6) is not None


def test_nonces_are_consecutive_and_recorded_before_the_broadcast(
    pyevm_rewards: RewardsChain, monkeypatch: pytest.MonkeyPatch
) -> None:
    w3 = pyevm_rewards.chain.w3
    start = w3.eth.get_transaction_count(pyevm_rewards.updater.address)
    rows = [
        campaign_chain_register(campaign_id=i, owner=pyevm_rewards.contracts.owner)
        for i in range(10, 14)
    ]
    with monkeypatch.context() as m:
        _no_broadcast(m)
        outbox_process()
    assert [ChainTx.objects.get(pk=r.pk).nonce for r in rows] == list(range(start, start + 4))
    sender = ChainSender.objects.get(address=pyevm_rewards.updater.address)
    assert sender.next_nonce == start + 4
    for _ in range(3):
        outbox_process()
    assert set(ChainTx.objects.values_list("status", flat=True)) == {ChainTxStatus.CONFIRMED}


def test_a_nonce_used_elsewhere_is_detected_and_the_row_signed_again(
    pyevm_rewards: RewardsChain, monkeypatch: pytest.MonkeyPatch
) -> None:
    rc = pyevm_rewards
    w3 = rc.chain.w3
    tx = campaign_chain_register(campaign_id=8, owner=rc.contracts.owner)
    with monkeypatch.context() as m:
        _no_broadcast(m)
        outbox_process()
    tx.refresh_from_db()
    assert tx.nonce is not None
    # Another system uses the same key: its transaction takes the nonce first.
    other = rc.updater.sign_transaction(
        {
            "chainId": w3.eth.chain_id,
            "nonce": tx.nonce,
            "to": rc.contracts.admin,
            "value": 1,
            "gas": 21_000,
            "gasPrice": w3.eth.gas_price * 2,
        }
    )
    w3.eth.send_raw_transaction(other.raw_transaction)
    old_nonce = tx.nonce
    outbox_process()
    tx.refresh_from_db()
    assert tx.error_code == "nonce_consumed"
    assert tx.status == ChainTxStatus.SENT
    ChainTx.objects.filter(pk=tx.pk).update(next_attempt_at=tx.created_at)
    for _ in range(3):
        outbox_process()
        ChainTx.objects.filter(pk=tx.pk, status="sent").update(next_attempt_at=tx.created_at)
    tx.refresh_from_db()
    assert tx.status == ChainTxStatus.CONFIRMED
    assert tx.nonce == old_nonce + 1
    assert len(tx.tx_hashes) == 2
    assert rc.distributor.campaign(8) is not None


def test_a_revert_fails_the_row_with_the_error_name_and_uses_no_nonce(
    pyevm_rewards: RewardsChain,
) -> None:
    rc = pyevm_rewards
    rc.open_campaign(9, 0)
    w3 = rc.chain.w3
    before = w3.eth.get_transaction_count(rc.updater.address)
    tx = campaign_chain_register(campaign_id=9, owner=rc.contracts.owner)
    result = outbox_process()
    tx.refresh_from_db()
    assert result.failed == 1
    assert tx.status == ChainTxStatus.FAILED
    assert tx.error_code == "CampaignExists"
    assert tx.nonce is None
    assert w3.eth.get_transaction_count(rc.updater.address) == before
    assert chain_tx_retry(tx=tx).status == ChainTxStatus.PENDING


def test_a_transaction_that_reverts_on_chain_is_failed_from_its_receipt(
    pyevm_rewards: RewardsChain, monkeypatch: pytest.MonkeyPatch
) -> None:
    rc = pyevm_rewards
    tx = campaign_chain_register(campaign_id=15, owner=rc.contracts.owner)
    with monkeypatch.context() as m:
        dropped = _no_broadcast(m)
        outbox_process()
    # Between the estimate and the broadcast the campaign got created by someone else.
    rc.distributor.create_campaign(15, rc.contracts.owner, sender=rc.contracts.manager)
    rc.chain.w3.eth.send_raw_transaction(dropped[0])
    outbox_process()
    tx.refresh_from_db()
    assert tx.status == ChainTxStatus.FAILED
    assert tx.error_code == "CampaignExists"
    assert tx.mined_tx_hash == tx.tx_hash


def test_retryable_reverts_wait_instead_of_failing(pyevm_rewards: RewardsChain) -> None:
    rc = pyevm_rewards
    client = rc.distributor
    tx = chain_tx_ensure(
        kind=ChainTxKind.ACCEPT_ROOT,
        key="accept_root:test",
        to=client.address,
        data=client.contract.encode_abi("acceptRoot", args=[]),
    )
    outbox_process()
    tx.refresh_from_db()
    assert tx.status == ChainTxStatus.FAILED  # NoPendingRoot: never going to work
    assert tx.error_code == "NoPendingRoot"

    rc.distributor.pause(sender=rc.contracts.guardian)
    claim = chain_tx_ensure(
        kind=ChainTxKind.CLAIM,
        key="claim:test",
        to=client.address,
        data=client.contract.encode_abi("claim", args=[rc.contracts.owner, 1, []]),
    )
    outbox_process()
    claim.refresh_from_db()
    assert claim.status == ChainTxStatus.PENDING
    assert claim.error_code == "EnforcedPause"
    assert claim.next_attempt_at is not None
    assert claim.next_attempt_at > claim.updated_at


def test_a_node_that_is_down_stops_the_run_and_keeps_the_rows(
    pyevm_rewards: RewardsChain, monkeypatch: pytest.MonkeyPatch
) -> None:
    tx = campaign_chain_register(campaign_id=16, owner=pyevm_rewards.contracts.owner)
    w3 = pyevm_rewards.chain.w3

    def down(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("connection refused")

    monkeypatch.setattr(w3.eth, "estimate_gas", down)
    result = outbox_process()
    assert result.stopped_early
    tx.refresh_from_db()
    assert tx.status == ChainTxStatus.PENDING
    assert tx.attempts == 1
    assert "connection refused" in tx.last_error
    assert tx.nonce is None
    assert not ChainSender.objects.filter(next_nonce__gt=0).exists()
    monkeypatch.undo()
    ChainTx.objects.filter(pk=tx.pk).update(next_attempt_at=tx.created_at)
    outbox_process()
    outbox_process()
    tx.refresh_from_db()
    assert tx.status == ChainTxStatus.CONFIRMED


def test_value_transfers_and_wei_are_integers(pyevm_rewards: RewardsChain) -> None:
    rc = pyevm_rewards
    w3 = rc.chain.w3
    tx = chain_tx_ensure(
        kind=ChainTxKind.CLAIM, key="value:test", to=rc.contracts.relayer, data="0x", value=Wei(5)
    )
    before = w3.eth.get_balance(rc.contracts.relayer)
    outbox_process()
    outbox_process()
    tx.refresh_from_db()
    assert tx.status == ChainTxStatus.CONFIRMED
    assert w3.eth.get_balance(rc.contracts.relayer) == before + 5
