"""Epoch settlement: accepted ledger entries → a cumulative Merkle root accepted on-chain.

The steps, each recorded in ``Epoch.status`` and each safe to repeat (a crash resumes at the
recorded status; a step that finds the status moved on does nothing):

``open`` (→ building)
    In one transaction: a new ``Epoch`` row and every settleable entry assigned to it. Settleable:
    accepted, not in an epoch, at most ``entry_cutoff``, its worker has a wallet (frozen into the
    entry), and its campaign's on-chain budget (deposited - refunded - already committed) covers
    it; within a campaign entries go in id order, the rest wait (recorded in ``deferred``).
    Refused while another epoch is unfinished or the contract has a pending root.
``store table`` (→ table_stored)
    Cumulative totals per wallet over every entry of this and earlier epochs, the Merkle tree, the
    payout table (canonical JSON, so a rebuild gives the same CID) put in the store and pinned, and
    the leaves with their proofs kept for the claims API.
``submit`` (→ submitted)
    ``submitRoot`` queued in the outbox under ``submit_root:<number>``.
``submitted → pending_timelock``
    Once that transaction is confirmed: the contract's ``rootId`` and ``validAt`` from its
    ``RootSubmitted`` event. If it failed, the epoch fails.
``pending_timelock → accepted``
    Once the chain's time passes ``validAt``: ``acceptRoot`` queued under ``accept_root:<number>``;
    accepted when ``rootInfo`` says so (whoever sent ``acceptRoot``: anyone may).

A failed epoch (``submitRoot`` reverted, or a guardian revoked the root) releases its entries,
which the next epoch takes again; nothing accepted is lost, and nothing is paid twice because a
wallet's leaf is cumulative and the contract pays only ``leaf - claimed``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import Max, OuterRef, QuerySet, Subquery
from django.utils import timezone

from core.amounts import sum_amounts
from core.errors import Conflict, NotFound
from core.tasks import enqueue_on_commit
from labeling import selectors as labeling_selectors
from storage.models import PinKind
from storage.services import blob_put_bytes, pin_ensure

from ..chain import RewardDistributorClient, RootStatus
from ..merkle import StandardMerkleTree
from ..models import (
    ChainTx,
    ChainTxKind,
    ChainTxStatus,
    Epoch,
    EpochLeaf,
    EpochStatus,
    RewardEntry,
    RewardStatus,
)
from ..payout import (
    PayoutLeaf,
    PayoutTable,
    build_tree,
    campaign_totals,
    encode_table,
    leaves_from_rows,
)
from ..runtime import ChainSettings, chain_settings, distributor_client, get_web3, require_chain
from ..selectors import (
    epoch_last_accepted,
    epoch_leaf_rows,
    epoch_unfinished,
)
from .claims import claims_renew_superseded
from .deploy import campaign_chain_register
from .outbox import chain_tx_ensure, chain_tx_retry

logger = logging.getLogger(__name__)

SETTLE_TASK = "rewards.settle_tick"
LEAF_BATCH = 2000


class EpochUnfinished(Conflict):
    default_code = "epoch_unfinished"


# ------------------------------------------------------------------ open


def _settleable(cutoff: int) -> QuerySet[RewardEntry]:
    return RewardEntry.objects.filter(
        status=RewardStatus.ACCEPTED, epoch__isnull=True, id__lte=cutoff
    ).exclude(worker__wallet_address="")


def _fitting_prefix(queryset: QuerySet[RewardEntry], room: int) -> tuple[int | None, int]:
    """The largest id such that the entries up to it (id order) fit in ``room``, and their sum."""
    taken, boundary = 0, None
    for entry_id, amount in queryset.order_by("id").values_list("id", "amount").iterator(2000):
        if taken + int(amount or 0) > room:
            break
        taken += int(amount or 0)
        boundary = entry_id
    return boundary, taken


def epoch_open() -> Epoch | None:
    """Open the next epoch with every settleable entry; None if there is nothing new to settle."""
    config = require_chain()
    client = distributor_client(config)
    unfinished = epoch_unfinished()
    if unfinished is not None:
        raise EpochUnfinished(f"epoch {unfinished.number} is not finished ({unfinished.status})")
    pending = client.pending_root()
    if pending is not None:
        raise Conflict(
            f"the distributor has a pending root {pending.root_id} that no open epoch submitted",
            code="foreign_pending_root",
        )
    missing: list[int] = []
    try:
        with transaction.atomic():
            epoch = _open(config, client, missing)
    except IntegrityError:  # another worker opened the same number first
        raise EpochUnfinished("another epoch was opened concurrently") from None
    for campaign_id in missing:  # outside the epoch's transaction: kept even if it rolled back
        _register_campaign(campaign_id)
    return epoch


def _register_campaign(campaign_id: int) -> None:
    """Queue ``createCampaign`` for a campaign that earns but is not on-chain, if its owner has a
    wallet; the owner then funds it, and the next epoch can settle its entries."""
    try:
        campaign = labeling_selectors.campaign_get(campaign_id=campaign_id)
    except NotFound:
        return
    owner = campaign.owner.wallet_address
    if owner:
        campaign_chain_register(campaign_id=campaign_id, owner=owner)


def _open(
    config: ChainSettings, client: RewardDistributorClient, missing: list[int]
) -> Epoch | None:
    cutoff = RewardEntry.objects.aggregate(top=Max("id"))["top"] or 0
    settleable = _settleable(cutoff)
    campaign_ids = sorted(set(settleable.values_list("campaign_id", flat=True).distinct()))
    if not campaign_ids:
        return None
    last = Epoch.objects.order_by("-number").first()
    # The row before the entries: a concurrent open fails on the unique number first.
    epoch = Epoch.objects.create(
        number=(last.number + 1) if last else 1,
        chain_id=config.chain_id,
        distributor=config.distributor,
        entry_cutoff=cutoff,
    )
    # Every earlier settled entry is in an accepted epoch now: its commitments are the accepted
    # root's, which the contract also reports (``reserved``); the larger is the safe one.
    accepted = epoch_last_accepted()
    settled = {int(k): int(v) for k, v in (accepted.campaign_committed if accepted else {}).items()}
    wallet_of_worker = Subquery(
        get_user_model().objects.filter(pk=OuterRef("worker_id")).values("wallet_address")[:1]
    )
    count, amount, deferred = 0, 0, {}
    for campaign_id in campaign_ids:
        entries = settleable.filter(campaign_id=campaign_id)
        info = client.campaign(campaign_id)
        if info is None:
            missing.append(campaign_id)
        budget = 0 if info is None else info.deposited - info.refunded
        committed = max(settled.get(campaign_id, 0), info.reserved if info else 0)
        room = max(budget - committed, 0)
        wanted = sum_amounts(entries, "amount")
        if wanted <= room:
            taken = wanted
        else:
            boundary, taken = _fitting_prefix(entries, room)
            entries = entries.none() if boundary is None else entries.filter(id__lte=boundary)
            deferred[str(campaign_id)] = str(wanted - taken)
        count += entries.update(epoch=epoch.number, wallet=wallet_of_worker)
        amount += taken
    if amount == 0:
        transaction.set_rollback(True)
        return None
    epoch.entry_count = count
    epoch.new_amount = amount
    epoch.deferred = deferred
    epoch.save()
    if deferred:
        logger.warning("epoch %s: budget too small, deferred %s", epoch.number, deferred)
    return epoch


# ------------------------------------------------------------------ table


def epoch_store_table(*, epoch: Epoch) -> Epoch:
    """Build, store and pin the payout table; keep the leaves. building → table_stored."""
    if epoch.status != EpochStatus.BUILDING:
        return epoch
    config = require_chain()
    previous = epoch_last_accepted()
    leaves = leaves_from_rows(epoch_leaf_rows(epoch.number))
    tree = build_tree(leaves)
    committed = campaign_totals(leaves)
    before = {int(k): int(v) for k, v in (previous.campaign_committed if previous else {}).items()}
    changed = {c: v for c, v in committed.items() if v != before.get(c, 0)}
    if settings.KYODO_PAYOUT_TABLE_PROOFS:
        leaves = [replace(leaf, proof=tuple(tree.proof(leaf.account))) for leaf in leaves]
    table = PayoutTable(
        epoch=epoch.number,
        previous_epoch=previous.number if previous else None,
        chain_id=config.chain_id,
        distributor=config.distributor,
        token=config.token or distributor_client(config).token(),
        entry_cutoff=epoch.entry_cutoff,
        root=tree.root,
        total_committed=sum(committed.values()),
        campaign_committed=committed,
        campaigns_changed=changed,
        leaves=tuple(leaves),
    )
    blob = blob_put_bytes(data=encode_table(table))
    with transaction.atomic():
        epoch = Epoch.objects.select_for_update().get(pk=epoch.pk)
        if epoch.status != EpochStatus.BUILDING:
            return epoch
        _leaves_replace(epoch, leaves, tree)
        pin_ensure(cid=blob.cid, kind=PinKind.PAYOUT_TABLE)
        epoch.merkle_root = tree.root
        epoch.payout_table_cid = blob.cid
        epoch.total_committed = table.total_committed
        epoch.campaign_committed = {str(k): str(v) for k, v in committed.items()}
        epoch.campaigns_changed = {str(k): str(v) for k, v in changed.items()}
        epoch.leaf_count = len(leaves)
        epoch.status = EpochStatus.TABLE_STORED
        epoch.error = ""
        epoch.save()
    return epoch


def _leaves_replace(epoch: Epoch, leaves: list[PayoutLeaf], tree: StandardMerkleTree) -> None:
    EpochLeaf.objects.filter(epoch=epoch).delete()
    batch = []
    for leaf in leaves:
        proof = b"".join(tree.proof_bytes(leaf.account))
        batch.append(
            EpochLeaf(epoch=epoch, account=leaf.account, cumulative=leaf.cumulative, proof=proof)
        )
        if len(batch) >= LEAF_BATCH:
            EpochLeaf.objects.bulk_create(batch)
            batch = []
    EpochLeaf.objects.bulk_create(batch)


# ------------------------------------------------------------------ chain steps


def epoch_submit(*, epoch: Epoch) -> Epoch:
    """Queue ``submitRoot`` in the outbox. table_stored → submitted."""
    client = distributor_client()
    with transaction.atomic():
        epoch = Epoch.objects.select_for_update().get(pk=epoch.pk)
        if epoch.status != EpochStatus.TABLE_STORED:
            return epoch
        changed = {int(k): int(v) for k, v in epoch.campaigns_changed.items()}
        ids = sorted(changed)  # the contract wants strictly increasing campaign ids
        data = client.contract.encode_abi(
            "submitRoot",
            args=[
                bytes.fromhex(epoch.merkle_root[2:]),
                epoch.payout_table_cid,
                int(epoch.total_committed or 0),
                ids,
                [changed[i] for i in ids],
            ],
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


def _after_submit(epoch: Epoch) -> Epoch:
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


def _after_timelock(epoch: Epoch) -> Epoch:
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
                data=client.contract.encode_abi("acceptRoot", args=[]),
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


def epoch_advance(*, epoch: Epoch) -> Epoch:
    """Take every step that is possible now; returns the epoch as far as it got."""
    steps = {
        EpochStatus.BUILDING: lambda e: epoch_store_table(epoch=e),
        EpochStatus.TABLE_STORED: lambda e: epoch_submit(epoch=e),
        EpochStatus.SUBMITTED: _after_submit,
        EpochStatus.PENDING_TIMELOCK: _after_timelock,
    }
    while not epoch.is_finished:
        before = epoch.status
        epoch = steps[EpochStatus(epoch.status)](epoch)
        epoch.refresh_from_db()
        if epoch.status == before:
            break
    return epoch


# ------------------------------------------------------------------ entry points


def _due(now: datetime) -> bool:
    last = Epoch.objects.order_by("-number").first()
    period = timedelta(seconds=int(settings.KYODO_EPOCH_SECONDS))
    return last is None or last.created_at + period <= now


def settle_tick(*, open_new: bool = True, now: datetime | None = None) -> Epoch | None:
    """The beat's step: advance the unfinished epoch, else open one if the period has passed."""
    if chain_settings() is None:
        return None
    epoch = epoch_unfinished()
    if epoch is not None:
        return epoch_advance(epoch=epoch)
    if not open_new or not _due(now or timezone.now()):
        return None
    try:
        epoch = epoch_open()
    except Conflict as exc:
        logger.info("no new epoch: %s", exc.message)
        return None
    return None if epoch is None else epoch_advance(epoch=epoch)


def epoch_settle_now() -> Epoch | None:
    """``manage.py settle_epoch``: advance the unfinished epoch, or open one now (not waiting for
    the period). None if there is nothing to settle."""
    epoch = epoch_unfinished()
    if epoch is None:
        epoch = epoch_open()
        if epoch is None:
            return None
    return epoch_advance(epoch=epoch)


def epoch_enqueue_tick() -> None:
    enqueue_on_commit(SETTLE_TASK)
