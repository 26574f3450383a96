"""Epoch steps on the chain: ``submitRoot`` (table_stored → submitted → pending_timelock),
``acceptRoot`` (pending_timelock → accepted), and failing an epoch before acceptance.
See ``rewards.services.epochs`` for the steps as a whole."""

from __future__ import annotations

import logging
import time

from django.db import transaction
from django.utils import timezone

from ..chain import RootStatus
from ..models import ChainTx, ChainTxKind, ChainTxStatus, Epoch, EpochLeaf, EpochStatus, RewardEntry
from ..runtime import distributor_client, get_web3
from ..selectors import campaign_amounts
from .claims import claims_renew_superseded
from .outbox import chain_tx_ensure, chain_tx_retry

logger = logging.getLogger(__name__)


def epoch_submit(*, epoch: Epoch) -> Epoch:
    """Queue ``submitRoot`` in the outbox. table_stored → submitted."""
    client = distributor_client()
    with transaction.atomic():
        epoch = Epoch.objects.select_for_update().get(pk=epoch.pk)
        if epoch.status != EpochStatus.TABLE_STORED:
            return epoch
        data = client.submit_root.data(
            epoch.merkle_root,
            epoch.payout_table_cid,
            int(epoch.total_committed or 0),
            campaign_amounts(epoch.campaigns_changed),
        )
        epoch.submit_tx = chain_tx_ensure(
            kind=ChainTxKind.SUBMIT_ROOT,
            key=f"submit_root:{epoch.number}",
            to=client.address,
            data=data,
        )
        epoch.status = EpochStatus.SUBMITTED
        epoch.save()
    return epoch


def _tx(pk: int | None) -> ChainTx | None:
    # Read fresh: the outbox updates these rows in other transactions.
    return None if pk is None else ChainTx.objects.filter(pk=pk).first()


def epoch_confirm_submit(*, epoch: Epoch) -> Epoch:
    """submitted → pending_timelock once ``submitRoot`` is confirmed (or → failed)."""
    tx = _tx(epoch.submit_tx_id)
    if tx is None or tx.is_open:
        return epoch
    if tx.status == ChainTxStatus.FAILED:
        return epoch_fail(
            epoch=epoch, reason=f"submitRoot failed: {tx.error_code}: {tx.last_error}"
        )
    client = distributor_client()
    receipt = get_web3().eth.get_transaction_receipt(tx.mined_tx_hash)  # type: ignore[arg-type]
    submitted = [e for e in client.events_in(receipt) if e.name == "RootSubmitted"]
    if not submitted or submitted[0].args["root"].lower() != epoch.merkle_root.lower():
        return epoch_fail(
            epoch=epoch, reason="submitRoot receipt has no RootSubmitted for this root"
        )
    with transaction.atomic():
        epoch = Epoch.objects.select_for_update().get(pk=epoch.pk)
        if epoch.status == EpochStatus.SUBMITTED:
            epoch.root_id = int(submitted[0].args["rootId"])
            epoch.valid_at = int(submitted[0].args["validAt"])
            epoch.submit_tx_hash = tx.mined_tx_hash
            epoch.status = EpochStatus.PENDING_TIMELOCK
            epoch.save()
    return epoch


def _chain_time() -> int:
    """Now, as the next block will see it (an idle anvil's latest block can be old)."""
    latest = int(get_web3().eth.get_block("latest")["timestamp"])
    return max(latest, int(time.time()))


def epoch_accept_when_due(*, epoch: Epoch) -> Epoch:
    """pending_timelock → accepted (or failed if revoked); queues ``acceptRoot`` when due."""
    assert epoch.root_id is not None
    assert epoch.valid_at is not None
    client = distributor_client()
    info = client.root(epoch.root_id)
    if info.root.lower() != epoch.merkle_root.lower():
        return epoch_fail(epoch=epoch, reason=f"rootId {epoch.root_id} holds another root")
    if info.status == RootStatus.ACCEPTED:
        return _mark_accepted(epoch)
    if info.status == RootStatus.REVOKED:
        return epoch_fail(epoch=epoch, reason="the guardian revoked the root")
    if _chain_time() < epoch.valid_at:
        return epoch
    with transaction.atomic():
        epoch = Epoch.objects.select_for_update().get(pk=epoch.pk)
        if epoch.status != EpochStatus.PENDING_TIMELOCK:
            return epoch
        accept_tx = _tx(epoch.accept_tx_id)
        if accept_tx is None:
            epoch.accept_tx = chain_tx_ensure(
                kind=ChainTxKind.ACCEPT_ROOT,
                key=f"accept_root:{epoch.number}",
                to=client.address,
                data=client.accept_root.data(),
            )
            epoch.save()
        elif accept_tx.status == ChainTxStatus.FAILED:
            chain_tx_retry(tx=accept_tx)  # still pending on-chain: try again
    return epoch


def _mark_accepted(epoch: Epoch) -> Epoch:
    with transaction.atomic():
        epoch = Epoch.objects.select_for_update().get(pk=epoch.pk)
        if epoch.status != EpochStatus.PENDING_TIMELOCK:
            return epoch
        tx = _tx(epoch.accept_tx_id)
        if tx is not None and tx.status == ChainTxStatus.CONFIRMED:
            epoch.accept_tx_hash = tx.mined_tx_hash
        epoch.status = EpochStatus.ACCEPTED
        epoch.accepted_at = timezone.now()
        epoch.save()
        # Only the newest accepted leaves serve claims; the table keeps the history.
        EpochLeaf.objects.filter(epoch__number__lt=epoch.number).delete()
        claims_renew_superseded()
    return epoch


def epoch_fail(*, epoch: Epoch, reason: str) -> Epoch:
    """Give up on an epoch before acceptance; its entries go back to the next one."""
    with transaction.atomic():
        epoch = Epoch.objects.select_for_update().get(pk=epoch.pk)
        if epoch.is_finished:
            return epoch
        RewardEntry.objects.filter(epoch=epoch.number).update(epoch=None, wallet="")
        EpochLeaf.objects.filter(epoch=epoch).delete()
        epoch.status = EpochStatus.FAILED
        epoch.error = reason[:2000]
        epoch.save()
    logger.error("epoch %s failed: %s", epoch.number, reason)
    return epoch
