"""The periodic full refit of one campaign: Dawid-Skene over all its answers, workers, items.

One campaign is one unit of work (one Celery task), so campaigns refit in parallel on as many
workers as there are. Memory: the campaign's answers as three integer arrays (streamed from the
database a chunk at a time, never as model instances), per-item arrays, and one batch of rows at a
time while writing. A claim on the campaign's `CampaignQuality` row keeps two copies of the task
from refitting one campaign at once.
"""

from __future__ import annotations

import logging
import time
from array import array
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from core.tasks import enqueue_on_commit
from labeling import selectors as labeling_selectors
from labeling import services as labeling_services
from labeling.models import Campaign, ItemStatus, TaskType
from quality.aggregation._numeric import FloatArray, IntArray, decide
from quality.aggregation.answers import Answers
from quality.aggregation.campaign import (
    CampaignFit,
    fit_campaign,
    live_parameters,
    live_scores,
    scores_to_posteriors,
)
from quality.aggregation.policy import (
    answer_weights,
    queue_priority,
    runner_up_of,
    should_close,
)

from .. import sources
from ..models import (
    CampaignQuality,
    ItemConsensus,
    ItemPrediction,
    ModelVersion,
    WorkerSkill,
    WorkerStatus,
)
from .boxes import campaign_refit_boxes
from .consensus import policy_of, votes_payload
from .params import ensure_campaign_quality, fit_options, next_refit_at

log = logging.getLogger(__name__)

CLAIM = timedelta(minutes=30)  # longer than any refit; a crashed one frees the campaign after it
BATCH = 1000


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


def claim_refit(*, campaign_id: int) -> bool:
    ensure_campaign_quality(campaign_id=campaign_id)
    now = timezone.now()
    return bool(
        CampaignQuality.objects.filter(campaign_id=campaign_id)
        .filter(Q(refit_claimed_until__isnull=True) | Q(refit_claimed_until__lt=now))
        .update(refit_claimed_until=now + CLAIM)
    )


def load_campaign(*, campaign: Campaign) -> CampaignArrays | None:
    """The campaign's answers, gold and current model predictions as integer-coded arrays."""
    classes = tuple(campaign.class_names)
    code = {name: i for i, name in enumerate(classes)}
    item_ids, open_flags, gold_items, gold_labels = array("q"), array("b"), array("q"), array("q")
    for index, (item_id, status, gold, _) in enumerate(
        sources.campaign_items_iter(campaign_id=campaign.pk)
    ):
        item_ids.append(item_id)
        open_flags.append(status == ItemStatus.OPEN)
        if gold in code:
            gold_items.append(index)
            gold_labels.append(code[gold])
    workers, items, labels = array("q"), array("q"), array("q")
    for worker_id, item_id, label in sources.campaign_answers_iter(campaign_id=campaign.pk):
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
    for item_id, label in rows.iterator(chunk_size=sources.CHUNK):
        if label in code:
            items.append(item_id)
            labels.append(code[label])
    found = np.frombuffer(items, dtype=np.int64)
    position = np.searchsorted(ids, found)
    ok = (position < ids.size) & (ids[np.minimum(position, max(ids.size - 1, 0))] == found)
    return latest, position[ok].astype(np.intp), np.frombuffer(labels, dtype=np.int64)[ok]


def campaign_refit(*, campaign_id: int) -> dict[str, Any] | None:
    """Refit one campaign if no other refit holds it; returns a summary, or None if skipped."""
    campaign = labeling_selectors.campaign_get(campaign_id=campaign_id)
    if not claim_refit(campaign_id=campaign_id):
        return None
    try:
        if campaign.task_type == TaskType.IMAGE_BBOX:
            return campaign_refit_boxes(campaign=campaign)
        return _refit_classes(campaign=campaign)
    finally:
        CampaignQuality.objects.filter(campaign_id=campaign_id).update(refit_claimed_until=None)


def _refit_classes(*, campaign: Campaign) -> dict[str, Any] | None:
    started = time.monotonic()
    labels_now = campaign.label_count
    data = load_campaign(campaign=campaign)
    if data is None:
        CampaignQuality.objects.filter(campaign_id=campaign.pk).update(
            next_refit_at=next_refit_at(labels_now)
        )
        return None
    use_model = data.model_items.size > 0
    fit = fit_campaign(
        data.answers,
        model_items=data.model_items if use_model else None,
        model_labels=data.model_labels if use_model else None,
        **fit_options(),
    )
    previous_version = (
        CampaignQuality.objects.filter(campaign_id=campaign.pk)
        .values_list("model_version", flat=True)
        .first()
    )
    summary = _store_parameters(campaign=campaign, data=data, fit=fit, labels=labels_now)
    _store_workers(campaign_id=campaign.pk, data=data, fit=fit)
    closed = _store_items(
        campaign=campaign, data=data, fit=fit, new_model=data.model_version != previous_version
    )
    summary.update(closed=closed, seconds=round(time.monotonic() - started, 3))
    log.info("quality refit of campaign %s: %s", campaign.pk, summary)
    _maybe_request_training(campaign=campaign, fit=fit, answers=data.answers)
    return summary


