"""Building, signing, sending and confirming transactions, with reverts translated.

``build_*`` functions only talk to the node to estimate gas and fill fees (a transaction that
would revert fails here, as a :class:`ContractRevert`, before anything is signed); the backend's
outbox can sign and send what they return itself. The ``send_*`` helpers are the convenience path
for scripts, the demo and tests.
"""

from __future__ import annotations

import time
from typing import Any, TypeAlias, cast

from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress
from hexbytes import HexBytes
from web3 import Web3
from web3.contract.contract import ContractFunction
from web3.exceptions import TimeExhausted
from web3.types import TxParams, TxReceipt

from .errors import ContractRevert, TransactionTimeout, revert_data, reverts_translated

Sender: TypeAlias = str | LocalAccount
"""An unlocked node account (anvil, eth-tester) by address, or a local key that signs here."""


def sender_address(sender: Sender) -> ChecksumAddress:
    address = sender.address if isinstance(sender, LocalAccount) else sender
    return Web3.to_checksum_address(address)


def build_transaction(fn: ContractFunction, *, sender: str, **overrides: Any) -> TxParams:
    """A transaction dict for ``fn`` from ``sender`` (gas estimated unless given)."""
    params = cast(TxParams, {"from": Web3.to_checksum_address(sender), **overrides})
    with reverts_translated():
        return fn.build_transaction(params)


def send_transaction(w3: Web3, tx: TxParams, sender: Sender) -> HexBytes:
    """Sign with a local key (filling the pending nonce if missing) or let the node sign."""
    with reverts_translated():
        if isinstance(sender, LocalAccount):
            tx = cast(TxParams, dict(tx))
            if "nonce" not in tx:
                tx["nonce"] = w3.eth.get_transaction_count(sender.address, "pending")
            signed = sender.sign_transaction(cast(dict[str, Any], tx))
            return w3.eth.send_raw_transaction(signed.raw_transaction)
        return w3.eth.send_transaction(tx)


def wait_for_receipt(
    w3: Web3,
    tx_hash: HexBytes | bytes | str,
    *,
    confirmations: int = 1,
    timeout: float = 120.0,
    poll_latency: float = 0.05,
) -> TxReceipt:
    """The receipt once ``confirmations`` blocks include the transaction (1 = mined).

    Raises :class:`ContractRevert` if it failed (the revert reason is recovered by replaying the
    call on the parent block), :class:`TransactionTimeout` if it is not confirmed in time.
    """
    if confirmations < 1:
        raise ValueError("confirmations must be >= 1")
    deadline = time.monotonic() + timeout
    try:
        receipt = w3.eth.wait_for_transaction_receipt(
            HexBytes(tx_hash), timeout=timeout, poll_latency=poll_latency
        )
    except TimeExhausted:
        raise TransactionTimeout(
            "transaction not mined in time", extra={"tx_hash": HexBytes(tx_hash).to_0x_hex()}
        ) from None
    if receipt["status"] != 1:
        raise replay_revert(w3, receipt)
    while w3.eth.block_number < receipt["blockNumber"] + confirmations - 1:
        if time.monotonic() > deadline:
            raise TransactionTimeout(
                f"fewer than {confirmations} confirmations in time",
                extra={"tx_hash": receipt["transactionHash"].to_0x_hex()},
            )
        time.sleep(poll_latency)
    return receipt


def replay_revert(w3: Web3, receipt: TxReceipt) -> ContractRevert:
    """Why a mined transaction failed: its call replayed on the parent block's state."""
    tx = w3.eth.get_transaction(receipt["transactionHash"])
    call = cast(
        TxParams,
        {
            "from": tx["from"],
            "to": tx.get("to"),
            "data": tx["input"],
            "value": tx.get("value", 0),
            "gas": tx["gas"],
        },
    )
    try:
        w3.eth.call(call, max(receipt["blockNumber"] - 1, 0))
    except Exception as exc:
        data = revert_data(exc)
        if data is not None:
            return ContractRevert(data)
    return ContractRevert(b"")  # failed for a reason the replay does not reproduce (e.g. gas)


def send_and_wait(
    w3: Web3,
    fn: ContractFunction,
    *,
    sender: Sender,
    confirmations: int = 1,
    timeout: float = 120.0,
    **overrides: Any,
) -> TxReceipt:
    tx = build_transaction(fn, sender=sender_address(sender), **overrides)
    tx_hash = send_transaction(w3, tx, sender)
    return wait_for_receipt(w3, tx_hash, confirmations=confirmations, timeout=timeout)
