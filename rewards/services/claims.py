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

INVALID_PROOF = "InvalidProof"
SUPERSEDED = "superseded"  # an InvalidProof claim relayed again under a newer root


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


def _current_leaf(account: str) -> tuple[EpochLeaf | None, int]:
    epoch = epoch_last_accepted()
    leaf = EpochLeaf.objects.filter(epoch=epoch, account=account).first() if epoch else None
    row = WalletClaim.objects.filter(wallet=account).first()
    return leaf, int(row.claimed or 0) if row else 0


def claim_check(*, user: User) -> ClaimableLeaf:
    """What ``user`` can claim now; raises a 4xx error when nothing (no wallet, no leaf, paid)."""
    require_chain()
    if not user.wallet_address:
        raise NoWallet("link a wallet to your account first (Sign-In with Ethereum)")
    account = checksum_address(user.wallet_address)
    if epoch_last_accepted() is None:
        raise NotFound("no payout root has been accepted yet", code="no_root")
    leaf, claimed = _current_leaf(account)
    if leaf is None:
        raise NotFound("this wallet has no rewards in the current payout root", code="not_in_root")
    if int(leaf.cumulative or 0) <= claimed:
        raise Conflict(
            "nothing to claim: everything in the current root is paid",
            code="nothing_to_claim",
            extra={"claimed": str(claimed)},
        )
    return ClaimableLeaf(account, leaf, claimed)


def _claim_key(claimable: ClaimableLeaf) -> str:
    return f"claim:{claimable.account}:{claimable.leaf.cumulative}"


def _claim_data(claimable: ClaimableLeaf) -> str:
    return str(
        distributor_client().contract.encode_abi(
            "claim",
            args=[
                claimable.account,
                int(claimable.leaf.cumulative or 0),
                claimable.leaf.proof_hex(),
            ],
        )
    )


def claim_relay(*, claimable: ClaimableLeaf) -> ChainTx:
    """Queue the claim transaction (idempotent); a failed one is retried with today's proof."""
    data = _claim_data(claimable)
    with transaction.atomic():
        tx = chain_tx_ensure(
            kind=ChainTxKind.CLAIM,
            key=_claim_key(claimable),
            to=distributor_client().address,
            data=data,
        )
        if tx.status == ChainTxStatus.FAILED:
            if tx.error_code == "NothingToClaim":  # paid meanwhile (by the wallet itself, say)
                raise Conflict("nothing to claim: already paid", code="nothing_to_claim")
            # A newer root with the same amount for this wallet needs the newer proof.
            ChainTx.objects.filter(pk=tx.pk).update(data=data)
            tx = chain_tx_retry(tx=tx)
    return tx


def claim_renew(*, failed: ChainTx) -> ChainTx | None:
    """Relay again, under the current root, a claim that failed with ``InvalidProof``.

    That happens when a newer root is accepted between the request and the send: the old proof
    no longer verifies, and the newer leaf holds at least as much. Renewed only if the call would
    differ (the database has the newer root), so a claim never loops on the same bad proof; the
    rest are renewed when the newer epoch is accepted (:func:`claims_renew_superseded`).
    """
    account = failed.idempotency_key.split(":")[1]
    leaf, claimed = _current_leaf(account)
    if leaf is None or int(leaf.cumulative or 0) <= claimed:
        return None
    claimable = ClaimableLeaf(account, leaf, claimed)
    data = _claim_data(claimable)
    if data == failed.data:
        return None
    if _claim_key(claimable) != failed.idempotency_key:
        ChainTx.objects.filter(pk=failed.pk).update(error_code=SUPERSEDED)
    return claim_relay(claimable=claimable)


def claims_renew_superseded() -> int:
    """After a root is accepted: renew the claims that failed because it replaced theirs."""
    renewed = 0
    failed = ChainTx.objects.filter(
        kind=ChainTxKind.CLAIM, status=ChainTxStatus.FAILED, error_code=INVALID_PROOF
    )
    for tx in failed.order_by("id").iterator():
        renewed += claim_renew(failed=tx) is not None
    return renewed


def claim_request(*, user: User) -> ChainTx:
    return claim_relay(claimable=claim_check(user=user))