def _matrix(values: FloatArray) -> list[list[float]]:
    rows: list[list[float]] = np.round(np.asarray(values), 6).tolist()
    return rows


def _store_parameters(
    *, campaign: Campaign, data: CampaignArrays, fit: CampaignFit, labels: int
) -> dict[str, Any]:
    live = live_parameters(fit)
    uses_model = fit.calibrated and fit.model_confusion is not None
    stats = {
        "answers": data.answers.n_answers,
        "workers": int(data.worker_ids.size),
        "iterations": fit.result.iterations,
        "suspected": int(fit.likely_spammers.sum()),
        "trusted": int(fit.trusted.sum()),
        "default_accuracy": round(fit.default_accuracy, 4),
        "model_quality": None if fit.model_quality is None else round(fit.model_quality, 4),
        "model_cap": None if fit.model_cap is None else round(fit.model_cap, 4),
    }
    CampaignQuality.objects.filter(campaign_id=campaign.pk).update(
        classes=list(data.classes),
        class_priors=np.round(live.class_priors, 8).tolist(),
        default_confusion=_matrix(live.default),
        default_accuracy=fit.default_accuracy,
        temperature=live.temperature,
        calibrated=fit.calibrated,
        method=fit.method if fit.calibrated else "one_coin_agreement",
        model_version=data.model_version if uses_model else None,
        model_confusion=(
            _matrix(fit.model_confusion) if uses_model and fit.model_confusion is not None else None
        ),
        stats=stats,
        labels_at_fit=labels,
        next_refit_at=next_refit_at(labels),
        fitted_at=timezone.now(),
    )
    return {"calibrated": fit.calibrated, "temperature": live.temperature, **stats}


def _store_workers(*, campaign_id: int, data: CampaignArrays, fit: CampaignFit) -> None:
    classes = list(data.classes)
    now = timezone.now()
    reason = (
        f"your answers in this campaign match its consensus no better than chance "
        f"(spammer score below {settings.KYODO_QUALITY_SPAM_THRESHOLD}, "
        f"{round(100 * settings.KYODO_QUALITY_SPAM_CERTAINTY)} % sure)"
    )
    for start in range(0, data.worker_ids.size, BATCH):
        codes = range(start, min(start + BATCH, data.worker_ids.size))
        ids = [int(data.worker_ids[c]) for c in codes]
        before = dict(
            WorkerSkill.objects.filter(campaign_id=campaign_id, worker_id__in=ids).values_list(
                "worker_id", "status"
            )
        )
        rows = []
        for c, worker_id in zip(codes, ids, strict=True):
            status, why, suspended_at = _status(
                before.get(worker_id), spammer=bool(fit.likely_spammers[c]), trusted=fit.trusted[c]
            )
            rows.append(
                WorkerSkill(
                    worker_id=worker_id,
                    campaign_id=campaign_id,
                    accuracy=float(fit.worker_quality[c]),
                    confusion={"classes": classes, "matrix": _matrix(fit.confusions[c])},
                    answers=int(fit.answers_per_worker[c]),
                    gold_seen=int(fit.gold_seen[c]),
                    gold_passed=int(fit.gold_passed[c]),
                    spam_score=float(fit.spam_scores[c]),
                    informative=float(fit.informative[c]),
                    status=status,
                    status_reason=reason if why else "",
                    suspended_at=now if suspended_at else None,
                )
            )
        fields = ["accuracy", "confusion", "answers", "gold_seen", "gold_passed", "spam_score"]
        fields += ["informative", "status", "updated_at"]
        newly = [r.worker_id for r in rows if r.suspended_at is not None]
        WorkerSkill.objects.bulk_create(
            rows,
            update_conflicts=True,
            unique_fields=["worker", "campaign_id"],
            update_fields=fields,
        )
        if newly:
            WorkerSkill.objects.filter(campaign_id=campaign_id, worker_id__in=newly).update(
                status_reason=reason, suspended_at=now
            )


