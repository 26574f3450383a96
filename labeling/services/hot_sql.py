"""Next-task and submit as a few hand-written statements instead of ORM queries.

Why: these two calls are the platform's hot path (every label is one of each), and building ORM
queries cost more CPU than PostgreSQL spent running them (bench/README.md, "Next task"). They are
the only implementation: `leases.py` and `annotations.py` check and call them, and the fast lane
calls those. The rules they apply have one home each (docs/architecture.md, "Where each rule
lives"): the lease is the PL/pgSQL function of labeling/sql/lease_next.sql; where a statement
here repeats a Python rule (the gold draw, the budget's arithmetic), the SQL is a named constant
pinned to the Python function by tests/labeling/test_rules.py.

Lock order, as every writer of an item and its leases: the item row first, then its leases.
A lease is one call of the lease function, which takes the worker's advisory lock first (one
lease per worker at a time); a submission is one write statement. Each is atomic on its own: in
autocommit it is its own transaction (no BEGIN or COMMIT round trip).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, NamedTuple, TypeVar

from django.db import connection, models

from accounts.authentication import TOKEN_USER_FROM, USER_COLUMNS, user_from_row
from accounts.models import User
from core.sql import Params, prepared_cursor

from ..models import (
    Annotation,
    Assignment,
    AssignmentStatus,
    Campaign,
    CampaignLabelTally,
    CampaignStatus,
    Item,
    TaskType,
)
from ..selectors import UNLIMITED_LABELS

M = TypeVar("M", bound=models.Model)


def _loaded(model: type[M], values: dict[str, Any]) -> M:
    """A model instance as the ORM would load it with only these columns (others load on
    access). `from_db` wants the values in the model's field order, whatever the names' order."""
    names = [f.attname for f in model._meta.concrete_fields if f.attname in values]
    return model.from_db(connection.alias, names, [values[name] for name in names])


_CAMPAIGN_FIELDS = [
    "id",
    "owner_id",
    "status",
    "task_type",
    "label_schema",
    "max_labels",
    "gold_ratio",
    "budget",
    "reward_per_label",
]
# What next-task reads of the campaign `c` and the worker's block `b` (`_campaign_read`'s row).
_CAMPAIGN_READ = (
    ", ".join(f"c.{name}" for name in _CAMPAIGN_FIELDS) + ", b.id IS NOT NULL, b.reason"
)
_CAMPAIGN_FOR_LEASE = f"""
SELECT {_CAMPAIGN_READ}
FROM labeling_campaign c
LEFT JOIN labeling_workerblock b ON b.campaign_id = c.id AND b.worker_id = %s
WHERE c.id = %s
"""  # noqa: S608 - the models' columns


CampaignRead = tuple[Campaign, str | None] | None


def campaign_for_lease(*, campaign_id: int, worker_id: int) -> CampaignRead:
    """The campaign (what next-task reads of it; other fields load on access) and the reason the
    worker is blocked from it (None: not blocked), in one statement. None: no such campaign."""
    with prepared_cursor() as cursor:
        cursor.execute(_CAMPAIGN_FOR_LEASE, [worker_id, campaign_id])
        row = cursor.fetchone()
    return None if row is None else _campaign_read(row)


_USER_COLUMN_COUNT = len(User._meta.concrete_fields)


def _with_token_user(sql: str, params: Params) -> tuple[User, tuple[Any, ...]] | None:
    """Run a statement whose row starts with the token's user (USER_COLUMNS): the user, and the
    rest of the row. None: no such token."""
    with prepared_cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return None
    return user_from_row(row), row[_USER_COLUMN_COUNT:]


def _campaign_read(row: tuple[Any, ...]) -> tuple[Campaign, str | None]:
    values = list(row[: len(_CAMPAIGN_FIELDS)])
    schema, budget, reward = values[4], values[7], values[8]
    values[4] = json.loads(schema) if isinstance(schema, str) else schema
    # What TokenAmountField.from_db_value makes of numeric(78, 0): int.
    values[7] = None if budget is None else int(budget)
    values[8] = int(reward)
    blocked, reason = row[len(_CAMPAIGN_FIELDS) :]
    campaign = _loaded(Campaign, dict(zip(_CAMPAIGN_FIELDS, values, strict=True)))
    return campaign, (reason or "") if blocked else None


# The lease is a PL/pgSQL function (labeling/sql/lease_next.sql: its steps, and why one call):
# one round trip, and in autocommit its own transaction.
LEASE_NEXT = """
SELECT * FROM labeling_lease_next(%s::int4, %s::int8, %s::int8, %s::bool, %s::timestamptz,
                                  %s::timestamptz, %s::int4, %s::numeric)
