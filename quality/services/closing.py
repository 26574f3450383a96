"""Close an item, then queue its reward: the one home of that rule (docs/architecture.md, "Where
each rule lives"). The per-label update, its box variant and a refit all close items here."""

from __future__ import annotations

from django.db import transaction

from core.tasks import enqueue_on_commit
from labeling import services as labeling_services


def item_queue_reward(*, item_id: int) -> None:
    """Queue the accounting of the item's labels (`rewards.account_item`) for when this
    transaction commits. Safe to queue again (a late label on a closed item, every label on a gold
    item): the ledger writes one entry per annotation, exactly once."""
    enqueue_on_commit("rewards.account_item", item_id)


@transaction.atomic
def item_close_and_queue_reward(*, item_id: int) -> bool:
    """Close the item through labeling (no more leases; outstanding ones released, their slots
    and budget reservations returned), then queue its reward. False when it was closed already;
    the reward is queued either way, for the labels that came after the close."""
    closed = labeling_services.item_complete(item_id=item_id)
    item_queue_reward(item_id=item_id)
    return closed
