"""The chain watcher: the distributor's events, recorded once, from a cursor.

Each run reads blocks from the cursor to the head minus the confirmations (``head - N + 1``: every
recorded event has ``N`` confirmations), in ranges of ``KYODO_CHAIN_LOG_RANGE`` blocks. Each range
is one transaction: the events (unique by ``(tx_hash, log_index)``, so a replayed range changes
nothing), what they imply, and the cursor move. A crash mid-range redoes that range.

What events imply is order-safe: a wallet's claimed amount is the maximum ``cumulativeAmount`` of
its ``Claimed`` events, whatever order they are applied in.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from web3.types import TxReceipt

from ..chain import ChainEvent as DecodedEvent
from ..models import ChainCursor, ChainEvent, WalletClaim
from ..runtime import chain_settings, distributor_client, get_web3

MAX_RANGES_PER_RUN = 20


@dataclass
class WatchResult:
    from_block: int = 0
    to_block: int = -1
    events: int = 0


def _plain_args(args: dict[str, Any]) -> dict[str, Any]:
    # uint256 values do not survive every JSON store as numbers: keep them as decimal strings.
    return {
        k: str(v) if isinstance(v, int) and not isinstance(v, bool) else v for k, v in args.items()
    }


def chain_watch(*, max_ranges: int = MAX_RANGES_PER_RUN) -> WatchResult:
    """Record confirmed events past the cursor (at most ``max_ranges`` ranges per run)."""
    config = chain_settings()
    if config is None:
        return WatchResult()
    w3 = get_web3()
    client = distributor_client(config)
    safe_head = w3.eth.block_number - (config.confirmations - 1)
    span = max(1, int(settings.KYODO_CHAIN_LOG_RANGE))
    cursor, _ = ChainCursor.objects.get_or_create(
        chain_id=config.chain_id,
        contract=config.distributor,
        defaults={"last_block": config.start_block - 1},
    )
    result = WatchResult(from_block=cursor.last_block + 1, to_block=cursor.last_block)
    for _ in range(max_ranges):
        with transaction.atomic():
            cursor = ChainCursor.objects.select_for_update().get(pk=cursor.pk)
            start = cursor.last_block + 1
            end = min(start + span - 1, safe_head)
            if end < start:
                break
            events = client.fetch_events(start, end)
            result.events += events_record(
                chain_id=config.chain_id, contract=config.distributor, events=events
            )
            cursor.last_block = end
            cursor.save(update_fields=["last_block", "updated_at"])
            result.to_block = end
    return result


def events_record(*, chain_id: int, contract: str, events: Iterable[DecodedEvent]) -> int:
    """Store decoded events (duplicates ignored) and apply what they imply; returns how many."""
    rows = []
    for event in events:
        rows.append(
            ChainEvent(
                chain_id=chain_id,
                contract=contract,
                name=event.name,
                block_number=event.block_number,
                block_hash=event.block_hash,
                tx_hash=event.tx_hash,
                log_index=event.log_index,
                args=_plain_args(event.args),
            )
        )
        _event_apply(event)
    ChainEvent.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)


def wallet_claim_record(*, wallet: str, cumulative: int, block: int) -> WalletClaim:
    """Raise a wallet's claimed amount to ``cumulative`` (never lowers it). Locks the row."""
    claim, _ = WalletClaim.objects.select_for_update().get_or_create(wallet=wallet)
    if cumulative > (claim.claimed or 0):
        claim.claimed = cumulative
        claim.last_block = max(claim.last_block, block)
        claim.save()
    return claim


def claims_record_from_receipt(*, receipt: TxReceipt) -> None:
    """Apply the ``Claimed`` events of a relayed claim's receipt now, before the watcher does."""
    for event in distributor_client().events_in(receipt):
        _event_apply(event)


def _event_apply(event: DecodedEvent) -> None:
    """What an event implies (order-safe, so the watcher and a receipt may both apply it)."""
    if event.name == "Claimed":
        wallet_claim_record(
            wallet=event.args["account"],
            cumulative=int(event.args["cumulativeAmount"]),
            block=event.block_number,
        )
