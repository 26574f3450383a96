-- labeling_lease_next: next-task's lease, one call of one PL/pgSQL function.
--
-- This file is the one home of the lease rule. Migrations labeling 0007 (which created the
-- function) and 0009 (which reinstalled it from here where 0007 had run with a copy of its own)
-- load it. Rule: any change to this function is a
-- new migration that loads this file again (`labeling.sql.read("lease_next.sql")` in a
-- RunSQL); a change of its arguments or of the table it returns also drops the old signature
-- first (CREATE OR REPLACE cannot change either). Every migration that loads this file creates
-- its newest text (PL/pgSQL checks the tables a body names only when it runs, so that is safe).
-- tests/labeling/test_rules.py checks that the function installed in the database is the one
-- written here.
--
-- Why one function: the lease was four round trips (BEGIN, the worker's advisory lock, the pick,
-- COMMIT), and on the hot path the waits for them were most of a next-task call
-- (bench/README.md, "Next task"). `SELECT * FROM labeling_lease_next(...)` in autocommit is one
-- round trip and its own transaction. Called by labeling/services/hot_sql.py (`lease_next`, and
-- `token_lease_next`'s one-statement next).
--
-- Each statement in a VOLATILE function takes a fresh snapshot (READ COMMITTED), so the reads
-- after the advisory lock see what the worker's previous lease committed while this call waited
-- for it: the same guarantee as separate statements in a transaction.
--
-- Invariants, each enforced by the database:
-- - an item never has more than `max_labels` leases + labels (gold items excepted): the slot is
--   taken by a conditional UPDATE on the locked row;
-- - a worker never gets an item twice: labeling_assignment is unique per (item, worker), and
--   the scan skips items the worker was ever assigned;
-- - a worker holds one live lease per campaign: one worker's calls are serialized by the
--   advisory lock, and each looks for the live lease first;
-- - a budgeted campaign never reserves more labels than its budget pays for.
-- Lock order, as every writer of an item and its leases: the item row first, then its leases;
-- the campaign row (the budget's reservation) last.
--
-- The four queue picks (step 3) are written out, not one statement with parameters: SKIP LOCKED
-- is syntax, and a queue's conditions must be literals for the planner to use the partial index
-- item_open_queue (a CASE on a parameter would scan the campaign). (A comment here, outside the
-- body, changes nothing installed; one inside it is a change of the function, with its migration.)
--
-- Answers one row (the lease and what the task payload needs of its item), or no row when
-- nothing is free (the caller reclaims expired leases and asks once more). Raises SQLSTATE
-- KY001 when a new lease would overspend the budget; the whole call is rolled back then.
CREATE OR REPLACE FUNCTION labeling_lease_next(
    p_lock_class integer,   -- the advisory-lock key space of next-task
    p_worker bigint,
    p_campaign bigint,
    p_gold_first boolean,   -- the gold draw said "gold" (labeling.selectors.campaign_serves_gold)
    p_now timestamptz,
    p_until timestamptz,    -- when a lease taken now runs out
    p_max_labels integer,   -- the campaign's slots per item
    p_affordable numeric    -- labels the budget pays for (campaign_labels_affordable); NULL: no budget
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
    -- 1. The worker's advisory lock: one lease at a time per worker (two tabs, a retrying
    --    client), held to the end of the call's transaction.
    PERFORM pg_advisory_xact_lock(p_lock_class, (p_worker & 2147483647)::integer);

    -- 2. The worker's live lease in the campaign, if any, is the answer.
    SELECT a.id, a.item_id, a.leased_until INTO v_id, v_item, v_until
    FROM labeling_assignment a
    WHERE a.worker_id = p_worker AND a.campaign_id = p_campaign
      AND a.status = 'leased' AND a.leased_until > p_now
    ORDER BY a.id LIMIT 1;

    IF FOUND THEN
        v_new := false;
    ELSE
        v_until := p_until;
        -- 3. The head of a queue, each pick one statement: lock the head, take its slot (the
        --    UPDATE repeats the queue's conditions, checked on the locked row's newest version)
        --    and insert the lease. Each queue is asked first with SKIP LOCKED (concurrent
        --    workers fan out over the head), then without it: everything SKIP LOCKED passed
        --    over may be locked by someone leasing or submitting it right now, so wait for the
        --    head before saying "nothing".
        IF p_gold_first THEN
            -- 3a. Gold items (known answers, never closed, no slot limit), in id order.
            WITH pick AS (
                SELECT i.id FROM labeling_item i
                WHERE i.campaign_id = p_campaign AND i.status = 'open' AND i.gold_label <> ''
                  AND NOT EXISTS (
                      SELECT 1 FROM labeling_assignment x
                      WHERE x.item_id = i.id AND x.worker_id = p_worker
                  )
                ORDER BY i.id LIMIT 1
                FOR UPDATE OF i SKIP LOCKED
            ), slot AS (
                UPDATE labeling_item i SET slots_taken = i.slots_taken + 1
                FROM pick WHERE i.id = pick.id AND i.status = 'open' AND i.gold_label <> ''
                RETURNING i.id
            ), new AS (
                INSERT INTO labeling_assignment (item_id, worker_id, campaign_id, status,
                                                 leased_until, created_at)
                SELECT slot.id, p_worker, p_campaign, 'leased', p_until, p_now FROM slot
                RETURNING id, item_id
            )
            SELECT new.id, new.item_id INTO v_id, v_item FROM new;
            IF v_id IS NULL THEN
                -- 3b. The gold queue again, waiting for a locked head.
                WITH pick AS (
                    SELECT i.id FROM labeling_item i
                    WHERE i.campaign_id = p_campaign AND i.status = 'open' AND i.gold_label <> ''
                      AND NOT EXISTS (
                          SELECT 1 FROM labeling_assignment x
                          WHERE x.item_id = i.id AND x.worker_id = p_worker
                      )
                    ORDER BY i.id LIMIT 1
                    FOR UPDATE OF i
                ), slot AS (
                    UPDATE labeling_item i SET slots_taken = i.slots_taken + 1
                    FROM pick WHERE i.id = pick.id AND i.status = 'open' AND i.gold_label <> ''
                    RETURNING i.id
                ), new AS (
                    INSERT INTO labeling_assignment (item_id, worker_id, campaign_id, status,
                                                     leased_until, created_at)
                    SELECT slot.id, p_worker, p_campaign, 'leased', p_until, p_now FROM slot
                    RETURNING id, item_id
                )
                SELECT new.id, new.item_id INTO v_id, v_item FROM new;
            END IF;
        END IF;
        IF v_id IS NULL THEN
            -- 3c. The main queue: at most p_max_labels slots per item, least certain (lowest
            --     priority value) first.
            WITH pick AS (
                SELECT i.id FROM labeling_item i
                WHERE i.campaign_id = p_campaign AND i.status = 'open' AND i.gold_label = ''
                  AND i.slots_taken < p_max_labels
                  AND NOT EXISTS (
                      SELECT 1 FROM labeling_assignment x
                      WHERE x.item_id = i.id AND x.worker_id = p_worker
                  )
                ORDER BY i.priority, i.id LIMIT 1
                FOR UPDATE OF i SKIP LOCKED
            ), slot AS (
                UPDATE labeling_item i SET slots_taken = i.slots_taken + 1
                FROM pick WHERE i.id = pick.id AND i.status = 'open' AND i.gold_label = ''
                  AND i.slots_taken < p_max_labels
                RETURNING i.id
            ), new AS (
                INSERT INTO labeling_assignment (item_id, worker_id, campaign_id, status,
                                                 leased_until, created_at)
                SELECT slot.id, p_worker, p_campaign, 'leased', p_until, p_now FROM slot
                RETURNING id, item_id
            )
            SELECT new.id, new.item_id INTO v_id, v_item FROM new;
        END IF;
        IF v_id IS NULL THEN
            -- 3d. The main queue again, waiting for a locked head.
            WITH pick AS (
                SELECT i.id FROM labeling_item i
                WHERE i.campaign_id = p_campaign AND i.status = 'open' AND i.gold_label = ''
                  AND i.slots_taken < p_max_labels
                  AND NOT EXISTS (
                      SELECT 1 FROM labeling_assignment x
                      WHERE x.item_id = i.id AND x.worker_id = p_worker
                  )
                ORDER BY i.priority, i.id LIMIT 1
                FOR UPDATE OF i
            ), slot AS (
                UPDATE labeling_item i SET slots_taken = i.slots_taken + 1
                FROM pick WHERE i.id = pick.id AND i.status = 'open' AND i.gold_label = ''
                  AND i.slots_taken < p_max_labels
                RETURNING i.id
            ), new AS (
                INSERT INTO labeling_assignment (item_id, worker_id, campaign_id, status,
                                                 leased_until, created_at)
                SELECT slot.id, p_worker, p_campaign, 'leased', p_until, p_now FROM slot
                RETURNING id, item_id
            )
            SELECT new.id, new.item_id INTO v_id, v_item FROM new;
        END IF;
        -- Nothing free: no row.
        IF v_id IS NULL THEN
            RETURN;
        END IF;
        -- 4. A new lease in a budgeted campaign reserves one label's reward (the campaign row
        --    last, in lock order). When the budget is spoken for, KY001 rolls the whole call
        --    back: no slot, no lease (the API answers 409 budget_exhausted).
        IF p_affordable IS NOT NULL THEN
            UPDATE labeling_campaign SET labels_reserved = labels_reserved + 1
            WHERE id = p_campaign AND labels_reserved < p_affordable;
            IF NOT FOUND THEN
                RAISE EXCEPTION 'the campaign''s budget is used up' USING ERRCODE = 'KY001';
            END IF;
        END IF;
    END IF;

    -- 5. The lease, and what the task payload needs of its item.
    RETURN QUERY
    SELECT v_id, v_item, v_until, v_new, i.cid, i.media_type, i.text
    FROM labeling_item i WHERE i.id = v_item;
END
$fn$;
