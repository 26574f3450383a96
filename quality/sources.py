"""Streaming reads of a whole campaign's labeling rows, for the full refit and model training.

These belong in `labeling.selectors` (quality reads labeling only through its selectors); they
live here until the labeling app takes them over, and are written so they can move verbatim: read
only, `values_list(...).iterator()` so memory holds one chunk of rows, never model instances.
"""

from __future__ import annotations

from collections.abc import Iterator

from labeling.models import Annotation, Campaign, CampaignStatus, Item, ItemStatus

CHUNK = 5000


def campaign_answers_iter(*, campaign_id: int) -> Iterator[tuple[int, int, str]]:
    """(worker id, item id, label) of every annotation in the campaign, in no particular order."""
    rows = Annotation.objects.filter(item__campaign_id=campaign_id).values_list(
        "worker_id", "item_id", "label"
    )
    yield from rows.iterator(chunk_size=CHUNK)


def campaign_boxes_iter(*, campaign_id: int) -> Iterator[tuple[int, int, object]]:
    """(worker id, item id, value) of every annotation in a bounding-box campaign, by item."""
    rows = (
        Annotation.objects.filter(item__campaign_id=campaign_id)
        .order_by("item_id", "id")
        .values_list("worker_id", "item_id", "value")
    )
    yield from rows.iterator(chunk_size=CHUNK)


def campaign_items_iter(*, campaign_id: int) -> Iterator[tuple[int, str, str, int]]:
    """(item id, status, gold label, label count) of every item not in an unfinished import."""
    rows = (
        Item.objects.filter(campaign_id=campaign_id)
        .exclude(status=ItemStatus.STAGED)
        .order_by("id")
        .values_list("id", "status", "gold_label", "label_count")
    )
    yield from rows.iterator(chunk_size=CHUNK)


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
        .iterator(chunk_size=CHUNK // 10)
    )


def campaigns_with_labels() -> list[tuple[int, int]]:
    """(campaign id, label count) of active and paused campaigns that have labels (the beat)."""
    return list(
        Campaign.objects.filter(
            status__in=[CampaignStatus.ACTIVE, CampaignStatus.PAUSED], label_count__gt=0
        )
        .order_by("id")
        .values_list("id", "label_count")
    )
