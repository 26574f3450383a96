"""The repair for a lost quality-update message.

A submitted label's update is published after its commit (`core.tasks.enqueue_on_commit_or_log`),
so a crash between the two, or a broker that cannot be reached, drops the message while the label
is a row all the same (the submit still answers 201: the label is stored).
Once a minute the sweep reads the labels written since its last run (an annotation-id watermark,
`ConsensusSweep`) and older than a grace period, and sends the update again for each item whose
consensus counts fewer labels than the item holds. Every label is checked once.

The grace period also covers ids committed out of order: a label's id is taken when its insert
runs and it is visible when its transaction commits, which on the submit's path is the same
statement; any writer holding an annotation uncommitted for longer than the grace would have its
label skipped by the sweep (its own message still goes out).
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core.tasks import enqueue_on_commit
from labeling import selectors as labeling_selectors

from ..models import ConsensusSweep, ItemConsensus

SWEEP_BATCH = 5000


@transaction.atomic
def consensus_sweep_lagging(*, limit: int = SWEEP_BATCH) -> list[int]:
    """Send the quality update again for items whose consensus misses a label; their ids."""
    sweep, _ = ConsensusSweep.objects.select_for_update().get_or_create(pk=1)
    cutoff = timezone.now() - timedelta(seconds=settings.KYODO_QUALITY_SWEEP_GRACE_SECONDS)
    rows = labeling_selectors.annotations_after(
        annotation_id=sweep.last_annotation_id, created_before=cutoff, limit=limit
    )
    if not rows:
        return []
    item_ids = sorted({item_id for _, item_id in rows})
    held = labeling_selectors.item_label_counts(item_ids=item_ids)
    counted = dict(
        ItemConsensus.objects.filter(item_id__in=item_ids).values_list("item_id", "n_labels")
    )
    lagging = [pk for pk in item_ids if counted.get(pk, 0) < held.get(pk, 0)]
    sweep.last_annotation_id = rows[-1][0]
    sweep.save(update_fields=["last_annotation_id", "swept_at"])
    if lagging:
        enqueue_on_commit("quality.update_items", lagging)
    return lagging
