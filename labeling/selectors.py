"""Reads of the labeling app, for its own views and for quality, rewards and datasets."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Q, QuerySet, Sum
from django.db.models.functions import Coalesce

from accounts.models import User
from core.errors import NotFound, PermissionDenied

from .models import (
    Annotation,
    Assignment,
    Campaign,
    CampaignLabelTally,
    CampaignStatus,
    ImportJob,
    Item,
    ItemStatus,
)


def campaign_label_count(*, campaign_id: int) -> int:
    """Labels submitted to the campaign: the sum of its tally shards (at most SHARDS rows)."""
    total = CampaignLabelTally.objects.filter(campaign_id=campaign_id).aggregate(
        n=Coalesce(Sum("labels"), 0)
    )["n"]
    return int(total)


def campaigns_with_label_count(campaigns: QuerySet[Campaign]) -> QuerySet[Campaign]:
    """The campaigns, each with `label_count` (its labels) annotated: one query for a list."""
    return campaigns.annotate(label_count=Coalesce(Sum("label_tallies__labels"), 0))


def campaign_labels(campaign: Campaign) -> int:
    """A campaign's labels: annotated (campaigns_with_label_count), else counted now."""
    annotated = getattr(campaign, "label_count", None)
    return (
        int(annotated) if annotated is not None else campaign_label_count(campaign_id=campaign.pk)
    )


def campaign_list_for(*, user: User) -> QuerySet[Campaign]:
    """Each campaign with `label_count` (its labels) annotated."""
    qs = campaigns_with_label_count(Campaign.objects.select_related("owner")).order_by("-id")
    if user.is_staff:
        return qs
    if user.is_requester:
        return qs.filter(Q(owner=user) | Q(status=CampaignStatus.ACTIVE))
    return qs.filter(status=CampaignStatus.ACTIVE)


def campaign_get_for(*, user: User, campaign_id: int) -> Campaign:
    campaign = Campaign.objects.select_related("owner").filter(pk=campaign_id).first()
    if campaign is None:
        raise NotFound(f"campaign {campaign_id} does not exist", code="campaign_not_found")
    if campaign.is_open_to(user):
        return campaign
    raise PermissionDenied("this campaign is not open to you", code="campaign_forbidden")


def campaign_get(*, campaign_id: int) -> Campaign:
    campaign = Campaign.objects.filter(pk=campaign_id).first()
    if campaign is None:
        raise NotFound(f"campaign {campaign_id} does not exist", code="campaign_not_found")
    return campaign


def campaign_progress(*, campaign: Campaign) -> dict[str, int]:
    # Counters kept by the services: never a count over the campaign's items.
    return {
        "items": campaign.item_count,
        "completed": campaign.completed_count,
        "labels": campaign_labels(campaign),
    }


def task_payload(*, assignment: Assignment) -> dict[str, Any]:
    """What a contributor sees of a leased item. Never the gold label, never others' labels."""
    item = assignment.item
    campaign = assignment.campaign
    payload: dict[str, Any] = {
        "item_id": item.pk,
        "campaign_id": campaign.pk,
        "classes": campaign.label_schema["classes"],
        "lease_expires_at": assignment.leased_until,
        "media_type": item.media_type,
    }
    if item.text:
        payload["text"] = item.text
    else:
        payload["media_url"] = f"/ipfs/{item.cid}"
    return payload


def worker_progress(*, campaign: Campaign, worker: User) -> dict[str, int]:
    return {"labeled": Annotation.objects.filter(worker=worker, item__campaign=campaign).count()}


def item_get(*, item_id: int) -> Item:
    item = Item.objects.select_related("campaign").filter(pk=item_id).first()
    if item is None:
        raise NotFound(f"item {item_id} does not exist", code="item_not_found")
    return item


def item_labels(*, item_id: int) -> list[tuple[int, str]]:
    """(worker id, label) of every annotation on the item, oldest first."""
    return list(
        Annotation.objects.filter(item_id=item_id).order_by("id").values_list("worker_id", "label")
    )


def annotations_after(
    *, annotation_id: int, created_before: datetime, limit: int
) -> list[tuple[int, int]]:
    """(annotation id, item id) of the labels after this id and older than `created_before`, in id
    order, at most `limit`."""
    return list(
        Annotation.objects.filter(pk__gt=annotation_id, created_at__lt=created_before)
        .order_by("pk")
        .values_list("pk", "item_id")[:limit]
    )


def item_label_counts(*, item_ids: list[int]) -> dict[int, int]:
    """Each item's number of labels, by item id."""
    return dict(Item.objects.filter(pk__in=item_ids).values_list("pk", "label_count"))


def item_annotations(*, item_id: int) -> QuerySet[Annotation]:
    return Annotation.objects.filter(item_id=item_id).order_by("id")


