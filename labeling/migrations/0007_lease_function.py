"""Next-task's lease as one PL/pgSQL function (PostgreSQL only; SQLite keeps the ORM path).

Why: the lease was four round trips (BEGIN, the worker's advisory lock, the pick, COMMIT), and on
the hot path the waits for them were most of a next-task call (bench/README.md, "Next task"). One
`SELECT * FROM labeling_lease_next(...)` in autocommit is one round trip and its own transaction.

Each statement in a VOLATILE function takes a fresh snapshot (READ COMMITTED), so the reads after
the advisory lock see what the worker's previous lease committed while this call waited for it:
the same guarantee as separate statements in a transaction. The steps and their order are
`labeling/services/leases.py`'s (`_lease_once`):
1. the worker's advisory lock (one lease at a time per worker, held to the end of the call);
2. the worker's live lease in the campaign, if any, is the answer;
3. else the head of the gold queue (when asked), then of the main queue: each first with
   SKIP LOCKED, then without it (everything SKIP LOCKED saw may be locked by someone leasing or
   submitting it right now: wait for the head before saying "nothing"). One statement locks the
   head, takes its slot and inserts the lease;
4. a new lease in a budgeted campaign reserves one label's reward; when the budget is spoken for
   the call raises SQLSTATE KY001, which rolls the whole call back (no slot, no lease).
No row: nothing is free (the caller reclaims expired leases and asks once more).
"""

from django.apps.registry import Apps
from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor

# The pick of one queue, as one statement: lock the head, take a slot, insert the lease. The slot
# UPDATE repeats the queue's conditions: the head is locked, so they are checked on its newest
# version.
_PICK = """
        WITH pick AS (
            SELECT i.id FROM labeling_item i
            WHERE i.campaign_id = p_campaign AND i.status = 'open' AND {queue}
              AND NOT EXISTS (
                  SELECT 1 FROM labeling_assignment x
                  WHERE x.item_id = i.id AND x.worker_id = p_worker
              )
            ORDER BY {order} LIMIT 1
            FOR UPDATE OF i {skip_locked}
        ), slot AS (
            UPDATE labeling_item i SET slots_taken = i.slots_taken + 1
            FROM pick WHERE i.id = pick.id AND i.status = 'open' AND {queue}
            RETURNING i.id
        ), new AS (
            INSERT INTO labeling_assignment (item_id, worker_id, campaign_id, status,
                                             leased_until, created_at)
            SELECT slot.id, p_worker, p_campaign, 'leased', p_until, p_now FROM slot
            RETURNING id, item_id
        )
        SELECT new.id, new.item_id INTO v_id, v_item FROM new;"""
# Gold items: known answers, no slot limit, served in id order. The rest: at most `max_labels`
# slots each, least certain (lowest priority value) first.
_GOLD = {"queue": "i.gold_label <> ''", "order": "i.id"}
_MAIN = {"queue": "i.gold_label = '' AND i.slots_taken < p_max_labels", "order": "i.priority, i.id"}


def _pick(queue: dict[str, str], *, skip_locked: bool) -> str:
    return _PICK.format(skip_locked="SKIP LOCKED" if skip_locked else "", **queue)


CREATE = f"""
CREATE OR REPLACE FUNCTION labeling_lease_next(
    p_lock_class integer,
    p_worker bigint,
    p_campaign bigint,
    p_gold_first boolean,
    p_now timestamptz,
    p_until timestamptz,
    p_max_labels integer,
    p_affordable numeric  -- labels the budget pays for; NULL: no budget
) RETURNS TABLE (
    lease_id bigint,
    lease_item_id bigint,
    lease_until timestamptz,
    lease_is_new boolean,
    item_cid varchar,
    item_media_type varchar,
    item_text text
)
LANGUAGE plpgsql VOLATILE
AS $fn$
DECLARE
    v_id bigint;
    v_item bigint;
    v_until timestamptz := p_until;
    v_new boolean := true;
BEGIN
    PERFORM pg_advisory_xact_lock(p_lock_class, (p_worker & 2147483647)::integer);

    SELECT a.id, a.item_id, a.leased_until INTO v_id, v_item, v_until
    FROM labeling_assignment a
    WHERE a.worker_id = p_worker AND a.campaign_id = p_campaign
      AND a.status = 'leased' AND a.leased_until > p_now
    ORDER BY a.id LIMIT 1;

    IF FOUND THEN
        v_new := false;
    ELSE
        v_until := p_until;
        IF p_gold_first THEN
{_pick(_GOLD, skip_locked=True)}
            IF v_id IS NULL THEN
{_pick(_GOLD, skip_locked=False)}
            END IF;
        END IF;
        IF v_id IS NULL THEN
{_pick(_MAIN, skip_locked=True)}
        END IF;
        IF v_id IS NULL THEN
{_pick(_MAIN, skip_locked=False)}
        END IF;
        IF v_id IS NULL THEN
            RETURN;
        END IF;
        IF p_affordable IS NOT NULL THEN
            UPDATE labeling_campaign SET labels_reserved = labels_reserved + 1
            WHERE id = p_campaign AND labels_reserved < p_affordable;
            IF NOT FOUND THEN
                RAISE EXCEPTION 'the campaign''s budget is used up' USING ERRCODE = 'KY001';
            END IF;
        END IF;
    END IF;

    RETURN QUERY
    SELECT v_id, v_item, v_until, v_new, i.cid, i.media_type, i.text
    FROM labeling_item i WHERE i.id = v_item;
END
$fn$
"""  # noqa: S608 - the queue texts are this file's constants

DROP = """
DROP FUNCTION IF EXISTS labeling_lease_next(
    integer, bigint, bigint, boolean, timestamptz, timestamptz, integer, numeric
)
"""


def create(apps: Apps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def drop(apps: Apps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [
        ("labeling", "0006_campaign_label_tally"),
    ]

    operations = [migrations.RunPython(create, drop)]
