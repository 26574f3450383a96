"""The transaction outbox: ``ChainTx`` rows in, signed transactions out, receipts back.

One signing account (``KYODO_UPDATER_KEY``) sends everything, with nonces managed here:

* A worker claims one due row at a time with ``select_for_update(skip_locked=True)`` and decides
  under that lock. A pending row is estimated first (a revert fails it before any nonce is used),
  then gets ``max(next nonce in the ChainSender row, the node's pending count)`` under the sender
  row's lock, is signed, and its nonce, hash and raw bytes are committed. Only then is it
  broadcast, outside the transaction.
* So a crash at any point leaves either a pending row (nothing was signed) or a sent row whose
  every possible hash is known. Reconciling a sent row asks the chain: a receipt of any of its
  hashes (mined: wait for the confirmations; reverted: failed, the revert translated by its
  selector), else the node's latest nonce (consumed by something else: back to pending), else
  whether the node knows the transaction (no: broadcast the same bytes again), else how long it
  has waited (past ``KYODO_CHAIN_RESEND_SECONDS``: sign the same nonce with a higher fee and keep
  both hashes, since either may be mined).
* The contract makes duplicates harmless too: a second ``submitRoot`` reverts while one is
  pending, a second claim of the same leaf reverts with ``NothingToClaim`` (in a ``claimMany``
  batch, ``ClaimRejected(index, NothingToClaim(...))``).

Signing itself (fees, nonces, signatures, fee-bumped re-sends) is in :mod:`.signing`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import cast

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from web3 import Web3
from web3.exceptions import TransactionNotFound
from web3.types import TxParams, TxReceipt

from core.tasks import enqueue_on_commit

from ..chain import ContractRevert, replay_revert, reverts_translated
from ..models import OPEN_TX_STATUSES, ChainTx, ChainTxKind, ChainTxStatus
from ..runtime import ChainSettings, chain_settings, get_web3, require_chain, updater_account
from .signing import fees, next_nonce, record_signature, resign_with_higher_fee, sign

logger = logging.getLogger(__name__)

OUTBOX_TASK = "rewards.outbox_process"
RETRY_BASE = timedelta(seconds=5)
RETRY_MAX = timedelta(minutes=10)
GAS_MARGIN_PERCENT = 25
GAS_MARGIN_FIXED = 10_000
# Reverts that mean "not now" rather than "never": the row waits and is estimated again.
RETRYABLE_REVERTS = frozenset({"EnforcedPause", "TimelockNotElapsed"})
NONCE_CONSUMED = "nonce_consumed"


@dataclass
class OutboxRunResult:
    sent: int = 0
    confirmed: int = 0
    failed: int = 0
    waiting: int = 0
    stopped_early: bool = False  # the node was unreachable; due rows were left for later


def chain_tx_ensure(
    *, kind: str, key: str, to: str, data: str, value: int = 0, config: ChainSettings | None = None
) -> ChainTx:
    """The outbox row with business key ``key`` (created pending if new; sent after commit)."""
    config = config or require_chain()
    tx, created = ChainTx.objects.get_or_create(
        idempotency_key=key,
        defaults={
            "kind": ChainTxKind(kind),
            "chain_id": config.chain_id,
            "sender": updater_account().address,
            "to": Web3.to_checksum_address(to),
            "data": data,
            "value": value,
            "confirmations": config.confirmations,
            "next_attempt_at": timezone.now(),
        },
    )
    if created:
        enqueue_on_commit(OUTBOX_TASK)
    return tx


@transaction.atomic
def chain_tx_retry(*, tx: ChainTx) -> ChainTx:
    """Make a failed row pending again (same key); a no-op for any other status. Locks the row."""
    tx = ChainTx.objects.select_for_update().get(pk=tx.pk)
    if tx.status != ChainTxStatus.FAILED:
        return tx
    tx.status = ChainTxStatus.PENDING
    tx.nonce = None
    tx.error_code = ""
    tx.next_attempt_at = timezone.now()
    tx.save()
    enqueue_on_commit(OUTBOX_TASK)
    return tx


def retry_delay(attempts: int) -> timedelta:
    """5 s, 10 s, 20 s, ... capped at 10 minutes."""
    return min(RETRY_BASE * (2 ** min(max(attempts - 1, 0), 16)), RETRY_MAX)


def outbox_process(*, limit: int = 50) -> OutboxRunResult:
    """Advance every due row once (at most ``limit``): send, re-send, confirm or fail."""
    result = OutboxRunResult()
    config = chain_settings()
    if config is None:
        return result
    w3 = get_web3()
    account = updater_account()
    seen: list[int] = []
    for _ in range(limit):
        raw: bytes | None = None
        with transaction.atomic():
            tx = (
                ChainTx.objects.select_for_update(skip_locked=True)
                .filter(
                    status__in=OPEN_TX_STATUSES,
                    next_attempt_at__lte=timezone.now(),
                    chain_id=config.chain_id,
                    sender=account.address,
                )
                .exclude(pk__in=seen)
                .order_by("next_attempt_at", "id")
                .first()
            )
            if tx is None:
                break
            seen.append(tx.pk)
            try:
                # A savepoint: a step that fails half-way (after reserving a nonce, say) leaves
                # nothing behind but the error below.
                with transaction.atomic():
                    raw = _step(w3, account, tx, result)
            except Exception as exc:
                logger.warning("chain tx %s: %s", tx.pk, exc, exc_info=True)
                _note_error(ChainTx.objects.get(pk=tx.pk), f"{type(exc).__name__}: {exc}")
                if isinstance(exc, OSError | TimeoutError):  # the node is down: stop here
                    result.stopped_early = True
                    break
        if raw is not None:
            _broadcast(w3, tx, raw)
    return result


def _step(w3: Web3, account: LocalAccount, tx: ChainTx, result: OutboxRunResult) -> bytes | None:
    """Decide and record what happens to one locked row; returns raw bytes to broadcast."""
    if tx.tx_hashes:
        receipt = _find_receipt(w3, tx)
        if receipt is not None:
            _on_mined(w3, tx, receipt, result)
            return None
    if tx.status == ChainTxStatus.SENT:
        return _reconcile_unmined(w3, account, tx, result)
    return _sign_pending(w3, account, tx, result)


def _find_receipt(w3: Web3, tx: ChainTx) -> TxReceipt | None:
    for tx_hash in reversed(tx.tx_hashes):
        try:
            return w3.eth.get_transaction_receipt(HexBytes(tx_hash))
        except TransactionNotFound:
            continue
    return None


def _on_mined(w3: Web3, tx: ChainTx, receipt: TxReceipt, result: OutboxRunResult) -> None:
    tx.mined_tx_hash = HexBytes(receipt["transactionHash"]).to_0x_hex()
    tx.block_number = receipt["blockNumber"]
    if receipt["status"] != 1:
        revert = replay_revert(w3, receipt)
        _fail(tx, revert)
        result.failed += 1
        return
    if w3.eth.block_number < receipt["blockNumber"] + tx.confirmations - 1:
        tx.status = ChainTxStatus.SENT  # a pending row found mined: nothing to sign
        tx.next_attempt_at = timezone.now()
        tx.save()
        result.waiting += 1
        return
    tx.status = ChainTxStatus.CONFIRMED
    tx.confirmed_at = timezone.now()
    tx.next_attempt_at = None
    tx.last_error = ""
    tx.error_code = ""
    tx.save()
    result.confirmed += 1
    _after_final(tx, receipt, None)


def _fail(tx: ChainTx, revert: ContractRevert) -> None:
    tx.status = ChainTxStatus.FAILED
    tx.error_code = revert.error_name
    tx.last_error = revert.message
    tx.next_attempt_at = None
    tx.save()
    _after_final(tx, None, revert)


def _after_final(tx: ChainTx, receipt: TxReceipt | None, revert: ContractRevert | None) -> None:
    """What a settled row changes elsewhere (same transaction, so it happens exactly once)."""
    if tx.kind == ChainTxKind.CLAIM_MANY:
        from .claims import claim_batch_settled

        claim_batch_settled(tx=tx, receipt=receipt, revert=revert)
    if tx.kind == ChainTxKind.CLAIM and receipt is not None:  # rows from before batches
        from .watcher import claims_record_from_receipt

        claims_record_from_receipt(receipt=receipt)
    if tx.kind in (ChainTxKind.SUBMIT_ROOT, ChainTxKind.ACCEPT_ROOT):
        enqueue_on_commit("rewards.settle_tick")


def _reconcile_unmined(
    w3: Web3, account: LocalAccount, tx: ChainTx, result: OutboxRunResult
) -> bytes | None:
    assert tx.nonce is not None
    now = timezone.now()
    if w3.eth.get_transaction_count(account.address, "latest") > tx.nonce:
        # The nonce was used, but by none of our hashes. Seen twice in a row (a receipt may lag
        # the nonce on a load-balanced node): something else used it, so sign again from scratch.
        if tx.error_code != NONCE_CONSUMED:
            tx.error_code = NONCE_CONSUMED
            tx.last_error = f"nonce {tx.nonce} was used by another transaction"
            tx.next_attempt_at = now + RETRY_BASE
            tx.save()
            result.waiting += 1
            return None
        logger.warning("chain tx %s: nonce %s consumed elsewhere; re-signing", tx.pk, tx.nonce)
        tx.status = ChainTxStatus.PENDING
        tx.nonce = None
        tx.error_code = ""
        tx.save()
        return _sign_pending(w3, account, tx, result)
    try:
        w3.eth.get_transaction(HexBytes(tx.tx_hash))
        known = True
    except TransactionNotFound:
        known = False
    stuck = tx.sent_at is not None and now - tx.sent_at >= timedelta(
        seconds=settings.KYODO_CHAIN_RESEND_SECONDS
    )
    tx.next_attempt_at = now
    if stuck:
        raw = resign_with_higher_fee(w3, account, tx)
        if raw is not None:
            result.sent += 1
            return raw
    tx.save()
    result.waiting += 1
    if not known:  # dropped, or the broadcast after the commit never happened: same bytes again
        return bytes(HexBytes(tx.raw_tx))
    return None


def _sign_pending(
    w3: Web3, account: LocalAccount, tx: ChainTx, result: OutboxRunResult
) -> bytes | None:
    call = cast(
        TxParams,
        {
            "from": account.address,
            "to": Web3.to_checksum_address(tx.to),
            "data": tx.data,
            "value": int(tx.value or 0),
        },
    )
    try:
        with reverts_translated():
            estimate = int(w3.eth.estimate_gas(call))
    except ContractRevert as revert:
        if revert.error_name in RETRYABLE_REVERTS:
            tx.attempts += 1
            tx.error_code = revert.error_name
            tx.last_error = revert.message
            tx.next_attempt_at = timezone.now() + retry_delay(tx.attempts)
            tx.save()
            result.waiting += 1
        else:
            _fail(tx, revert)
            result.failed += 1
        return None
    tx.gas = estimate * (100 + GAS_MARGIN_PERCENT) // 100 + GAS_MARGIN_FIXED
    tx.max_fee_per_gas, tx.max_priority_fee_per_gas = fees(w3)
    tx.nonce = next_nonce(w3, account, tx.chain_id)
    tx.error_code = ""
    tx.last_error = ""
    raw, tx_hash = sign(w3, account, tx)
    record_signature(tx, raw, tx_hash)
    result.sent += 1
    return raw


def _broadcast(w3: Web3, tx: ChainTx, raw: bytes) -> None:
    """Send signed bytes the row already records. Any failure is left to the next reconcile."""
    try:
        w3.eth.send_raw_transaction(raw)
    except Exception as exc:
        message = str(exc)
        lowered = message.lower()
        if "already known" in lowered or "already imported" in lowered:
            return
        # "nonce too low": mined already (the receipt shows up next run) or used elsewhere;
        # "underpriced": the next re-send bids higher. Either way the row stays sent.
        logger.warning("chain tx %s: broadcast failed: %s", tx.pk, message)
        ChainTx.objects.filter(pk=tx.pk, tx_hash=tx.tx_hash).update(
            last_error=f"broadcast: {message}"[:2000]
        )


def _note_error(tx: ChainTx, message: str) -> None:
    tx.attempts += 1
    tx.last_error = message[:2000]
    tx.next_attempt_at = timezone.now() + retry_delay(tx.attempts)
    tx.save()


def chain_tx_wait(*, tx: ChainTx, timeout: float = 60.0, poll: float = 0.2) -> ChainTx:
    """Drive the outbox in this process until ``tx`` is confirmed or failed (commands, demo)."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        outbox_process()
        tx.refresh_from_db()
        if not tx.is_open or time.monotonic() > deadline:
            return tx
        time.sleep(poll)