def blob_visible_to(*, user: User, cid: str) -> Item | None:
    """An item with this CID that the user may see (owner, staff, or a worker it was leased to)."""
    items = Item.objects.select_related("campaign").filter(cid=cid)
    if user.is_staff:
        return items.first()
    return items.filter(Q(campaign__owner=user) | Q(assignments__worker=user)).first()


def campaigns_with_completed_items() -> QuerySet[Campaign]:
    return Campaign.objects.filter(completed_count__gt=0).order_by("-id")


@dataclass(frozen=True)
class CompletedItem:
    item_id: int
    cid: str
    label_count: int


def completed_items_iter(*, campaign_id: int, chunk_size: int = 2000) -> Iterator[CompletedItem]:
    rows = (
        Item.objects.filter(campaign_id=campaign_id, status=ItemStatus.COMPLETE)
        .order_by("id")
        .values_list("id", "cid", "label_count")
    )
    for item_id, cid, n in rows.iterator(chunk_size=chunk_size):
        yield CompletedItem(item_id=item_id, cid=cid, label_count=n)


def imports_of(*, campaign: Campaign, limit: int = 50) -> list[ImportJob]:
    return list(ImportJob.objects.filter(campaign=campaign).order_by("-id")[:limit])


def import_get(*, import_id: int) -> ImportJob:
    job = ImportJob.objects.select_related("campaign").filter(pk=import_id).first()
    if job is None:
        raise NotFound(f"import {import_id} does not exist", code="import_not_found")
    return job


@dataclass(frozen=True)
class ItemRef:
    item_id: int
    cid: str
    filename: str
    media_type: str


def items_iter(*, campaign_id: int, chunk_size: int = 2000) -> Iterator[ItemRef]:
    """Every item of a campaign that is not part of an unfinished import, in id order."""
    rows = (
        Item.objects.filter(campaign_id=campaign_id)
        .exclude(status=ItemStatus.STAGED)
        .order_by("id")
        .values_list("id", "cid", "filename", "media_type")
    )
    for item_id, cid, filename, media_type in rows.iterator(chunk_size=chunk_size):
        yield ItemRef(item_id=item_id, cid=cid, filename=filename, media_type=media_type)


# --- whole-campaign streams, for the quality engine's refits and model training ----------------
# Read only, `values_list(...).iterator()`: memory holds one chunk of rows, never model instances.

CAMPAIGN_CHUNK = 5000


def campaign_answers_iter(*, campaign_id: int) -> Iterator[tuple[int, int, str]]:
    """(worker id, item id, label) of every annotation in the campaign, in no particular order."""
    rows = Annotation.objects.filter(item__campaign_id=campaign_id).values_list(
        "worker_id", "item_id", "label"
    )
    yield from rows.iterator(chunk_size=CAMPAIGN_CHUNK)


def campaign_boxes_iter(*, campaign_id: int) -> Iterator[tuple[int, int, object]]:
    """(worker id, item id, value) of every annotation in a bounding-box campaign, by item."""
    rows = (
        Annotation.objects.filter(item__campaign_id=campaign_id)
        .order_by("item_id", "id")
        .values_list("worker_id", "item_id", "value")
    )
    yield from rows.iterator(chunk_size=CAMPAIGN_CHUNK)


def campaign_items_iter(*, campaign_id: int) -> Iterator[tuple[int, str, str, int]]:
    """(item id, status, gold label, label count) of every item not in an unfinished import."""
    rows = (
        Item.objects.filter(campaign_id=campaign_id)
        .exclude(status=ItemStatus.STAGED)
        .order_by("id")
        .values_list("id", "status", "gold_label", "label_count")
    )
    yield from rows.iterator(chunk_size=CAMPAIGN_CHUNK)


def campaign_media_iter(
    *, campaign_id: int, item_ids: list[int] | None = None
) -> Iterator[tuple[int, str, str, str]]:
    """(item id, CID, inline text, media type) of the campaign's items (or of `item_ids`)."""
    rows = Item.objects.filter(campaign_id=campaign_id).exclude(status=ItemStatus.STAGED)
    if item_ids is not None:
        rows = rows.filter(pk__in=item_ids)
    yield from (
        rows.order_by("id")
        .values_list("id", "cid", "text", "media_type")
        .iterator(chunk_size=CAMPAIGN_CHUNK // 10)
    )


def campaigns_with_labels() -> list[tuple[int, int]]:
    """(campaign id, label count) of active and paused campaigns that have labels (the beat)."""
    live = Campaign.objects.filter(status__in=[CampaignStatus.ACTIVE, CampaignStatus.PAUSED])
    listed = campaigns_with_label_count(live.only("id")).order_by("id")
    return [(c.pk, n) for c in listed if (n := campaign_labels(c)) > 0]
