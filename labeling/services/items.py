"""Item state changes requested by the quality engine."""

from __future__ import annotations

from collections.abc import Mapping

from django.db import connection, transaction
from django.db.models import Case, F, IntegerField, Value, When
from django.utils import timezone

from ..models import Assignment, AssignmentStatus, Campaign, Item, ItemStatus


@transaction.atomic
def item_complete(*, item_id: int) -> bool:
    """Close an item: no more leases, outstanding ones released. Returns False if already closed.
    Quality calls it through `quality.services.closing.item_close_and_queue_reward`, the one home
    of "close the item, then queue its reward".

    One UPDATE ... RETURNING closes the item and hands back its campaign (and that campaign's
    budget flag) without a second read; it locks the item row before any of its leases (the lock
    order every writer follows).
    """
    closed = _close_returning(item_id=item_id)
    if closed is None:
        return False
    campaign_id, budgeted = closed
    released = Assignment.objects.filter(item_id=item_id, status=AssignmentStatus.LEASED).update(
        status=AssignmentStatus.EXPIRED
    )
    updates: dict[str, object] = {"completed_count": F("completed_count") + 1}
    if released:
        Item.objects.filter(pk=item_id).update(slots_taken=F("slots_taken") - released)
        if budgeted:
            updates["labels_reserved"] = F("labels_reserved") - released
    Campaign.objects.filter(pk=campaign_id).update(**updates)
    return True


def _close_returning(*, item_id: int) -> tuple[int, bool] | None:
    """(campaign id, whether the campaign has a budget) of the item just closed, or None when it
    was not open. The ORM's update() cannot return rows, hence the SQL (UPDATE ... RETURNING)."""
    item_table = Item._meta.db_table
    campaign_table = Campaign._meta.db_table
    sql = (
        f"UPDATE {item_table} SET status = %s, completed_at = %s "  # noqa: S608 - table names only
        f"WHERE id = %s AND status = %s "
        f"RETURNING campaign_id, (SELECT budget IS NOT NULL FROM {campaign_table} "
        f"WHERE {campaign_table}.id = {item_table}.campaign_id)"
    )
    with connection.cursor() as cursor:
        cursor.execute(
            sql, [ItemStatus.COMPLETE.value, timezone.now(), item_id, ItemStatus.OPEN.value]
        )
        row = cursor.fetchone()
    if row is None:
        return None
    return int(row[0]), bool(row[1])


def item_set_priority(*, item_id: int, priority: int) -> None:
    Item.objects.filter(pk=item_id).update(priority=priority)


def items_set_priority(*, priorities: Mapping[int, int]) -> int:
    """Set many items' queue priorities in one UPDATE (a CASE on the id); returns rows updated."""
    if not priorities:
        return 0
    whens = [When(pk=item_id, then=Value(p)) for item_id, p in priorities.items()]
    return Item.objects.filter(pk__in=list(priorities)).update(
        priority=Case(*whens, output_field=IntegerField())
    )
