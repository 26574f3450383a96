"""Training a campaign's ML model (a Celery task) and storing its out-of-fold predictions.

Training set: the campaign's gold items and the items whose consensus is confident (at least the
campaign's `target_confidence`), at most KYODO_QUALITY_TRAIN_MAX_ITEMS of them (a seeded sample).
Every training item is scored out of fold; then the model fitted on all of them scores up to
KYODO_QUALITY_PREDICT_MAX_ITEMS open items, labeled ones first. The predictions replace the
previous version's, and a refit is queued so the new model joins the aggregation.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import Any

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import Max

from labeling import selectors as labeling_selectors
from labeling.models import Campaign, ItemStatus, TaskType
from quality.ml.features import FEATURES_VERSION, image_features
from quality.ml.train import IMAGE, TEXT, learnable, train_out_of_fold
from storage.services import get_store

from ..models import (
    CampaignQuality,
    ImageFeatures,
    ItemConsensus,
    ItemPrediction,
    ModelVersion,
)
from .params import campaign_claim, campaign_pause

log = logging.getLogger(__name__)

CLAIM = timedelta(hours=1)
MAX_TEXT_CHARS = 20_000
BATCH = 2000


def model_kind(campaign: Campaign) -> str | None:
    if campaign.task_type == TaskType.TEXT_CLASSIFICATION:
        return TEXT
    if campaign.task_type == TaskType.IMAGE_CLASSIFICATION:
        return IMAGE
    return None


def claim_training(*, campaign_id: int) -> bool:
    return campaign_claim(campaign_id=campaign_id, field="train_claimed_until", hold=CLAIM)


def training_set(*, campaign: Campaign) -> tuple[list[int], list[int], list[int]]:
    """(training item ids, their class codes, open item ids to predict), bounded by settings."""
    code = {name: i for i, name in enumerate(campaign.class_names)}
    labels: dict[int, int] = {}
    open_labeled: list[int] = []
    open_unlabeled: list[int] = []
    for item_id, status, gold, label_count in labeling_selectors.campaign_items_iter(
        campaign_id=campaign.pk
    ):
        if gold in code:
            labels[item_id] = code[gold]
        elif status == ItemStatus.OPEN:
            (open_labeled if label_count else open_unlabeled).append(item_id)
    confident = ItemConsensus.objects.filter(
        campaign_id=campaign.pk, confidence__gte=campaign.target_confidence
    ).values_list("item_id", "label")
    for item_id, label in confident.iterator(chunk_size=labeling_selectors.CAMPAIGN_CHUNK):
        if label in code:
            labels.setdefault(item_id, code[label])
    ids = np.fromiter(labels.keys(), dtype=np.int64, count=len(labels))
    limit = settings.KYODO_QUALITY_TRAIN_MAX_ITEMS
    if ids.size > limit:
        ids = np.sort(np.random.default_rng(campaign.pk).choice(ids, size=limit, replace=False))
    train_ids = ids.tolist()
    train_set = set(train_ids)
    predict = [i for i in open_labeled + open_unlabeled if i not in train_set]
    return (
        train_ids,
        [labels[i] for i in train_ids],
        predict[: settings.KYODO_QUALITY_PREDICT_MAX_ITEMS],
    )


def inputs(*, campaign: Campaign, kind: str, item_ids: list[int]) -> tuple[list[int], Any]:
    """(item ids that could be read, their model inputs): texts, or an image feature array.

    Image features are cached by CID (`ImageFeatures`): a training reads and decodes only the
    images no earlier training (of any campaign) has seen.
    """
    store = get_store()
    found: list[int] = []
    values: list[Any] = []
    for start in range(0, len(item_ids), BATCH):
        chunk = item_ids[start : start + BATCH]
        rows = list(labeling_selectors.campaign_media_iter(campaign_id=campaign.pk, item_ids=chunk))
        cached = _cached_features([cid for _, cid, _, _ in rows]) if kind == IMAGE else {}
        fresh: dict[str, Any] = {}
        for item_id, cid, text, _ in rows:
            try:
                if kind == TEXT:
                    value: Any = text or store.read_bytes(cid).decode("utf-8", errors="replace")
                    value = value[:MAX_TEXT_CHARS]
                elif cid in cached or cid in fresh:
                    value = cached.get(cid, fresh.get(cid))
                else:
                    value = fresh[cid] = image_features(store.read_bytes(cid))
            except Exception as error:  # one unreadable blob never stops a training run
                log.warning("item %s skipped for training: %s", item_id, error)
                continue
            found.append(item_id)
            values.append(value)
        if fresh:
            _cache_features(fresh)
    if kind == IMAGE:
        return found, np.asarray(values, dtype=np.float64).reshape(len(values), -1)
    return found, values


def _cached_features(cids: list[str]) -> dict[str, Any]:
    rows = ImageFeatures.objects.filter(cid__in=cids, version=FEATURES_VERSION).values_list(
        "cid", "features"
    )
    return {cid: np.frombuffer(bytes(blob), dtype="<f8").copy() for cid, blob in rows}


def _cache_features(features: dict[str, Any]) -> None:
    """Store new vectors; a row of an older FEATURES_VERSION is replaced (upsert on the CID)."""
    ImageFeatures.objects.bulk_create(
        [
            ImageFeatures(
                cid=cid,
                version=FEATURES_VERSION,
                features=np.asarray(v, dtype="<f8").tobytes(),
            )
            for cid, v in features.items()
        ],
        update_conflicts=True,
        unique_fields=["cid"],
        update_fields=["version", "features"],
    )


def model_train(*, campaign_id: int) -> ModelVersion | None:
    """Train and store a new model version for the campaign, or None (nothing to learn yet)."""
    campaign = labeling_selectors.campaign_get(campaign_id=campaign_id)
    kind = model_kind(campaign)
    if kind is None or not claim_training(campaign_id=campaign_id):
        return None
    cpu = time.process_time()
    try:
        return _train(campaign=campaign, kind=kind)
    finally:
        CampaignQuality.objects.filter(campaign_id=campaign_id).update(train_claimed_until=None)
        campaign_pause(campaign_id=campaign_id, cpu_seconds=time.process_time() - cpu)


def _train(*, campaign: Campaign, kind: str) -> ModelVersion | None:
    train_ids, train_labels, predict_ids = training_set(campaign=campaign)
    if len(train_ids) < settings.KYODO_QUALITY_TRAIN_MIN_ITEMS:
        return None
    found, x = inputs(campaign=campaign, kind=kind, item_ids=train_ids)
    label_of = dict(zip(train_ids, train_labels, strict=True))
    y = np.asarray([label_of[i] for i in found], dtype=np.intp)
    keep = learnable(y)
    found = [i for i, k in zip(found, keep, strict=True) if k]
    x = x[keep] if kind == IMAGE else [v for v, k in zip(x, keep, strict=True) if k]
    trained = train_out_of_fold(x, y[keep], kind=kind, n_classes=len(campaign.class_names))
    if trained is None:
        return None
    predicted_ids, x_new = inputs(campaign=campaign, kind=kind, item_ids=predict_ids)
    proba_new = trained.predict_proba(x_new)
    return _store(
        campaign=campaign,
        kind=kind,
        trained_on=len(found),
        oof_accuracy=trained.oof_accuracy,
        item_ids=found + predicted_ids,
        proba=np.vstack([trained.oof_proba, proba_new]),
    )


@transaction.atomic
def _store(
    *,
    campaign: Campaign,
    kind: str,
    trained_on: int,
    oof_accuracy: float,
    item_ids: list[int],
    proba: np.ndarray,
) -> ModelVersion:
    classes = campaign.class_names
    last = ModelVersion.objects.filter(campaign_id=campaign.pk).aggregate(v=Max("version"))["v"]
    version = ModelVersion.objects.create(
        campaign_id=campaign.pk,
        version=(last or 0) + 1,
        kind=kind,
        classes=classes,
        trained_on=trained_on,
        oof_accuracy=oof_accuracy,
        predicted=len(item_ids),
    )
    best = np.argmax(proba, axis=1) if len(item_ids) else np.zeros(0, dtype=np.intp)
    for start in range(0, len(item_ids), BATCH):
        rows = [
            ItemPrediction(
                item_id=item_id,
                campaign_id=campaign.pk,
                version=version.version,
                label=classes[int(best[j])],
                probability=round(float(proba[j, best[j]]), 6),
            )
            for j, item_id in enumerate(item_ids[start : start + BATCH], start=start)
        ]
        ItemPrediction.objects.bulk_create(
            rows,
            update_conflicts=True,
            unique_fields=["item_id"],
            update_fields=["campaign_id", "version", "label", "probability"],
        )
    ItemPrediction.objects.filter(campaign_id=campaign.pk, version__lt=version.version).delete()
    # The model is one more annotator: a refit takes it in, asked for like one for new labels
    # (the mark at 0: the first batch after the pause asks, or the beat), so that the refit too
    # waits for the pause. When the next training is due is the refit's to say, from new
    # evidence only: refit.training_due.
    CampaignQuality.objects.filter(campaign_id=campaign.pk).update(next_refit_at=0)
    log.info(
        "model v%s of campaign %s: %s items, out-of-fold accuracy %.3f",
        version.version,
        campaign.pk,
        trained_on,
        oof_accuracy,
    )
    return version
