"""Client of an ERC-20 reward token (``KyodoToken`` for the demo and tests; any ERC-20 works)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress
from web3 import Web3
from web3.types import BlockIdentifier, TxParams, TxReceipt

from .base import ContractClient, deploy_contract
from .errors import reverts_translated
from .tx import Sender


@dataclass(frozen=True)
class PermitSignature:
    """An EIP-2612 permit, as ``fundWithPermit`` takes it."""

    owner: ChecksumAddress
    spender: ChecksumAddress
    value: int
    deadline: int
    v: int
    r: bytes
    s: bytes


class TokenClient(ContractClient):
    artifact_name = "KyodoToken"

    def balance_of(self, account: str, block: BlockIdentifier = "latest") -> int:
        fn = self.contract.functions.balanceOf(Web3.to_checksum_address(account))
        with reverts_translated():
            return int(fn.call(block_identifier=block))

    def allowance(self, owner: str, spender: str) -> int:
        fn = self.contract.functions.allowance(
            Web3.to_checksum_address(owner), Web3.to_checksum_address(spender)
        )
        with reverts_translated():
            return int(fn.call())

    def total_supply(self) -> int:
        return int(self.contract.functions.totalSupply().call())

    def decimals(self) -> int:
        return int(self.contract.functions.decimals().call())

    def symbol(self) -> str:
        return str(self.contract.functions.symbol().call())

    def nonce_of(self, owner: str) -> int:
        return int(self.contract.functions.nonces(Web3.to_checksum_address(owner)).call())

    def build_approve_tx(
        self, spender: str, amount: int, *, sender: str, **overrides: Any
    ) -> TxParams:
        fn = self.contract.functions.approve(Web3.to_checksum_address(spender), amount)
        return self._build(fn, sender, overrides)

    def approve(
        self, spender: str, amount: int, *, sender: Sender, confirmations: int = 1, **overrides: Any
    ) -> TxReceipt:
        fn = self.contract.functions.approve(Web3.to_checksum_address(spender), amount)
        return self._send(fn, sender, confirmations, overrides)

    def build_transfer_tx(self, to: str, amount: int, *, sender: str, **overrides: Any) -> TxParams:
        fn = self.contract.functions.transfer(Web3.to_checksum_address(to), amount)
        return self._build(fn, sender, overrides)

    def transfer(
        self, to: str, amount: int, *, sender: Sender, confirmations: int = 1, **overrides: Any
    ) -> TxReceipt:
        fn = self.contract.functions.transfer(Web3.to_checksum_address(to), amount)
        return self._send(fn, sender, confirmations, overrides)

    def build_mint_tx(self, to: str, amount: int, *, sender: str, **overrides: Any) -> TxParams:
        fn = self.contract.functions.mint(Web3.to_checksum_address(to), amount)
        return self._build(fn, sender, overrides)

    def mint(
        self, to: str, amount: int, *, sender: Sender, confirmations: int = 1, **overrides: Any
    ) -> TxReceipt:
        """KyodoToken only (MINTER_ROLE)."""
        fn = self.contract.functions.mint(Web3.to_checksum_address(to), amount)
        return self._send(fn, sender, confirmations, overrides)

    def sign_permit(
        self, owner: LocalAccount, spender: str, value: int, deadline: int
    ) -> PermitSignature:
        """Sign an EIP-2612 permit with the token's own EIP-712 domain (ERC-5267)."""
        _, name, version, chain_id, verifying_contract, _, _ = (
            self.contract.functions.eip712Domain().call()
        )
        spender = Web3.to_checksum_address(spender)
        signed = owner.sign_typed_data(
            domain_data={
                "name": name,
                "version": version,
                "chainId": chain_id,
                "verifyingContract": verifying_contract,
            },
            message_types={
                "Permit": [
                    {"name": "owner", "type": "address"},
                    {"name": "spender", "type": "address"},
                    {"name": "value", "type": "uint256"},
                    {"name": "nonce", "type": "uint256"},
                    {"name": "deadline", "type": "uint256"},
                ]
            },
            message_data={
                "owner": owner.address,
                "spender": spender,
                "value": value,
                "nonce": self.nonce_of(owner.address),
                "deadline": deadline,
            },
        )
        return PermitSignature(
            owner=Web3.to_checksum_address(owner.address),
            spender=spender,
            value=value,
            deadline=deadline,
            v=signed.v,
            r=signed.r.to_bytes(32, "big"),
            s=signed.s.to_bytes(32, "big"),
        )


def deploy_token(
    w3: Web3,
    *,
    admin: str,
    initial_holder: str | None = None,
    initial_supply: int = 0,
    sender: Sender,
    confirmations: int = 1,
) -> TokenClient:
    """Deploy ``KyodoToken``; ``admin`` may mint and grant roles."""
    address, _ = deploy_contract(
        w3,
        "KyodoToken",
        Web3.to_checksum_address(admin),
        Web3.to_checksum_address(initial_holder or admin),
        initial_supply,
        sender=sender,
        confirmations=confirmations,
    )
    return TokenClient(w3, address)
