"""Reads of the rewards app: a contributor's balances and proof, epochs, the ledger check."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from django.db.models import Count, QuerySet, Sum

from accounts.models import User
from core.amounts import sum_amounts

from .merkle import checksum_address
from .models import (
    UNFINISHED_EPOCH_STATUSES,
    ClaimRequest,
    Epoch,
    EpochLeaf,
    EpochStatus,
    RewardEntry,
    RewardStatus,
    WalletClaim,
)
from .payout import PayoutTable, leaves_from_rows


def epoch_unfinished() -> Epoch | None:
    return Epoch.objects.filter(status__in=UNFINISHED_EPOCH_STATUSES).order_by("number").first()


def epoch_last_accepted() -> Epoch | None:
    return Epoch.objects.filter(status=EpochStatus.ACCEPTED).order_by("-number").first()


def campaign_amounts(stored: dict[str, Any]) -> dict[int, int]:
    """An epoch's ``{"<campaign id>": "<amount>"}`` JSON (decimal strings: uint256) as integers."""
    return {int(k): int(v) for k, v in stored.items()}


def epoch_committed(*, epoch: Epoch | None) -> dict[int, int]:
    """Cumulative commitment per campaign in ``epoch``'s root; nothing before the first root."""
    return campaign_amounts(epoch.campaign_committed) if epoch else {}


def grouped_sums(
    queryset: QuerySet[RewardEntry], fields: tuple[str, ...]
) -> Iterator[tuple[tuple[Any, ...], int, int]]:
    """``(group key, sum of amount, count)`` per group, summed exactly in SQL (numeric(78, 0))."""
    grouped = (
        queryset.order_by()
        .values(*fields)
        .annotate(total=Sum("amount"), n=Count("id"))
        .order_by(*fields)
    )
    for row in grouped.iterator(chunk_size=5000):
        yield tuple(row[f] for f in fields), int(row["total"] or 0), int(row["n"])


def epoch_leaf_rows(number: int) -> Iterator[tuple[str, int, int, int]]:
    """``(wallet, campaign, amount, annotations)`` of every entry settled up to epoch ``number``
    (all of them, not just the new ones: roots are cumulative)."""
    entries = RewardEntry.objects.filter(epoch__isnull=False, epoch__lte=number)
    for (wallet, campaign_id), amount, count in grouped_sums(entries, ("wallet", "campaign_id")):
        yield str(wallet), int(campaign_id), amount, count


@dataclass(frozen=True)
class RewardSummary:
    wallet: str | None
    pending: int  # awaiting the quality decision
    accepted: int  # every accepted reward, settled or not
    settled: int  # accepted and in the current (accepted) root
    claimed: int  # paid to the wallet by the contract
    claimable: int  # the wallet's leaf in the current root minus what was paid
    epoch: Epoch | None  # the current (latest accepted) epoch
    last_claim: ClaimRequest | None  # the latest relayed claim asked for, with its batch

    @property
    def awaiting_settlement(self) -> int:
        return self.accepted - self.settled


def wallets_claimed(*, accounts: Sequence[str]) -> dict[str, int]:
    """What the contract has paid each of ``accounts`` (checksummed); a wallet never paid is
    absent."""
    rows = WalletClaim.objects.filter(wallet__in=accounts).values_list("wallet", "claimed")
    return {wallet: int(claimed or 0) for wallet, claimed in rows}


def wallet_claimed(*, account: str) -> int:
    return wallets_claimed(accounts=[account]).get(account, 0)


def claim_request_latest(*, account: str) -> ClaimRequest | None:
    return (
        ClaimRequest.objects.filter(account=account)
        .select_related("batch_tx")
        .order_by("-id")
        .first()
    )


def reward_summary(*, user: User) -> RewardSummary:
    entries = RewardEntry.objects.filter(worker=user)
    epoch = epoch_last_accepted()
    accepted = entries.filter(status=RewardStatus.ACCEPTED)
    settled = (
        sum_amounts(accepted.filter(epoch__isnull=False, epoch__lte=epoch.number), "amount")
        if epoch
        else 0
    )
    account = checksum_address(user.wallet_address) if user.wallet_address else None
    claimed = wallet_claimed(account=account) if account else 0
    leaf = (
        EpochLeaf.objects.filter(epoch=epoch, account=account).first()
        if epoch and account
        else None
    )
    return RewardSummary(
        wallet=account,
        pending=sum_amounts(entries.filter(status=RewardStatus.PENDING), "amount"),
        accepted=sum_amounts(accepted, "amount"),
        settled=settled,
        claimed=claimed,
        claimable=max(int(leaf.cumulative or 0) - claimed, 0) if leaf else 0,
        epoch=epoch,
        last_claim=claim_request_latest(account=account) if account else None,
    )


def epoch_list() -> QuerySet[Epoch]:
    return Epoch.objects.order_by("-number")


def epoch_get(*, number: int) -> Epoch | None:
    return Epoch.objects.filter(number=number).first()


def ledger_problems(*, table: PayoutTable) -> list[str]:
    """Differences between a payout table and what Kyodo's ledger says that epoch contains.

    The ledger side: every entry settled in the table's epoch or before, grouped by the wallet
    frozen into it and by campaign (amounts and annotation counts), and the epoch row itself.
    """
    problems: list[str] = []
    epoch = epoch_get(number=table.epoch)
    if epoch is None:
        return [f"the ledger has no epoch {table.epoch}"]
    if epoch.status == EpochStatus.FAILED:
        problems.append(f"epoch {epoch.number} failed in the ledger ({epoch.error})")
        return problems
    if epoch.merkle_root.lower() != table.root.lower():
        problems.append(f"the ledger's epoch {epoch.number} has root {epoch.merkle_root}")
    if epoch.entry_cutoff != table.entry_cutoff:
        problems.append(f"the ledger's entry cutoff is {epoch.entry_cutoff}")
    expected = {
        leaf.account.lower(): leaf for leaf in leaves_from_rows(epoch_leaf_rows(epoch.number))
    }
    actual = {leaf.account.lower(): leaf for leaf in table.leaves}
    for account in sorted(set(expected) | set(actual)):
        want, got = expected.get(account), actual.get(account)
        if want is None or got is None:
            where = "only in the table" if want is None else "missing from the table"
            problems.append(f"{account}: {where}")
        elif want.campaigns != got.campaigns:
            problems.append(
                f"{account}: the ledger says {want.cumulative} over {want.annotations} "
                f"annotations, the table {got.cumulative} over {got.annotations}"
            )
    return problems
