"""A campaign's answers, gold and model predictions as integer-coded arrays, for a full refit.

Rows are streamed from the database a chunk at a time into `array` buffers (never model
instances), then viewed as numpy arrays: memory is a few integers per answer and per item.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass

import numpy as np

from labeling import selectors as labeling_selectors
from labeling.models import Campaign, ItemStatus
from quality.aggregation._numeric import IntArray
from quality.aggregation.answers import Answers

from ..models import ItemPrediction, ModelVersion


@dataclass(frozen=True)
class CampaignArrays:
    classes: tuple[str, ...]
    answers: Answers  # gold attached
    worker_ids: IntArray  # code -> user id
    item_ids: IntArray  # code -> item id (every item of the campaign, ascending)
    is_open: np.ndarray  # per item code
    model_version: int | None
    model_items: IntArray
    model_labels: IntArray


def load_campaign(*, campaign: Campaign) -> CampaignArrays | None:
    """The campaign's answers, gold and current model predictions as integer-coded arrays."""
    classes = tuple(campaign.class_names)
    code = {name: i for i, name in enumerate(classes)}
    item_ids, open_flags, gold_items, gold_labels = array("q"), array("b"), array("q"), array("q")
    for index, (item_id, status, gold, _) in enumerate(
        labeling_selectors.campaign_items_iter(campaign_id=campaign.pk)
    ):
        item_ids.append(item_id)
        open_flags.append(status == ItemStatus.OPEN)
        if gold in code:
            gold_items.append(index)
            gold_labels.append(code[gold])
    workers, items, labels = array("q"), array("q"), array("q")
    for worker_id, item_id, label in labeling_selectors.campaign_answers_iter(
        campaign_id=campaign.pk
    ):
        if label in code:
            workers.append(worker_id)
            items.append(item_id)
            labels.append(code[label])
    if not labels or not item_ids:
        return None
    ids = np.frombuffer(item_ids, dtype=np.int64)
    answer_items = np.frombuffer(items, dtype=np.int64)
    position = np.searchsorted(ids, answer_items)
    known = (position < ids.size) & (ids[np.minimum(position, ids.size - 1)] == answer_items)
    worker_ids, worker_codes = np.unique(
        np.frombuffer(workers, dtype=np.int64)[known], return_inverse=True
    )
    answers = Answers(
        worker_idx=worker_codes,
        item_idx=position[known],
        label_idx=np.frombuffer(labels, dtype=np.int64)[known],
        n_workers=worker_ids.size,
        n_items=ids.size,
        n_classes=len(classes),
    ).with_gold(dict(zip(gold_items, gold_labels, strict=True)))
    version, model_items, model_labels = _predictions(campaign_id=campaign.pk, ids=ids, code=code)
    return CampaignArrays(
        classes=classes,
        answers=answers,
        worker_ids=worker_ids.astype(np.intp),
        item_ids=ids.astype(np.intp),
        is_open=np.frombuffer(open_flags, dtype=np.int8).astype(bool),
        model_version=version,
        model_items=model_items,
        model_labels=model_labels,
    )


def _predictions(
    *, campaign_id: int, ids: np.ndarray, code: dict[str, int]
) -> tuple[int | None, IntArray, IntArray]:
    empty = np.zeros(0, dtype=np.intp)
    latest = (
        ModelVersion.objects.filter(campaign_id=campaign_id)
        .order_by("-version")
        .values_list("version", flat=True)
        .first()
    )
    if latest is None:
        return None, empty, empty
    rows = ItemPrediction.objects.filter(campaign_id=campaign_id, version=latest).values_list(
        "item_id", "label"
    )
    items, labels = array("q"), array("q")
    for item_id, label in rows.iterator(chunk_size=labeling_selectors.CAMPAIGN_CHUNK):
        if label in code:
            items.append(item_id)
            labels.append(code[label])
    found = np.frombuffer(items, dtype=np.int64)
    position = np.searchsorted(ids, found)
    ok = (position < ids.size) & (ids[np.minimum(position, max(ids.size - 1, 0))] == found)
    return latest, position[ok].astype(np.intp), np.frombuffer(labels, dtype=np.int64)[ok]