def _status(before: str | None, *, spammer: bool, trusted: bool) -> tuple[str, bool, bool]:
    """(status, give the suspension reason, newly suspended). Suspension and trust are sticky:
    staff lift a suspension in the admin; a trusted worker found spamming is still suspended."""
    if before == WorkerStatus.SUSPENDED:
        return WorkerStatus.SUSPENDED, True, False
    if spammer:
        return WorkerStatus.SUSPENDED, True, True
    if trusted or before == WorkerStatus.TRUSTED:
        return WorkerStatus.TRUSTED, False, False
    return WorkerStatus.PROBATION, False, False


def _store_items(
    *, campaign: Campaign, data: CampaignArrays, fit: CampaignFit, new_model: bool
) -> int:
    """Write every labeled item's consensus; close the ones now confident; re-prioritise the rest.

    Items that received a label after the answers were read are left to their own (queued)
    per-item update, which will use the parameters just stored.
    """
    answers = data.answers
    live = live_parameters(fit)
    with_model = live.model is not None and data.model_items.size > 0
    model_items = data.model_items if with_model else None
    model_labels = data.model_labels if with_model else None
    scores, crowd_scores = live_scores(
        answers, fit, model_items=model_items, model_labels=model_labels
    )
    posteriors = scores_to_posteriors(scores, answers)
    crowd = scores_to_posteriors(crowd_scores, answers)
    chosen = decide(posteriors, class_priors=live.class_priors)
    runner_up = runner_up_of(posteriors, chosen)
    weights = answer_weights(
        worker_idx=answers.worker_idx,
        item_idx=answers.item_idx,
        label_idx=answers.label_idx,
        confusions=live.confusions,
        chosen=chosen,
        runner_up=runner_up,
        temperature=live.temperature,
    )
    model_of = np.full(answers.n_items, -1, dtype=np.intp)
    if model_items is not None and model_labels is not None:
        model_of[model_items] = model_labels
    n_labels = np.bincount(answers.item_idx, minlength=answers.n_items)
    gold_of = np.full(answers.n_items, -1, dtype=np.intp)
    gold_of[answers.gold_item_idx] = answers.gold_label_idx
    order = np.argsort(answers.item_idx, kind="stable")
    starts = np.concatenate([[0], np.cumsum(n_labels)])
    context = _ItemContext(
        data=data,
        fit=fit,
        posteriors=posteriors,
        crowd=crowd,
        chosen=chosen,
        runner_up=runner_up,
        weights=weights,
        model_of=model_of,
        n_labels=n_labels,
        gold_of=gold_of,
        order=order,
        starts=starts,
        campaign=campaign,
    )
    labeled = np.flatnonzero(n_labels > 0)
    closed = 0
    for start in range(0, labeled.size, BATCH):
        closed += _store_batch(context, labeled[start : start + BATCH])
    if new_model and model_items is not None:
        _prioritise_unlabeled(context, model_items[n_labels[model_items] == 0])
    return closed


@dataclass(frozen=True)
class _ItemContext:
    data: CampaignArrays
    fit: CampaignFit
    posteriors: FloatArray
    crowd: FloatArray
    chosen: IntArray
    runner_up: IntArray
    weights: FloatArray
    model_of: IntArray
    n_labels: IntArray
    gold_of: IntArray
    order: IntArray
    starts: IntArray
    campaign: Campaign


def _votes(ctx: _ItemContext, code: int) -> dict[str, Any]:
    answers = ctx.data.answers
    classes = ctx.data.classes
    live = live_parameters(ctx.fit)
    rows = ctx.order[ctx.starts[code] : ctx.starts[code + 1]]
    chosen = int(ctx.chosen[code])
    runner_up = int(ctx.runner_up[code])
    model = None
    if ctx.model_of[code] >= 0 and live.model is not None:
        label = int(ctx.model_of[code])
        log_model = np.log(live.model)
        weight = live.temperature * (log_model[chosen, label] - log_model[runner_up, label])
        model = (ctx.data.model_version, classes[label], float(weight))
    priors = live.class_priors
    return votes_payload(
        classes=classes,
        posterior=ctx.posteriors[code],
        chosen=chosen,
        runner_up=runner_up,
        prior_weight=float(np.log(priors[chosen]) - np.log(priors[runner_up])),
        annotators=[
            (
                int(ctx.data.worker_ids[answers.worker_idx[r]]),
                classes[int(answers.label_idx[r])],
                float(ctx.weights[r]),
            )
            for r in rows
        ],
        model=model,
        temperature=live.temperature,
        calibrated=ctx.fit.calibrated,
        gold=bool(ctx.gold_of[code] >= 0),
    )


