from __future__ import annotations

from django.db import transaction
from django.db.models import F

from accounts.models import User
from core.errors import Conflict, NotFound
from core.tasks import enqueue_on_commit

from ..models import Annotation, Assignment, AssignmentStatus, Campaign, Item, ItemStatus
from ..schema import validate_value


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
        raise Conflict("this item is not leased to you; ask for the next task", code="not_leased")
    if assignment.status == AssignmentStatus.SUBMITTED:
        raise Conflict("you already labeled this item", code="already_labeled")
    if assignment.status == AssignmentStatus.EXPIRED:
        if assignment.item.status == ItemStatus.COMPLETE:
            raise Conflict("this item was completed by others meanwhile", code="item_closed")
        raise Conflict("your lease on this item expired", code="lease_expired")
    return assignment


@transaction.atomic
def annotation_submit(
    *,
    worker: User,
    item_id: int,
    label: object = None,
    boxes: object = None,
    duration_ms: int | None = None,
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
    # The campaign's progress counter is bumped after commit, in its own statement: inside the
    # transaction every submission of the campaign would queue on that one row until commit.
    # A crash between the two loses one count of a progress display, never a label.
    transaction.on_commit(lambda: _count_label(campaign.pk))
    enqueue_on_commit("quality.update_item", item_id)
    return annotation


def _count_label(campaign_id: int) -> None:
    Campaign.objects.filter(pk=campaign_id).update(label_count=F("label_count") + 1)
