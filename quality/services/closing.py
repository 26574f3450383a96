"""Close items, then queue their rewards: the one home of that rule (docs/architecture.md, "Where
each rule lives"). The per-label update, its box variant and a refit all close items here."""

from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction

from core.tasks import enqueue_on_commit
from labeling import services as labeling_services


def items_queue_reward(*, item_ids: Iterable[int]) -> None:
    """Queue the accounting of the items' labels (`rewards.account_items`, one message for all
    of them) for when this transaction commits. Safe to queue again (a late label on a closed
    item, every label on a gold item): the ledger writes one entry per annotation, exactly once."""
    ids = sorted(set(item_ids))
    if ids:
        enqueue_on_commit("rewards.account_items", ids)


@transaction.atomic
def items_close_and_queue_reward(*, item_ids: Iterable[int]) -> list[int]:
    """Close the items through labeling (no more leases; outstanding ones released, their slots
    and budget reservations returned), then queue their rewards. Returns the ids it closed (not
    those closed already); the rewards are queued for all of them either way, for the labels that
    came after a close."""
    ids = sorted(set(item_ids))
    closed = labeling_services.items_complete(item_ids=ids)
    items_queue_reward(item_ids=ids)
    return closed
