"""Relayed claims: the platform sends ``claim(account, cumulative, proof)`` and pays the gas.

The tokens always go to the account (the contract pays ``account``, whoever sends); the outbox key
``claim:<account>:<cumulative>`` makes asking twice one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction

from accounts.models import User
from core.errors import ApplicationError, Conflict, NotFound

from ..merkle import checksum_address
from ..models import ChainTx, ChainTxKind, ChainTxStatus, EpochLeaf, WalletClaim
from ..runtime import distributor_client, require_chain
from ..selectors import epoch_last_accepted
from .outbox import chain_tx_ensure, chain_tx_retry


class NoWallet(ApplicationError):
    default_code = "no_wallet"


@dataclass(frozen=True)
class ClaimableLeaf:
    account: str
    leaf: EpochLeaf
    claimed: int

    @property
    def amount(self) -> int:
        return int(self.leaf.cumulative or 0) - self.claimed


def claim_check(*, user: User) -> ClaimableLeaf:
    """What ``user`` can claim now; raises a 4xx error when nothing (no wallet, no leaf, paid)."""
    require_chain()
    if not user.wallet_address:
        raise NoWallet("link a wallet to your account first (Sign-In with Ethereum)")
    account = checksum_address(user.wallet_address)
    epoch = epoch_last_accepted()
    if epoch is None:
        raise NotFound("no payout root has been accepted yet", code="no_root")
    leaf = EpochLeaf.objects.filter(epoch=epoch, account=account).first()
    if leaf is None:
        raise NotFound("this wallet has no rewards in the current payout root", code="not_in_root")
    row = WalletClaim.objects.filter(wallet=account).first()
    claimed = int(row.claimed or 0) if row else 0
    if int(leaf.cumulative or 0) <= claimed:
        raise Conflict(
            "nothing to claim: everything in the current root is paid",
            code="nothing_to_claim",
            extra={"claimed": str(claimed)},
        )
    return ClaimableLeaf(account, leaf, claimed)


def claim_relay(*, claimable: ClaimableLeaf) -> ChainTx:
    """Queue the claim transaction (idempotent); a failed one is retried with today's proof."""
    client = distributor_client()
    data = client.contract.encode_abi(
        "claim",
        args=[claimable.account, int(claimable.leaf.cumulative or 0), claimable.leaf.proof_hex()],
    )
    with transaction.atomic():
        tx = chain_tx_ensure(
            kind=ChainTxKind.CLAIM,
            key=f"claim:{claimable.account}:{claimable.leaf.cumulative}",
            to=client.address,
            data=data,
        )
        if tx.status == ChainTxStatus.FAILED:
            if tx.error_code == "NothingToClaim":  # paid meanwhile (by the wallet itself, say)
                raise Conflict("nothing to claim: already paid", code="nothing_to_claim")
            # A newer root with the same amount for this wallet needs the newer proof.
            ChainTx.objects.filter(pk=tx.pk).update(data=data)
            tx = chain_tx_retry(tx=tx)
    return tx


def claim_request(*, user: User) -> ChainTx:
    return claim_relay(claimable=claim_check(user=user))
