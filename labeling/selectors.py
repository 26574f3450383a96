"""Reads of the labeling app, for its own views and for quality, rewards and datasets."""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import F, Func, JSONField, Q, QuerySet, Sum, Value
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


# --- the rules of a campaign: each has one home here, used by every caller -------------------
# (docs/architecture.md, "Where each rule lives"). Where the same rule is also written in SQL,
# tests/labeling/test_rules.py pins the two together.


def campaign_is_open_to(*, campaign: Campaign, user: User) -> bool:
    """Whether the campaign is open to this user (to see it, and to label in it while it is
    active). The one home of this rule; `campaigns_open_to` is the same rule as a filter.

    Staff and the owner see a campaign in any state; everyone else while it is active.
    """
    return bool(
        user.is_staff or campaign.owner_id == user.pk or campaign.status == CampaignStatus.ACTIVE
    )


def campaigns_open_to(*, user: User) -> Q:
    """`campaign_is_open_to` as a filter on campaigns (pinned to it by a test)."""
    if user.is_staff:
        return Q()
    return Q(owner=user) | Q(status=CampaignStatus.ACTIVE)


def gold_draw() -> float:
    """A draw in [0, 1) for `campaign_serves_gold` (the one-statement next compares it in SQL)."""
    return random.random()  # noqa: S311 - a sampling draw, not a secret


def campaign_serves_gold(*, campaign: Campaign, draw: float) -> bool:
    """The gold draw: serve a gold item (a control task mixed into the stream) when `draw` (from
    `gold_draw`) is below the campaign's `gold_ratio`, so with probability `gold_ratio`.

    The one home of this rule; hot_sql's one-statement next compares the draw in SQL
    (`hot_sql.GOLD_FIRST_SQL`), pinned to this function by tests/labeling/test_rules.py.
    """
    return draw < campaign.gold_ratio


# The labels a budgeted campaign that pays nothing per label affords: unlimited, as far as its
# counter of reserved labels (a 32-bit column) can count.
UNLIMITED_LABELS = 2**31 - 1


def campaign_labels_affordable(*, campaign: Campaign) -> int | None:
    """How many labels a budgeted campaign's budget pays for (`budget // reward_per_label`, base
    units); None: no budget. A lease reserves one of them (labeling/sql/lease_next.sql).

    The one home of the budget's arithmetic; hot_sql's one-statement next computes it in SQL
    (`hot_sql.AFFORDABLE_SQL`), pinned to this function by tests/labeling/test_rules.py.
    """
    if campaign.budget is None:
        return None
    reward = int(campaign.reward_per_label or 0)
    return int(campaign.budget) // reward if reward else UNLIMITED_LABELS


def _manage_refusal(*, user: User, campaign: Campaign | None) -> PermissionDenied | None:
    if user.is_staff:
        return None
    if not user.is_requester:
        return PermissionDenied("only requesters can manage campaigns", code="not_requester")
    if campaign is not None and campaign.owner_id != user.pk:
        return PermissionDenied("this campaign belongs to someone else", code="not_owner")
    return None


def campaign_check_can_manage(*, user: User, campaign: Campaign | None = None) -> None:
    """Raise PermissionDenied unless the user may manage the campaign (None: create campaigns).

    The one home of "who may manage a campaign": staff, or its owner while they hold the
    requester role (`User.is_requester`). An owner who lost the role manages nothing, as anyone
    else who is not a requester: the role is what grants managing, owning a campaign does not.
    `campaign_can_manage` and `campaign_get_to_manage` are this rule.
    """
    refusal = _manage_refusal(user=user, campaign=campaign)
    if refusal is not None:
        raise refusal


def campaign_can_manage(*, user: User, campaign: Campaign) -> bool:
    """`campaign_check_can_manage` as a yes or no."""
    return _manage_refusal(user=user, campaign=campaign) is None


def campaign_get_to_manage(*, user: User, campaign_id: int) -> Campaign:
    """The campaign, when the user may manage it (`campaign_check_can_manage`)."""
    campaign = campaign_get(campaign_id=campaign_id)
    campaign_check_can_manage(user=user, campaign=campaign)
    return campaign


# --- campaigns ----------------------------------------------------------------------------------


def campaign_list_for(*, user: User) -> QuerySet[Campaign]:
    """The campaigns open to the user, each with `label_count` (its labels) annotated."""
    qs = campaigns_with_label_count(Campaign.objects.select_related("owner")).order_by("-id")
    return qs.filter(campaigns_open_to(user=user))


def campaign_get_for(*, user: User, campaign_id: int) -> Campaign:
    campaign = Campaign.objects.select_related("owner").filter(pk=campaign_id).first()
    if campaign is None:
        raise NotFound(f"campaign {campaign_id} does not exist", code="campaign_not_found")
    if campaign_is_open_to(campaign=campaign, user=user):
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


