"""Relayed claims: requests in, ``claimMany`` batches out, the platform paying the gas.

``POST /api/rewards/me/claim/`` records a :class:`ClaimRequest` for the wallet's leaf in the current
root (unique per ``(account, cumulative)``: asking twice is one request) and answers at once. The
beat (``rewards.tick``) then puts queued requests, at most ``KYODO_CLAIM_BATCH_SIZE`` at a time,
into one ``claimMany`` outbox transaction, after checking each proof against the accepted root; a
batch that is not full waits until its oldest request has waited
``KYODO_CLAIM_BATCH_WAIT_SECONDS`` (gas per claim falls with batch size).
The outbox sends it (nonces, fees, re-sends, reconciliation: see :mod:`.outbox`); its fate settles
the requests in the same database transaction as the outbox row (:func:`claim_batch_settled`):

* confirmed: every request is paid; the receipt's ``Claimed`` events raise ``WalletClaim``;
* ``ClaimRejected(index, reason)``: the entry at ``index`` fails with ``reason``
  (``NothingToClaim``: the wallet was paid by other means) and the others are queued again, for
  the next batch; ``InvalidProof`` because a newer root was accepted fails the whole batch, and
  :func:`claims_renew_superseded` queues the newer leaves once the database knows that root.

Nothing is paid twice: a request is in at most one open batch, a batch is one outbox row (one
key, one nonce), and the contract pays ``leaf - claimed`` at most once per leaf.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from web3.types import TxReceipt

from accounts.models import User
from core.errors import ApplicationError, Conflict, NotFound

from ..chain import ClaimEntry, ContractRevert
from ..merkle import checksum_address, verify
from ..models import (
    ChainTx,
    ChainTxKind,
    ChainTxStatus,
    ClaimRequest,
    ClaimRequestStatus,
    Epoch,
    EpochLeaf,
)
from ..runtime import ChainSettings, chain_settings, distributor_client, require_chain
from ..selectors import epoch_last_accepted, wallet_claimed, wallets_claimed
from .outbox import chain_tx_ensure, chain_tx_retry
from .watcher import claims_record_from_receipt

MAX_BATCHES_PER_RUN = 20
INVALID_PROOF = "InvalidProof"
NOTHING_TO_CLAIM = "NothingToClaim"


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


def claim_batch_size() -> int:
    """``KYODO_CLAIM_BATCH_SIZE``: entries per ``claimMany`` (100 is about 6.3M gas at most)."""
    return max(1, int(settings.KYODO_CLAIM_BATCH_SIZE))


def claim_check(*, user: User) -> ClaimableLeaf:
    """What ``user`` can claim now; raises a 4xx error when nothing (no wallet, no leaf, paid)."""
    require_chain()
    if not user.wallet_address:
        raise NoWallet("link a wallet to your account first (Sign-In with Ethereum)")
    account = checksum_address(user.wallet_address)
    epoch = epoch_last_accepted()
    if epoch is None:
        raise NotFound("no payout root has been accepted yet", code="no_root")
    leaf = EpochLeaf.objects.filter(epoch=epoch, account=account).select_related("epoch").first()
    if leaf is None:
        raise NotFound("this wallet has no rewards in the current payout root", code="not_in_root")
    claimed = wallet_claimed(account=account)
    if int(leaf.cumulative or 0) <= claimed:
        raise Conflict(
            "nothing to claim: everything in the current root is paid",
            code="nothing_to_claim",
            extra={"claimed": str(claimed)},
        )
    return ClaimableLeaf(account, leaf, claimed)


@transaction.atomic
def claim_request_ensure(*, claimable: ClaimableLeaf, user: User | None = None) -> ClaimRequest:
    """The request for this leaf (queued if new). A failed one is queued again, unless the
    contract said the leaf is paid. Locks the row."""
    # One read: the lookup itself locks the row (a new row is locked by its insert).
    request, _ = ClaimRequest.objects.select_for_update().get_or_create(
        account=claimable.account,
        cumulative=int(claimable.leaf.cumulative or 0),
        defaults={
            "amount": claimable.amount,
            "epoch": claimable.leaf.epoch.number,
            "requested_by": user,
        },
    )
    if request.status == ClaimRequestStatus.FAILED:
        if request.error_code == NOTHING_TO_CLAIM:
            raise Conflict("nothing to claim: already paid", code="nothing_to_claim")
        _requeue(request)
    return request


def claim_request(*, user: User) -> ClaimRequest:
    """``POST /api/rewards/me/claim/``: queue the relayed claim of the user's current leaf."""
    return claim_request_ensure(claimable=claim_check(user=user), user=user)


