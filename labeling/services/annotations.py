"""Submit: a worker's label on an item leased to them. The one home of submit: the read and
its checks here, the write statements in `hot_sql` (docs/architecture.md, "Where each rule
lives")."""

from __future__ import annotations

from django.utils import timezone

from accounts.models import User
from core.batches import enqueue_batched_on_commit_or_log
from core.errors import Conflict, NotFound

from ..models import Annotation, AssignmentStatus, ItemStatus
from ..schema import validate_value
from . import hot_sql


def _lease_error(status: str | None, *, item_status: str) -> Conflict | None:
    """The domain error naming why a submission has no lease to use; None if it has one."""
    if status is None:
        return Conflict("this item is not leased to you; ask for the next task", code="not_leased")
    if status == AssignmentStatus.SUBMITTED:
        return Conflict("you already labeled this item", code="already_labeled")
    if status == AssignmentStatus.EXPIRED:
        if item_status == ItemStatus.COMPLETE:
            return Conflict("this item was completed by others meanwhile", code="item_closed")
        return Conflict("your lease on this item expired", code="lease_expired")
    return None


def annotation_submit(
    *,
    worker: User,
    item_id: int,
    label: object = None,
    boxes: object = None,
    duration_ms: int | None = None,
    target: hot_sql.SubmitTarget | None = None,
) -> Annotation:
    """Store the worker's label on an item leased to them; its quality update runs on commit.

    `target`: the submit's read when the caller made it already (the fast lane,
    together with the token's user); None: read it here.

    The one home of submit (with `annotation_submit_label_for_token`, its one-statement form):
    a read, then one write statement (`_submit`, hot_sql), atomic by itself, so no transaction
    is opened around it: in autocommit the statement commits itself, a BEGIN and a COMMIT round
    trip fewer per label (bench/README.md, "Next task"). Inside a caller's transaction it is part
    of that one.
    """
    annotation = _submit(
        worker=worker,
        item_id=item_id,
        label=label,
        boxes=boxes,
        duration_ms=duration_ms,
        target=target or hot_sql.submit_target(worker=worker, item_id=item_id),
    )
    # Outside a transaction Django runs this at once: the write has committed. A message lost
    # (the broker down, a crash right here) is sent again by quality's sweep.
    enqueue_batched_on_commit_or_log("quality.update_items", item_id)
    return annotation


def annotation_submit_label_for_token(
    *, key: str, item_id: int, label: str, duration_ms: int | None = None
) -> Annotation | None:
    """`annotation_submit` of a class label for the user of an API token, in one statement
    (autocommit): the token, the lease and the class are checked by the write itself
    (`hot_sql.token_submit_label`). None, with nothing written, when any check fails: then
    `annotation_submit` (after the usual authentication) names the error. The fast lane's submit.
    """
    annotation = hot_sql.token_submit_label(
        key=key, item_id=item_id, label=label, duration_ms=duration_ms, now=timezone.now()
    )
    if annotation is not None:
        enqueue_batched_on_commit_or_log("quality.update_items", item_id)
    return annotation


def _submit(
    *,
    worker: User,
    item_id: int,
    label: object,
    boxes: object,
    duration_ms: int | None,
    target: hot_sql.SubmitTarget | None,
) -> Annotation:
    """The read's checks (no such item, no live lease, an invalid label), then one write
    statement (`hot_sql.submit_write`) that locks the item first and re-checks the lease."""
    if target is None:
        raise NotFound(f"item {item_id} does not exist", code="item_not_found")
    error = _lease_error(target.assignment_status, item_status=target.item_status)
    if error is not None or target.assignment_id is None:
        raise error or AssertionError
    campaign = target.campaign
    value = validate_value(
        task_type=campaign.task_type, schema=campaign.label_schema, label=label, boxes=boxes
    )
    annotation = hot_sql.submit_write(
        item_id=item_id,
        assignment_id=target.assignment_id,
        value=value,
        duration_ms=duration_ms,
        now=timezone.now(),
    )
    if annotation is None:
        # The lease moved on since the read (the item may have closed): say what they are now.
        current = hot_sql.submit_target(worker=worker, item_id=item_id) or target
        raise _lease_error(current.assignment_status, item_status=current.item_status) or Conflict(
            "your lease on this item changed; ask for the next task", code="not_leased"
        )
    return annotation