"""
# What the function raises when a new lease would overspend the campaign's budget.
BUDGET_EXHAUSTED = "KY001"


def lease_next(
    *,
    lock_class: int,
    campaign: Campaign,
    worker: User,
    gold_first: bool,
    affordable: int | None,
    now: datetime,
    until: datetime,
) -> tuple[Assignment, bool] | None:
    """(the worker's live lease, False) or (a new lease on the head of a queue, True), or None
    when nothing is free. `affordable`: the labels a budgeted campaign pays for (None: no budget).

    Raises Django's DatabaseError with SQLSTATE `BUDGET_EXHAUSTED` when the budget is spoken for,
    and IntegrityError if (item, worker) exists already; either way nothing was written.
    """
    params = [
        lock_class,
        worker.pk,
        campaign.pk,
        gold_first,
        now,
        until,
        campaign.max_labels,
        affordable,
    ]
    with prepared_cursor() as cursor:
        cursor.execute(LEASE_NEXT, params)
        row = cursor.fetchone()
    return None if row is None else _lease(row, campaign=campaign, worker=worker)


def _lease(row: tuple[Any, ...], *, campaign: Campaign, worker: User) -> tuple[Assignment, bool]:
    """The lease function's row as (the lease with its item, campaign and worker, is it new)."""
    lease_id, item_id, leased_until, is_new, cid, media_type, text = row
    item = _loaded(
        Item,
        {
            "id": item_id,
            "campaign_id": campaign.pk,
            "cid": cid,
            "media_type": media_type,
            "text": text,
        },
    )
    assignment = _loaded(
        Assignment,
        {
            "id": lease_id,
            "item_id": item_id,
            "worker_id": worker.pk,
            "campaign_id": campaign.pk,
            "status": AssignmentStatus.LEASED,
            "leased_until": leased_until,
        },
    )
    assignment.item = item
    assignment.campaign = campaign
    assignment.worker = worker
    return assignment, bool(is_new)


# The gold draw and the budget's arithmetic in SQL, on the campaign `c`: the one-statement next
# cannot ask Python (it reads the campaign in the same statement). Each is the SQL twin of one
# Python rule, `labeling.selectors.campaign_serves_gold` and `campaign_labels_affordable`;
# tests/labeling/test_rules.py checks they give the same answers.
GOLD_FIRST_SQL = "%(gold_draw)s::float8 < c.gold_ratio"
AFFORDABLE_SQL = f"""CASE WHEN c.budget IS NULL THEN NULL
                WHEN c.reward_per_label = 0 THEN {UNLIMITED_LABELS}
                ELSE div(c.budget, c.reward_per_label) END"""

# Next-task for an API client as one statement: the token's user, the campaign and the worker's
# block (`_CAMPAIGN_FOR_LEASE`'s read), and, only when the campaign is active, the user active and
# not blocked from it, the lease function's call with the arguments `leases._lease_once` would
# give it (its gold draw and budget arithmetic, in SQL). The call is gated by the join: the
# function runs once per row of `go`, and `go` has no row when a check fails, so nothing is
# leased then; the caller's full path names the error. Outer row: the user's columns, the
# campaign's and the block's (NULLs when there is no such campaign), the gate's, the lease's
# (NULLs when there was no call or nothing was free).
_GO_COLUMNS = 6
_TOKEN_LEASE_NEXT = f"""
WITH r AS (
    SELECT {USER_COLUMNS}, {_CAMPAIGN_READ},
           u.is_active AND c.status = '{CampaignStatus.ACTIVE}' AND b.id IS NULL AS go,
           u.id AS go_worker, c.id AS go_campaign, c.max_labels AS go_max_labels,
           {GOLD_FIRST_SQL} AS go_gold_first,
           {AFFORDABLE_SQL} AS go_affordable
    {TOKEN_USER_FROM}
    LEFT JOIN labeling_campaign c ON c.id = %(campaign)s
    LEFT JOIN labeling_workerblock b ON b.campaign_id = c.id AND b.worker_id = u.id
    WHERE t.key = %(key)s
)
SELECT r.*, l.* FROM r LEFT JOIN (
    SELECT l.* FROM r AS g CROSS JOIN LATERAL labeling_lease_next(
        %(lock_class)s::int4, g.go_worker, g.go_campaign, g.go_gold_first, %(now)s::timestamptz,
        %(until)s::timestamptz, g.go_max_labels, g.go_affordable
    ) AS l
    WHERE g.go
) AS l ON true
"""  # noqa: S608 - table names and the status are the models' constants


class TokenLease(NamedTuple):
    worker: User
    campaign: Campaign | None  # None: no such campaign
    went: bool  # the checks passed and the lease function ran
    lease: tuple[Assignment, bool] | None  # `lease_next`'s answer, when it ran


def token_lease_next(
    *, key: str, campaign_id: int, lock_class: int, gold_draw: float, now: datetime, until: datetime
) -> TokenLease | None:
    """`campaign_for_lease` for the token's user and, when the campaign is active, the user active
    and not blocked from it, `lease_next`, in one statement (autocommit: its own transaction).

    None: no such token. Raises AuthenticationFailed for an inactive user, as token auth does;
    Django's DatabaseError with SQLSTATE `BUDGET_EXHAUSTED`, or IntegrityError, as `lease_next`.
    `gold_draw`: the draw in [0, 1) that serves a gold item when it is below the gold ratio.
    """
    params = {
        "key": key,
        "campaign": campaign_id,
        "gold_draw": gold_draw,
        "lock_class": lock_class,
        "now": now,
        "until": until,
    }
    found = _with_token_user(_TOKEN_LEASE_NEXT, params)
    if found is None:
        return None
    worker, rest = found
    n_read = len(_CAMPAIGN_FIELDS) + 2
    went, lease_row = bool(rest[n_read]), rest[n_read + _GO_COLUMNS :]
    if rest[0] is None:
        return TokenLease(worker, None, went=False, lease=None)
    campaign, _block = _campaign_read(rest[:n_read])
    lease = None
    if went and lease_row[0] is not None:
        lease = _lease(lease_row, campaign=campaign, worker=worker)
    return TokenLease(worker, campaign, went=went, lease=lease)


_SUBMIT_TARGET = """
SELECT i.status, c.id, c.task_type, c.label_schema, a.id, a.status
FROM labeling_item i
JOIN labeling_campaign c ON c.id = i.campaign_id
LEFT JOIN labeling_assignment a ON a.item_id = i.id AND a.worker_id = %s
WHERE i.id = %s
"""
# The same read for an API client, with its token's user (NULLs when there is no such item).
_TOKEN_SUBMIT_TARGET = f"""
SELECT {USER_COLUMNS}, i.status, c.id, c.task_type, c.label_schema, a.id, a.status
{TOKEN_USER_FROM}
LEFT JOIN labeling_item i ON i.id = %s
LEFT JOIN labeling_campaign c ON c.id = i.campaign_id
LEFT JOIN labeling_assignment a ON a.item_id = i.id AND a.worker_id = u.id
WHERE t.key = %s
"""
# What both submit statements write once their `lease` CTE has marked the lease submitted
# (RETURNING id, campaign_id, worker_id; no row when it was no longer leased): the label, counted
# on its item and in its worker's shard of the campaign's tally. No row, nothing written.
_WRITES_AFTER_LEASE = """, ann AS (
    INSERT INTO labeling_annotation (item_id, worker_id, assignment_id, value, label, duration_ms,
                                     created_at)
    SELECT %(item)s, lease.worker_id, lease.id, %(value)s::jsonb, %(label)s, %(duration_ms)s,
           %(now)s
    FROM lease
    RETURNING id, worker_id, assignment_id, created_at
), item AS (
    UPDATE labeling_item SET label_count = label_count + 1
    WHERE id = %(item)s AND EXISTS (SELECT 1 FROM lease)
), tally AS (
    INSERT INTO labeling_campaignlabeltally (campaign_id, shard, labels)
    SELECT lease.campaign_id, mod(lease.worker_id, %(shards)s), 1 FROM lease
    ON CONFLICT (campaign_id, shard) DO UPDATE SET labels = labeling_campaignlabeltally.labels + 1
)
SELECT id, worker_id, assignment_id, created_at FROM ann
"""
# The item row is locked first (lock order): `EXISTS (SELECT 1 FROM locked)` is uncorrelated, so
# PostgreSQL evaluates it once, as a one-time filter, before the lease UPDATE scans for its row.
# The lease is marked submitted only if it is still leased, and the label exists only if it was:
# the UPDATE re-checks the lease on its newest version (READ COMMITTED re-evaluates a row changed
# since the statement's snapshot).
_SUBMIT_WRITE = (
    """
WITH locked AS (
    SELECT id FROM labeling_item WHERE id = %(item)s FOR UPDATE
), lease AS (
    UPDATE labeling_assignment SET status = 'submitted'
    WHERE id = %(assignment)s AND status = 'leased' AND EXISTS (SELECT 1 FROM locked)
    RETURNING id, campaign_id, worker_id
)"""  # noqa: S608 - the statement's own text, no input
    + _WRITES_AFTER_LEASE
)


class SubmitTarget:
    """What a submission needs to know, read without locks (`submit_write` re-checks the lease)."""

    __slots__ = ("assignment_id", "assignment_status", "campaign", "item_status")

    def __init__(
        self,
        *,
        item_status: str,
        campaign: Campaign,
        assignment_id: int | None,
        assignment_status: str | None,
    ) -> None:
        self.item_status = item_status
        self.campaign = campaign
        self.assignment_id = assignment_id
        self.assignment_status = assignment_status


def submit_target(*, worker: User, item_id: int) -> SubmitTarget | None:
    """The item's status, its campaign and the worker's lease on it. None: no such item.

    Read without locks: the lease may move on before the write. Only "leased" can be out of date
    (a lease never goes back to it), and `submit_write` re-checks exactly that.
    """
    with prepared_cursor() as cursor:
        cursor.execute(_SUBMIT_TARGET, [worker.pk, item_id])
        row = cursor.fetchone()
    return None if row is None else _submit_target(row)


def token_submit_target(*, key: str, item_id: int) -> tuple[User, SubmitTarget | None] | None:
    """`submit_target` for the user of an API token, and that user, in one statement.

    None: no such token. Raises AuthenticationFailed for an inactive user, as token auth does.
    """
    found = _with_token_user(_TOKEN_SUBMIT_TARGET, [item_id, key])
    if found is None:
        return None
    user, rest = found
    return user, None if rest[0] is None else _submit_target(rest)


def _submit_target(row: tuple[Any, ...]) -> SubmitTarget:
    item_status, campaign_id, task_type, schema, assignment_id, assignment_status = row
    campaign = _loaded(
        Campaign,
        {
            "id": campaign_id,
            "task_type": task_type,
            # Django reads jsonb as text and leaves decoding to the field; a raw cursor does too.
            "label_schema": json.loads(schema) if isinstance(schema, str) else schema,
        },
    )
    return SubmitTarget(
        item_status=item_status,
        campaign=campaign,
        assignment_id=assignment_id,
        assignment_status=assignment_status,
    )


def submit_write(
    *,
    item_id: int,
    assignment_id: int,
    value: dict[str, Any],
    duration_ms: int | None,
    now: datetime,
) -> Annotation | None:
    """The label, its lease marked submitted, the item's and the campaign's counts: one statement,
    which locks the item first.

    None if the lease was no longer leased (the caller reads why with `submit_target`).
    """
    label = value.get("label", "")
    label = label if isinstance(label, str) else ""
    params = {"assignment": assignment_id}
    return _write(
        _SUBMIT_WRITE,
        params,
        item_id=item_id,
        value=value,
        label=label,
        duration_ms=duration_ms,
        now=now,
    )


def _write(
    sql: str,
    params: dict[str, Any],
    *,
    item_id: int,
    value: dict[str, Any],
    label: str,
    duration_ms: int | None,
    now: datetime,
) -> Annotation | None:
    """Run a submit statement ending in `_WRITES_AFTER_LEASE`: the label it wrote, as the ORM
    would load it, or None if it wrote nothing."""
    with prepared_cursor() as cursor:
        cursor.execute(
            sql,
            {
                **params,
                "item": item_id,
                "value": json.dumps(value),
                "label": label,
                "duration_ms": duration_ms,
                "now": now,
                "shards": CampaignLabelTally.SHARDS,
            },
        )
        row = cursor.fetchone()
    if row is None:
        return None
    annotation_id, worker_id, assignment_id, created_at = row
    return _loaded(
        Annotation,
        {
            "id": annotation_id,
            "item_id": item_id,
            "worker_id": worker_id,
            "assignment_id": assignment_id,
            "value": value,
            "label": label,
            "duration_ms": duration_ms,
            "created_at": created_at,
        },
    )


# The whole submit of a class label by an API client in one statement: the token's active user,
# their live lease on the item, the label one of the campaign's classes, then `_SUBMIT_WRITE`'s
# item lock first, lease re-check and writes (`_WRITES_AFTER_LEASE`). When any condition fails
# it writes nothing and returns no row; the caller then takes the long way, which names why. The
# class check is jsonb containment on the campaign's stored, normalised schema,
# `{"classes": [{"name": …, "hotkey": …, "color": …}, …]}`: the label is accepted exactly when
# `schema.validate_value` accepts it (tests/labeling/test_hot_sql.py compares the two).
_CLASSIFICATION_TYPES = ", ".join(
    f"'{task_type}'" for task_type in (TaskType.IMAGE_CLASSIFICATION, TaskType.TEXT_CLASSIFICATION)
)
_TOKEN_SUBMIT_LABEL = (
    f"""
WITH target AS (
    SELECT a.id, a.campaign_id, a.worker_id
    {TOKEN_USER_FROM}
    JOIN labeling_assignment a ON a.worker_id = u.id AND a.item_id = %(item)s
    JOIN labeling_campaign c ON c.id = a.campaign_id
    WHERE t.key = %(key)s AND u.is_active AND a.status = 'leased'
      AND c.task_type IN ({_CLASSIFICATION_TYPES})
      AND c.label_schema -> 'classes' @> %(classes)s::jsonb
), locked AS (
    SELECT id FROM labeling_item WHERE id = %(item)s AND EXISTS (SELECT 1 FROM target) FOR UPDATE
), lease AS (
    UPDATE labeling_assignment a SET status = 'submitted'
    FROM target
    WHERE a.id = target.id AND a.status = 'leased' AND EXISTS (SELECT 1 FROM locked)
    RETURNING a.id, a.campaign_id, a.worker_id
)"""  # noqa: S608 - table names and the task types are the models' constants
    + _WRITES_AFTER_LEASE
)


def _storable(text: str) -> bool:
    """Text PostgreSQL can take: UTF-8 (no lone surrogates, which JSON can spell) without NUL.
    Anything else is never a class name, and as a parameter it would fail the statement."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return "\x00" not in text


def token_submit_label(
    *, key: str, item_id: int, label: str, duration_ms: int | None, now: datetime
) -> Annotation | None:
    """The label of an API token's user on an item leased to them, with its lease, item and
    campaign counts, in one statement (autocommit: its own transaction).

    None, having written nothing, when the token is unknown, its user inactive, the user holds no
    live lease on the item, the item's campaign is not a classification or the label is not one
    of its classes: the full path (`annotation_submit`) says which.
    """
    if not _storable(label):
        return None
    params = {"key": key, "classes": json.dumps([{"name": label}])}
    return _write(
        _TOKEN_SUBMIT_LABEL,
        params,
        item_id=item_id,
        value={"label": label},
        label=label,
        duration_ms=duration_ms,
        now=now,
    )