# ---------------------------------------------------------------- batches


def claim_batches_build(*, max_batches: int = MAX_BATCHES_PER_RUN) -> list[ChainTx]:
    """Put queued requests into ``claimMany`` outbox rows (the beat's step); returns the rows."""
    config = chain_settings()
    if config is None:
        return []
    built: list[ChainTx] = []
    for _ in range(max_batches):
        progressed, tx = _batch_build_one(config, claim_batch_size())
        if tx is not None:
            built.append(tx)
        if not progressed:
            break
    return built


@transaction.atomic
def _batch_build_one(config: ChainSettings, size: int) -> tuple[bool, ChainTx | None]:
    """One batch: ``(whether any request moved, the outbox row)``. Locks the requests it takes."""
    epoch = epoch_last_accepted()
    if epoch is None:
        return False, None
    in_flight = ClaimRequest.objects.filter(status=ClaimRequestStatus.BATCHED).values("account")
    requests = list(
        ClaimRequest.objects.select_for_update(skip_locked=True)
        .filter(status=ClaimRequestStatus.QUEUED)
        .exclude(account__in=in_flight)  # one open batch per wallet at a time
        .order_by("id")[:size]
    )
    if not requests:
        return False, None
    wait = timedelta(seconds=settings.KYODO_CLAIM_BATCH_WAIT_SECONDS)
    if len(requests) < size and requests[0].created_at > timezone.now() - wait:
        # A part batch waits for company until its oldest request has waited long enough: gas
        # per claim falls with batch size (bench/GAS.md, KYODO_CLAIM_BATCH_WAIT_SECONDS).
        return False, None
    accounts = [r.account for r in requests]
    leaves = {
        leaf.account: leaf
        for leaf in EpochLeaf.objects.filter(epoch=epoch, account__in=accounts).select_related(
            "epoch"
        )
    }
    claimed = wallets_claimed(accounts=accounts)
    included: list[tuple[ClaimRequest, EpochLeaf]] = []
    for request in requests:
        leaf = _leaf_for_batch(request, leaves.get(request.account), claimed, epoch)
        if leaf is not None:
            included.append((request, leaf))
    if not included:
        return True, None
    return True, _batch_queue(config, included)


def _leaf_for_batch(
    request: ClaimRequest, leaf: EpochLeaf | None, claimed: dict[str, int], epoch: Epoch
) -> EpochLeaf | None:
    """The leaf to send for a queued request, or None after settling the request otherwise."""
    cumulative = int(request.cumulative or 0)
    paid = claimed.get(request.account, 0)
    if paid >= cumulative:
        _finish(request, ClaimRequestStatus.FAILED, NOTHING_TO_CLAIM)
        return None
    if leaf is None:  # leaves are cumulative: only a database edited by hand gets here
        _finish(request, ClaimRequestStatus.FAILED, "not_in_root")
        return None
    if int(leaf.cumulative or 0) > cumulative:  # a newer root holds more: claim that instead
        _supersede(request, leaf, paid)
        return None
    if not verify(epoch.merkle_root, request.account, cumulative, leaf.proof_hex()):
        _finish(request, ClaimRequestStatus.FAILED, INVALID_PROOF)
        return None
    return leaf


def _batch_queue(config: ChainSettings, included: list[tuple[ClaimRequest, EpochLeaf]]) -> ChainTx:
    entries = [
        ClaimEntry(r.account, int(leaf.cumulative or 0), leaf.proof_hex()) for r, leaf in included
    ]
    data = distributor_client(config).claim_many.data(entries)
    ids = [r.pk for r, _ in included]
    digest = hashlib.sha256(",".join(map(str, ids)).encode()).hexdigest()[:16]
    tx = chain_tx_ensure(
        kind=ChainTxKind.CLAIM_MANY,
        key=f"claim_many:{ids[0]}:{len(ids)}:{digest}",
        to=config.distributor,
        data=data,
        config=config,
    )
    if tx.status == ChainTxStatus.FAILED:  # the same requests again (after a failure that
        ChainTx.objects.filter(pk=tx.pk).update(data=data)  # named no entry): send again
        tx = chain_tx_retry(tx=tx)
    for index, (request, leaf) in enumerate(included):
        request.epoch = leaf.epoch.number  # whose proof it carries (the leaf may be unchanged)
        request.status = ClaimRequestStatus.BATCHED
        request.batch_tx = tx
        request.batch_index = index
        request.error_code = ""
    ClaimRequest.objects.bulk_update(
        [r for r, _ in included],
        ["epoch", "status", "batch_tx", "batch_index", "error_code", "updated_at"],
    )
    return tx


