from __future__ import annotations

from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from accounts.models import User
from core.errors import Conflict, NotFound
from core.tasks import enqueue_on_commit_or_log

from ..models import (
    Annotation,
    Assignment,
    AssignmentStatus,
    CampaignLabelTally,
    Item,
    ItemStatus,
)
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


def assignment_get_for_update(*, worker: User, item_id: int) -> Assignment:
    """The worker's lease on this item, locked; raises a domain error naming why there is none.

    Must run inside a transaction. Locks the item row first, then the lease: every writer of an
    item and its leases (lease, submit, close, expire) takes the item first: no deadlocks.
    """
    if (
        Item.objects.select_for_update().filter(pk=item_id).values_list("id", flat=True).first()
        is None
    ):
        raise NotFound(f"item {item_id} does not exist", code="item_not_found")
    assignment = (
        # of=("self",): lock the lease only, not the joined item (locked above) or campaign row,
        # which every lease and submission of the campaign would otherwise queue on.
        Assignment.objects.select_for_update(of=("self",))
        .select_related("item", "campaign")
        .filter(worker=worker, item_id=item_id)
        .first()
    )
    if assignment is None:
        raise _lease_error(None, item_status=ItemStatus.OPEN) or AssertionError
    error = _lease_error(assignment.status, item_status=assignment.item.status)
    if error is not None:
        raise error
    return assignment


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

    `target`: on PostgreSQL, the submit's read when the caller made it already (the fast lane,
    together with the token's user); None: read it here.

    On PostgreSQL every write is one statement (`_submit_sql`), atomic by itself, so no
    transaction is opened around it: in autocommit the statement commits itself, a BEGIN and a
    COMMIT round trip fewer per label (bench/README.md, "Next task"). Inside a caller's
    transaction it is part of that one.
    """
    if connection.vendor == "postgresql":
        annotation = _submit_sql(
            worker=worker,
            item_id=item_id,
            label=label,
            boxes=boxes,
            duration_ms=duration_ms,
            target=target or hot_sql.submit_target(worker=worker, item_id=item_id),
        )
    else:
        annotation = _submit_orm(
            worker=worker, item_id=item_id, label=label, boxes=boxes, duration_ms=duration_ms
        )
    # Outside a transaction Django runs this at once: the write has committed. A message lost
    # (the broker down, a crash right here) is sent again by quality's sweep.
    enqueue_on_commit_or_log("quality.update_item", item_id)
    return annotation


def annotation_submit_label_for_token(
    *, key: str, item_id: int, label: str, duration_ms: int | None = None
) -> Annotation | None:
    """`annotation_submit` of a class label for the user of an API token, in one statement
    (PostgreSQL, autocommit): the token, the lease and the class are checked by the write itself
    (`hot_sql.token_submit_label`). None, with nothing written, when any check fails: then
    `annotation_submit` (after the usual authentication) names the error. The fast lane's submit.
    """
    annotation = hot_sql.token_submit_label(
        key=key, item_id=item_id, label=label, duration_ms=duration_ms, now=timezone.now()
    )
    if annotation is not None:
        enqueue_on_commit_or_log("quality.update_item", item_id)
    return annotation


@transaction.atomic
def _submit_orm(
    *, worker: User, item_id: int, label: object, boxes: object, duration_ms: int | None
) -> Annotation:
    assignment = assignment_get_for_update(worker=worker, item_id=item_id)
    campaign = assignment.campaign
    value = validate_value(
        task_type=campaign.task_type, schema=campaign.label_schema, label=label, boxes=boxes
    )
    annotation = Annotation.objects.create(
        item_id=item_id,
        worker=worker,
        assignment=assignment,
        value=value,
        label=value.get("label", ""),
        duration_ms=duration_ms,
    )
    assignment.status = AssignmentStatus.SUBMITTED
    assignment.save(update_fields=["status"])
    Item.objects.filter(pk=item_id).update(label_count=F("label_count") + 1)
    shard = worker.pk % CampaignLabelTally.SHARDS
    tally = CampaignLabelTally.objects.filter(campaign_id=campaign.pk, shard=shard)
    if not tally.update(labels=F("labels") + 1):
        CampaignLabelTally.objects.create(campaign_id=campaign.pk, shard=shard, labels=1)
    return annotation


def _submit_sql(
    *,
    worker: User,
    item_id: int,
    label: object,
    boxes: object,
    duration_ms: int | None,
    target: hot_sql.SubmitTarget | None,
) -> Annotation:
    """`_submit_orm` on PostgreSQL (see hot_sql): a read, then one write statement that locks
    the item and re-checks the lease; same checks, same lock order."""
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
