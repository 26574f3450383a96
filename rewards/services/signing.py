"""Signing for the outbox: fees, nonces, EIP-1559 signatures and fee-bumped re-sends.

Every function here records what it signed on the ``ChainTx`` row (saved by the caller's
transaction) before anything is broadcast; :mod:`.outbox` decides when to call them.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.utils import timezone
from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from web3 import Web3

from ..models import ChainSender, ChainTx, ChainTxStatus

logger = logging.getLogger(__name__)


def fees(w3: Web3) -> tuple[int, int | None]:
    """``(max_fee_per_gas, max_priority_fee_per_gas)``; priority ``None`` on a legacy chain."""
    block = w3.eth.get_block("latest")
    base = block.get("baseFeePerGas")
    cap = int(settings.KYODO_CHAIN_MAX_FEE_WEI)
    if base is None:
        return min(int(w3.eth.gas_price), cap), None
    tip = int(settings.KYODO_CHAIN_PRIORITY_FEE_WEI)
    return min(2 * int(base) + tip, cap), min(tip, cap)


def sign(w3: Web3, account: LocalAccount, tx: ChainTx) -> tuple[bytes, str]:
    assert tx.nonce is not None
    assert tx.gas is not None
    assert tx.max_fee_per_gas is not None
    params: dict[str, Any] = {
        "chainId": tx.chain_id,
        "nonce": tx.nonce,
        "to": Web3.to_checksum_address(tx.to),
        "data": tx.data,
        "value": int(tx.value or 0),
        "gas": tx.gas,
    }
    if tx.max_priority_fee_per_gas is None:
        params["gasPrice"] = tx.max_fee_per_gas
    else:
        params.update(
            type=2,
            maxFeePerGas=tx.max_fee_per_gas,
            maxPriorityFeePerGas=tx.max_priority_fee_per_gas,
        )
    signed = account.sign_transaction(params)
    return bytes(signed.raw_transaction), HexBytes(signed.hash).to_0x_hex()


def record_signature(tx: ChainTx, raw: bytes, tx_hash: str) -> None:
    tx.status = ChainTxStatus.SENT
    tx.tx_hash = tx_hash
    tx.tx_hashes = [*tx.tx_hashes, tx_hash]
    tx.raw_tx = "0x" + raw.hex()
    tx.sent_at = timezone.now()
    tx.next_attempt_at = timezone.now()
    tx.attempts += 1
    tx.save()


def next_nonce(w3: Web3, account: LocalAccount, chain_id: int) -> int:
    """Reserve the sender's next nonce (locks its ChainSender row until the caller commits)."""
    sender, _ = ChainSender.objects.select_for_update().get_or_create(
        chain_id=chain_id, address=account.address
    )
    # The node's pending count covers what another system sent with this key; our row covers
    # what we signed but the node has not seen yet (a broadcast still to come).
    nonce = max(sender.next_nonce, int(w3.eth.get_transaction_count(account.address, "pending")))
    sender.next_nonce = nonce + 1
    sender.save(update_fields=["next_nonce", "updated_at"])
    return nonce


def _bumped(value: int) -> int:
    return max(value * (100 + int(settings.KYODO_CHAIN_FEE_BUMP_PERCENT)) // 100, value + 1)


def resign_with_higher_fee(w3: Web3, account: LocalAccount, tx: ChainTx) -> bytes | None:
    """Same nonce, higher fee, new hash (all hashes kept). None if the fee cap is reached."""
    assert tx.max_fee_per_gas is not None
    cap = int(settings.KYODO_CHAIN_MAX_FEE_WEI)
    current_max, current_tip = fees(w3)
    new_max = max(_bumped(tx.max_fee_per_gas), current_max)
    if new_max > cap:
        tx.last_error = f"stuck at the fee cap ({cap} wei per gas)"
        return None
    tx.max_fee_per_gas = new_max
    if tx.max_priority_fee_per_gas is not None:
        tip = max(_bumped(tx.max_priority_fee_per_gas), current_tip or 0)
        tx.max_priority_fee_per_gas = min(tip, new_max)
    raw, tx_hash = sign(w3, account, tx)
    logger.info("chain tx %s: re-sent nonce %s with max fee %s", tx.pk, tx.nonce, new_max)
    record_signature(tx, raw, tx_hash)
    return raw
