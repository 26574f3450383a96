from __future__ import annotations

from collections.abc import Iterable

from .models import ItemConsensus


def item_consensus(*, item_id: int) -> ItemConsensus | None:
    return ItemConsensus.objects.filter(item_id=item_id).first()


def consensus_for_items(*, item_ids: Iterable[int]) -> dict[int, ItemConsensus]:
    return {c.item_id: c for c in ItemConsensus.objects.filter(item_id__in=list(item_ids))}


def completed_consensus_after(*, after_id: int, limit: int) -> list[ItemConsensus]:
    """Completed decisions in id order, for sweeps that must not miss a closed item."""
    return list(
        ItemConsensus.objects.filter(is_complete=True, id__gt=after_id).order_by("id")[:limit]
    )
