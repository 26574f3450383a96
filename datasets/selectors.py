"""Reads for buyers: what can be bought and the rows of an export, streamed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from itertools import islice

from core.errors import NotFound
from labeling import selectors as labeling_selectors
from quality import selectors as quality_selectors

from .models import Export

EXPORT_CHUNK = 2000


def export_rows(*, campaign_id: int) -> Iterator[dict[str, object]]:
    """One dict per completed item, in item order; memory bounded by EXPORT_CHUNK."""
    items = labeling_selectors.completed_items_iter(
        campaign_id=campaign_id, chunk_size=EXPORT_CHUNK
    )
    while chunk := list(islice(items, EXPORT_CHUNK)):
        decided = quality_selectors.consensus_for_items(item_ids=[i.item_id for i in chunk])
        for item in chunk:
            consensus = decided.get(item.item_id)
            if consensus is None:
                continue  # closed but not yet decided: never export a guess
            yield {
                "item_id": item.item_id,
                "cid": item.cid,
                "label": consensus.label,
                "confidence": round(consensus.confidence, 6),
                "n_labels": consensus.n_labels,
            }


def export_jsonl(*, campaign_id: int) -> Iterator[bytes]:
    for row in export_rows(campaign_id=campaign_id):
        yield (json.dumps(row, separators=(",", ":")) + "\n").encode()


def export_get(*, export_id: int) -> Export:
    export = Export.objects.filter(pk=export_id).first()
    if export is None:
        raise NotFound(f"export {export_id} does not exist", code="export_not_found")
    return export
