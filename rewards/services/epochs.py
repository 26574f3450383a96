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

This module opens epochs and drives them; the table step is in ``epoch_table``, the chain steps
and failing an epoch in ``epoch_roots``.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import Max, OuterRef, QuerySet, Subquery
from django.utils import timezone

from core.amounts import sum_amounts
from core.errors import Conflict, NotFound
from labeling import selectors as labeling_selectors

from ..chain import RewardDistributorClient
from ..models import Epoch, EpochStatus, RewardEntry, RewardStatus
from ..runtime import ChainSettings, chain_settings, distributor_client, require_chain
from ..selectors import epoch_committed, epoch_last_accepted, epoch_unfinished
from .deploy import campaign_chain_register
from .epoch_roots import epoch_accept_when_due, epoch_confirm_submit, epoch_submit
from .epoch_table import epoch_store_table

logger = logging.getLogger(__name__)


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
    settled = epoch_committed(epoch=epoch_last_accepted())
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


# ------------------------------------------------------------------ advance


def epoch_advance(*, epoch: Epoch) -> Epoch:
    """Take every step that is possible now; returns the epoch as far as it got."""
    steps = {
        EpochStatus.BUILDING: lambda e: epoch_store_table(epoch=e),
        EpochStatus.TABLE_STORED: lambda e: epoch_submit(epoch=e),
        EpochStatus.SUBMITTED: lambda e: epoch_confirm_submit(epoch=e),
        EpochStatus.PENDING_TIMELOCK: lambda e: epoch_accept_when_due(epoch=e),
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