def _finish(request: ClaimRequest, status: str, error_code: str = "") -> None:
    request.status = status
    request.error_code = error_code
    request.save(update_fields=["status", "error_code", "updated_at"])


def _supersede(request: ClaimRequest, leaf: EpochLeaf, claimed: int) -> None:
    """Replace a request by one for the account's newer leaf (which includes the old amount)."""
    if int(leaf.cumulative or 0) <= claimed:
        _finish(request, ClaimRequestStatus.FAILED, NOTHING_TO_CLAIM)
        return
    claimable = ClaimableLeaf(request.account, leaf, claimed)
    try:
        newer = claim_request_ensure(claimable=claimable, user=request.requested_by)
    except Conflict:
        _finish(request, ClaimRequestStatus.FAILED, NOTHING_TO_CLAIM)
        return
    request.superseded_by = newer
    request.batch_tx = None
    request.batch_index = None
    request.status = ClaimRequestStatus.SUPERSEDED
    request.save()


# ---------------------------------------------------------------- outcomes


def claim_batch_settled(
    *, tx: ChainTx, receipt: TxReceipt | None, revert: ContractRevert | None
) -> None:
    """A ``claimMany`` row is final: settle its requests. Called by the outbox in the
    transaction that finalises the row, so it happens exactly once."""
    requests = list(
        ClaimRequest.objects.select_for_update()
        .filter(batch_tx=tx, status=ClaimRequestStatus.BATCHED)
        .order_by("batch_index")
    )
    if receipt is not None:
        claims_record_from_receipt(receipt=receipt)
        for request in requests:
            _finish(request, ClaimRequestStatus.CONFIRMED)
        return
    if revert is None or revert.index is None or revert.inner is None:
        # No entry named. Mined and reverted after a newer root was accepted in the same block,
        # the replay on the parent block cannot say why (UnknownRevert): the moved root can.
        stale = _root_moved(requests)
        newest = epoch_last_accepted() if stale else None
        for request in requests:
            _finish(request, ClaimRequestStatus.FAILED, INVALID_PROOF if stale else tx.error_code)
            if stale:
                _renew(request, newest)
        return
    reason = revert.inner.error_name
    stale = reason == INVALID_PROOF and _root_moved(requests)
    newest = epoch_last_accepted() if stale else None
    for request in requests:
        if stale or request.batch_index == revert.index:
            _finish(request, ClaimRequestStatus.FAILED, reason)
            if stale:
                _renew(request, newest)
        else:  # a good entry of a rejected batch (its error_code is empty): into the next batch
            _requeue(request)


def _requeue(request: ClaimRequest) -> None:
    """Back into the queue, out of any batch, for the next one."""
    request.status = ClaimRequestStatus.QUEUED
    request.error_code = ""
    request.batch_tx = None
    request.batch_index = None
    request.save()


def _root_moved(requests: list[ClaimRequest]) -> bool:
    """Whether the chain's current root is no longer the one the requests' proofs are for."""
    if not requests:
        return False
    epoch = Epoch.objects.filter(number=requests[0].epoch).first()
    if epoch is None:
        return True
    current = distributor_client().contract.functions.currentRoot().call()
    return "0x" + bytes(current).hex() != epoch.merkle_root.lower()


def _renew(request: ClaimRequest, epoch: Epoch | None) -> bool:
    """Relay a request that failed with ``InvalidProof`` again under the newest accepted leaf
    (``epoch``: the last accepted one, looked up once by the caller for all its requests), if the
    database knows a newer one (else :func:`claims_renew_superseded` does it later)."""
    if epoch is None or epoch.number <= request.epoch:
        return False
    leaf = EpochLeaf.objects.filter(epoch=epoch, account=request.account).first()
    if leaf is None:
        return False
    if int(leaf.cumulative or 0) == int(request.cumulative or 0):  # same leaf, newer proof
        _requeue(request)
        return True
    _supersede(request, leaf, wallet_claimed(account=request.account))
    return True


def claims_renew_superseded() -> int:
    """After a root is accepted: queue again, under it, the requests its arrival failed."""
    renewed = 0
    epoch = epoch_last_accepted()
    if epoch is None:
        return 0
    failed = ClaimRequest.objects.filter(status=ClaimRequestStatus.FAILED, error_code=INVALID_PROOF)
    for request in failed.order_by("id").iterator():
        with transaction.atomic():
            locked = ClaimRequest.objects.select_for_update().get(pk=request.pk)
            if locked.status == ClaimRequestStatus.FAILED:
                renewed += _renew(locked, epoch)
    return renewed
