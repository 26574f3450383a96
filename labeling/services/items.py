"""Item state changes requested by the quality engine."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from ..models import Assignment, AssignmentStatus, Campaign, Item, ItemStatus


@transaction.atomic
def item_complete(*, item_id: int) -> bool:
    """Close an item: no more leases, outstanding ones released. Returns False if already closed.

    The UPDATE locks the item row before any of its leases (the lock order every writer follows).
    """
    closed = Item.objects.filter(pk=item_id, status=ItemStatus.OPEN).update(
        status=ItemStatus.COMPLETE, completed_at=timezone.now()
    )
    if not closed:
        return False
    item = Item.objects.only("campaign_id").get(pk=item_id)
    released = Assignment.objects.filter(item_id=item_id, status=AssignmentStatus.LEASED).update(
        status=AssignmentStatus.EXPIRED
    )
    updates: dict[str, Any] = {"completed_count": F("completed_count") + 1}
    if released:
        Item.objects.filter(pk=item_id).update(slots_taken=F("slots_taken") - released)
    campaign = Campaign.objects.only("budget").get(pk=item.campaign_id)
    if released and campaign.budget is not None:
        updates["labels_reserved"] = F("labels_reserved") - released
    Campaign.objects.filter(pk=item.campaign_id).update(**updates)
    return True


def item_set_priority(*, item_id: int, priority: int) -> None:
    Item.objects.filter(pk=item_id).update(priority=priority)
