"""Item state changes requested by the quality engine."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping

from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from ..models import Assignment, AssignmentStatus, Campaign, Item, ItemStatus


@transaction.atomic
def items_complete(*, item_ids: Iterable[int]) -> list[int]:
    """Close items: no more leases, outstanding ones released. Returns the ids it closed (those
    still open), in id order. Quality calls it through
    `quality.services.closing.items_close_and_queue_reward`, the one home of "close the item,
    then queue its reward".

    A fixed number of statements for any number of items: the open items locked in id order and
    closed (UPDATE ... RETURNING hands back each one's campaign and that campaign's budget flag),
    their leases released, the released slots given back, then one update per campaign of its
    completed count (and, when it has a budget, its reserved labels). Item rows are locked before
    any of their leases (the lock order every writer follows), and in id order, so two closers
    of overlapping batches wait for each other instead of deadlocking.
    """
    ids = sorted(set(item_ids))
    if not ids:
        return []
    closed = _close_returning(item_ids=ids)
    if not closed:
        return []
    closed_ids = sorted(closed)
    released = _release_leases(item_ids=closed_ids)
    if released:
        _give_back_slots(released)
    per_campaign: dict[int, tuple[int, int]] = {}
    budgeted: dict[int, bool] = {}
    for item_id, (campaign_id, has_budget) in closed.items():
        done, freed = per_campaign.get(campaign_id, (0, 0))
        per_campaign[campaign_id] = (done + 1, freed + released.get(item_id, 0))
        budgeted[campaign_id] = has_budget
    for campaign_id in sorted(per_campaign):
        done, freed = per_campaign[campaign_id]
        updates: dict[str, object] = {"completed_count": F("completed_count") + done}
        if freed and budgeted[campaign_id]:
            updates["labels_reserved"] = F("labels_reserved") - freed
        Campaign.objects.filter(pk=campaign_id).update(**updates)
    return closed_ids


def _close_returning(*, item_ids: list[int]) -> dict[int, tuple[int, bool]]:
    """{item id: (campaign id, whether the campaign has a budget)} of the items just closed (those
    that were open). The ORM's update() cannot return rows, hence the SQL (UPDATE ... RETURNING);
    the CTE takes the row locks in id order."""
    item_table = Item._meta.db_table
    campaign_table = Campaign._meta.db_table
    sql = (
        f"WITH open_items AS (SELECT id FROM {item_table} "  # noqa: S608 - table names only
        f"WHERE id = ANY(%s) AND status = %s ORDER BY id FOR UPDATE) "
        f"UPDATE {item_table} SET status = %s, completed_at = %s FROM open_items "
        f"WHERE {item_table}.id = open_items.id AND {item_table}.status = %s "
        f"RETURNING {item_table}.id, {item_table}.campaign_id, "
        f"(SELECT budget IS NOT NULL FROM {campaign_table} "
        f"WHERE {campaign_table}.id = {item_table}.campaign_id)"
    )
    open_ = ItemStatus.OPEN.value
    with connection.cursor() as cursor:
        cursor.execute(sql, [item_ids, open_, ItemStatus.COMPLETE.value, timezone.now(), open_])
        rows = cursor.fetchall()
    return {int(item_id): (int(campaign_id), bool(b)) for item_id, campaign_id, b in rows}


def _release_leases(*, item_ids: list[int]) -> Counter[int]:
    """Expire the items' outstanding leases; how many each item had."""
    table = Assignment._meta.db_table
    sql = (
        f"UPDATE {table} SET status = %s "  # noqa: S608 - table name only
        f"WHERE item_id = ANY(%s) AND status = %s RETURNING item_id"
    )
    with connection.cursor() as cursor:
        cursor.execute(
            sql, [AssignmentStatus.EXPIRED.value, item_ids, AssignmentStatus.LEASED.value]
        )
        return Counter(int(row[0]) for row in cursor.fetchall())


def _give_back_slots(released: Counter[int]) -> None:
    """Each item's slots_taken down by its released leases: one UPDATE from two arrays."""
    table = Item._meta.db_table
    item_ids = sorted(released)
    sql = (
        f"UPDATE {table} SET slots_taken = {table}.slots_taken - freed.n "  # noqa: S608
        f"FROM unnest(%s::bigint[], %s::integer[]) AS freed(id, n) WHERE {table}.id = freed.id"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [item_ids, [released[i] for i in item_ids]])


def items_set_priority(*, priorities: Mapping[int, int]) -> int:
    """Set many items' queue priorities in one UPDATE from two arrays (id, priority); rows whose
    priority is already that are left alone (no dead row, no WAL). Returns the rows changed.

    Not the ORM's Case/When: building that expression for a refit's thousands of items took the
    larger part of the refit's CPU (bench/README.md, "The whole pipeline").
    """
    if not priorities:
        return 0
    table = Item._meta.db_table
    ids = sorted(priorities)
    sql = (
        f"UPDATE {table} SET priority = wanted.priority "  # noqa: S608 - table name only
        f"FROM unnest(%s::bigint[], %s::integer[]) AS wanted(id, priority) "
        f"WHERE {table}.id = wanted.id AND {table}.priority <> wanted.priority"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [ids, [priorities[i] for i in ids]])
        return int(cursor.rowcount)