def items_labels(*, item_ids: Iterable[int]) -> dict[int, list[tuple[int, str]]]:
    """{item id: (worker id, label) of each of its annotations, oldest first}: one query.
    An item without labels is absent."""
    out: dict[int, list[tuple[int, str]]] = {}
    rows = (
        Annotation.objects.filter(item_id__in=list(item_ids))
        .order_by("id")
        .values_list("item_id", "worker_id", "label")
    )
    for item_id, worker_id, label in rows:
        out.setdefault(item_id, []).append((worker_id, label))
    return out


def items_by_campaign(*, item_ids: Iterable[int]) -> dict[int, list[int]]:
    """{campaign id: its items among these, in id order}: one query of two columns; missing ids
    are absent."""
    out: dict[int, list[int]] = {}
    rows = Item.objects.filter(pk__in=list(item_ids)).order_by("id").values_list("id", "campaign")
    for item_id, campaign_id in rows:
        out.setdefault(campaign_id, []).append(item_id)
    return out


def items_states(*, item_ids: Iterable[int]) -> dict[int, Item]:
    """The items by id, with only what the quality engine decides by: campaign, gold label,
    status and label count (not the text or metadata). One query; missing ids are absent."""
    return Item.objects.only("id", "campaign_id", "gold_label", "status", "label_count").in_bulk(
        list(item_ids)
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


def items_annotations(*, item_ids: Iterable[int]) -> QuerySet[Annotation]:
    return Annotation.objects.filter(item_id__in=list(item_ids)).order_by("id")


def items_with_campaign(*, item_ids: Iterable[int]) -> dict[int, Item]:
    """The items by id with their campaigns, in one query (not their text or metadata)."""
    return Item.objects.select_related("campaign").defer("text", "metadata").in_bulk(list(item_ids))


def blob_visible_to(*, user: User, cid: str) -> Item | None:
    """An item with this CID that the user may see (owner, staff, or a worker it was leased to)."""
    items = Item.objects.select_related("campaign").filter(cid=cid)
    if user.is_staff:
        return items.first()
    return items.filter(Q(campaign__owner=user) | Q(assignments__worker=user)).first()


# A campaign's labeled data is offered to buyers once it has been launched (active, paused or
# closed: never while a draft, including a campaign set back to draft) and has a completed item.
DATASET_STATUSES = (CampaignStatus.ACTIVE, CampaignStatus.PAUSED, CampaignStatus.CLOSED)


def campaign_offers_dataset(campaign: Campaign) -> bool:
    """Whether buyers may see and export the campaign's dataset: the one home of this rule;
    `campaigns_with_completed_items` is the same rule as a filter (a test pins the two)."""
    return campaign.status in DATASET_STATUSES and campaign.completed_count > 0


def campaigns_with_completed_items() -> QuerySet[Campaign]:
    """The campaigns whose datasets are offered (`campaign_offers_dataset`), newest first."""
    return Campaign.objects.filter(status__in=DATASET_STATUSES, completed_count__gt=0).order_by(
        "-id"
    )


def dataset_campaign_get(*, campaign_id: int) -> Campaign:
    """The campaign of an offered dataset; 404 for any other (a draft's data is not shown)."""
    campaign = Campaign.objects.filter(pk=campaign_id).first()
    if campaign is None or not campaign_offers_dataset(campaign):
        raise NotFound(f"no dataset for campaign {campaign_id}", code="dataset_not_found")
    return campaign


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


def imports_of(*, campaign: Campaign) -> QuerySet[ImportJob]:
    """The campaign's imports, newest first, without their rejected lists (`rejected_count`)."""
    return ImportJob.objects.filter(campaign=campaign).defer("rejected").order_by("-id")


def import_get(*, import_id: int) -> ImportJob:
    """A job for its poll: never its rejected list (up to 100,000 entries; `rejected_count`)."""
    job = (
        ImportJob.objects.select_related("campaign").defer("rejected").filter(pk=import_id).first()
    )
    if job is None:
        raise NotFound(f"import {import_id} does not exist", code="import_not_found")
    return job


def import_rejected_slice(*, job: ImportJob, start: int, stop: int) -> list[dict[str, str]]:
    """The job's rejected entries at positions start..stop-1, sliced by PostgreSQL, not here."""
    if stop <= start:
        return []
    # Both bounds are ints: the path is built from them, never from input text.
    path = f"$[{start} to {stop - 1}]"
    sliced = Func(
        F("rejected"), Value(path), function="jsonb_path_query_array", output_field=JSONField()
    )
    value = ImportJob.objects.filter(pk=job.pk).values_list(sliced, flat=True).first()
    return list(value or [])


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