def _gold_votes(ctx: _ItemContext, code: int) -> dict[str, Any]:
    # No annotator list: every contributor may meet a gold item.
    classes = list(ctx.data.classes)
    posterior = [1.0 if i == ctx.gold_of[code] else 0.0 for i in range(len(classes))]
    return {"classes": classes, "posterior": posterior, "gold": True, "annotators": []}


@transaction.atomic
def _store_batch(ctx: _ItemContext, codes: IntArray) -> int:
    ids = [int(ctx.data.item_ids[c]) for c in codes]
    current = {
        row[0]: row[1:]
        for row in ItemConsensus.objects.select_for_update()
        .filter(item_id__in=ids)
        .values_list("item_id", "n_labels", "is_complete", "priority")
    }
    policy = policy_of(ctx.campaign)
    method = ctx.fit.method if ctx.fit.calibrated else "one_coin_agreement"
    rows, to_close, to_prioritise, stale = [], [], [], []
    for code, item_id in zip(codes.tolist(), ids, strict=True):
        n = int(ctx.n_labels[code])
        seen_labels, was_complete, old_priority = current.get(item_id, (0, False, None))
        if seen_labels > n:
            stale.append(item_id)  # labeled after the read: its own update is queued
            continue
        is_gold = bool(ctx.gold_of[code] >= 0)
        chosen = int(ctx.chosen[code])
        confidence = float(ctx.posteriors[code, chosen])
        is_open = bool(ctx.data.is_open[code]) and not was_complete
        close = is_open and should_close(
            policy=policy, n_labels=n, confidence=confidence, is_gold=is_gold
        )
        priority = old_priority
        if is_open and not close and not is_gold:
            model = int(ctx.model_of[code])
            priority = queue_priority(
                confidence=confidence,
                model_disagrees=model >= 0 and model != int(np.argmax(ctx.crowd[code])),
                labeled=True,
            )
            if priority != old_priority:
                to_prioritise.append((item_id, priority))
        if close:
            to_close.append(item_id)
        rows.append(
            ItemConsensus(
                item_id=item_id,
                campaign_id=ctx.campaign.pk,
                label=ctx.data.classes[chosen],
                confidence=confidence,
                n_labels=n,
                method="gold" if is_gold else method,
                model_version=str(ctx.data.model_version) if ctx.model_of[code] >= 0 else "",
                votes=_gold_votes(ctx, code) if is_gold else _votes(ctx, code),
                is_complete=was_complete or close or not bool(ctx.data.is_open[code]),
                priority=priority,
            )
        )
    ItemConsensus.objects.bulk_create(
        rows,
        update_conflicts=True,
        unique_fields=["item_id"],
        update_fields=[
            "label",
            "confidence",
            "n_labels",
            "method",
            "model_version",
            "votes",
            "is_complete",
            "priority",
            "updated_at",
        ],
    )
    for item_id in to_close:
        labeling_services.item_complete(item_id=item_id)
        enqueue_on_commit("rewards.account_item", item_id)
    for item_id, priority in to_prioritise:
        labeling_services.item_set_priority(item_id=item_id, priority=priority)
    for item_id in stale:
        enqueue_on_commit("quality.update_item", item_id)
    return len(to_close)


def _prioritise_unlabeled(ctx: _ItemContext, codes: IntArray) -> None:
    """Items nobody labeled yet, ordered by how sure a new model is of them (least sure first)."""
    for code in codes.tolist():
        if ctx.data.is_open[code] and ctx.gold_of[code] < 0:
            confidence = float(ctx.posteriors[code].max())
            labeling_services.item_set_priority(
                item_id=int(ctx.data.item_ids[code]),
                priority=queue_priority(
                    confidence=confidence, model_disagrees=False, labeled=False
                ),
            )


def _maybe_request_training(*, campaign: Campaign, fit: CampaignFit, answers: Answers) -> None:
    """Train a new model once enough confident items have accumulated since the last one."""
    if not fit.calibrated:
        return
    labeled = np.bincount(answers.item_idx, minlength=answers.n_items) > 0
    confident = int((fit.posteriors.max(axis=1)[labeled] >= campaign.target_confidence).sum())
    claimed = CampaignQuality.objects.filter(
        campaign_id=campaign.pk, next_train_at__lte=confident
    ).update(next_train_at=confident + 1_000_000)
    if claimed:
        enqueue_on_commit("quality.train_model", campaign.pk)
