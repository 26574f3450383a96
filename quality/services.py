"""Writes of the quality engine: per-item consensus, closing items, handing them to rewards."""

from __future__ import annotations

from collections import Counter

from django.db import transaction

from core.tasks import enqueue_on_commit
from labeling import selectors as labeling_selectors
from labeling import services as labeling_services

from .models import ItemConsensus

MAJORITY = "majority_vote"


def majority_vote(*, labels: list[str], classes: list[str]) -> tuple[str, float, dict[str, int]]:
    """The most frequent label; a tie goes to the class listed first in the schema."""
    counts = Counter(labels)
    order = {name: i for i, name in enumerate(classes)}
    winner = min(counts, key=lambda name: (-counts[name], order.get(name, len(order))))
    return winner, counts[winner] / len(labels), dict(counts)


@transaction.atomic
def item_consensus_update(*, item_id: int) -> ItemConsensus | None:
    """Recompute one item's consensus from all its labels; close it when the policy says so.

    Idempotent and safe to run concurrently for the same item: the consensus row is locked, so the
    last run always sees every committed label.
    """
    item = labeling_selectors.item_get(item_id=item_id)
    campaign = item.campaign
    ItemConsensus.objects.bulk_create(
        [
            ItemConsensus(
                item_id=item_id,
                campaign_id=campaign.pk,
                label="",
                confidence=0.0,
                n_labels=0,
                method=MAJORITY,
            )
        ],
        ignore_conflicts=True,
    )
    consensus = ItemConsensus.objects.select_for_update().get(item_id=item_id)
    labels = [label for _, label in labeling_selectors.item_labels(item_id=item_id)]
    if not labels:
        return consensus
    label, confidence, counts = majority_vote(labels=labels, classes=campaign.class_names)
    complete = counts[label] >= campaign.min_labels or len(labels) >= campaign.max_labels
    consensus.label = label
    consensus.confidence = confidence
    consensus.n_labels = len(labels)
    consensus.method = MAJORITY
    consensus.votes = {"counts": counts}
    consensus.is_complete = consensus.is_complete or complete
    consensus.save()
    if consensus.is_complete:
        labeling_services.item_complete(item_id=item_id)
        # Also after a late label on a closed item: accounting is idempotent per annotation.
        enqueue_on_commit("rewards.account_item", item_id)
    return consensus
