"""What every contract client shares: the bound contract, tx building and sending, events."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_typing import ChecksumAddress
from eth_utils import event_abi_to_log_topic
from hexbytes import HexBytes
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.types import BlockIdentifier, LogReceipt, TxParams, TxReceipt

from .artifacts import load_artifact
from .errors import reverts_translated
from .tx import (
    Sender,
    build_transaction,
    send_and_wait,
    send_transaction,
    sender_address,
    wait_for_receipt,
)


@dataclass(frozen=True)
class ChainEvent:
    """A decoded contract event; order events by ``(block_number, log_index)``."""

    name: str
    args: dict[str, Any]
    block_number: int
    log_index: int
    tx_hash: str
    block_hash: str


def deploy_contract(
    w3: Web3,
    name: str,
    *args: Any,
    sender: Sender,
    confirmations: int = 1,
    timeout: float = 120.0,
) -> tuple[ChecksumAddress, TxReceipt]:
    """Deploy the compiled contract ``name`` with constructor ``args``."""
    artifact = load_artifact(name)
    factory = w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    with reverts_translated():
        tx = factory.constructor(*args).build_transaction({"from": sender_address(sender)})
    tx_hash = send_transaction(w3, tx, sender)
    receipt = wait_for_receipt(w3, tx_hash, confirmations=confirmations, timeout=timeout)
    address = receipt["contractAddress"]
    if address is None:  # pragma: no cover - a successful creation always has one
        raise RuntimeError(f"{name} deployment has no contract address")
    return Web3.to_checksum_address(address), receipt


class ContractClient:
    """One deployed contract. Subclasses add typed ``build_*_tx`` / send / view methods."""

    artifact_name: str

    def __init__(self, w3: Web3, address: str) -> None:
        self.w3 = w3
        self.address: ChecksumAddress = Web3.to_checksum_address(address)
        self.contract: Contract = w3.eth.contract(
            address=self.address, abi=load_artifact(self.artifact_name).abi
        )
        self._events_by_topic = {
            HexBytes(event_abi_to_log_topic(entry)): entry["name"]
            for entry in self.contract.abi
            if entry["type"] == "event"
        }

    def _build(self, fn: ContractFunction, sender: str, overrides: dict[str, Any]) -> TxParams:
        return build_transaction(fn, sender=sender, **overrides)

    def _send(
        self,
        fn: ContractFunction,
        sender: Sender,
        confirmations: int,
        overrides: dict[str, Any],
    ) -> TxReceipt:
        return send_and_wait(self.w3, fn, sender=sender, confirmations=confirmations, **overrides)

    def decode_logs(self, logs: list[LogReceipt] | tuple[LogReceipt, ...]) -> list[ChainEvent]:
        """This contract's events among ``logs`` (others are skipped), in chain order."""
        events = []
        for log in logs:
            if Web3.to_checksum_address(log["address"]) != self.address or not log["topics"]:
                continue
            name = self._events_by_topic.get(HexBytes(log["topics"][0]))
            if name is None:
                continue
            decoded = self.contract.events[name]().process_log(log)
            events.append(
                ChainEvent(
                    name=name,
                    args={k: _plain(v) for k, v in decoded["args"].items()},
                    block_number=decoded["blockNumber"],
                    log_index=decoded["logIndex"],
                    tx_hash=HexBytes(decoded["transactionHash"]).to_0x_hex(),
                    block_hash=HexBytes(decoded["blockHash"]).to_0x_hex(),
                )
            )
        return sorted(events, key=lambda e: (e.block_number, e.log_index))

    def events_in(self, receipt: TxReceipt) -> list[ChainEvent]:
        return self.decode_logs(receipt["logs"])

    def fetch_events(
        self, from_block: int, to_block: BlockIdentifier = "latest"
    ) -> list[ChainEvent]:
        """Every event of this contract in the block range (inclusive), in chain order."""
        logs = self.w3.eth.get_logs(
            {"address": self.address, "fromBlock": from_block, "toBlock": to_block}
        )
        return self.decode_logs(logs)


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return value
