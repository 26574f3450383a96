"""The periodic full refit of one campaign: Dawid-Skene over all its answers, workers, items.

One campaign is one unit of work (one Celery task), so campaigns refit in parallel on as many
workers as there are. Memory: the campaign's answers as three integer arrays (streamed from the
database a chunk at a time, never as model instances), per-item arrays, and one batch of rows at a
time while writing. A claim on the campaign's `CampaignQuality` row keeps two copies of the task
from refitting one campaign at once.
"""

from __future__ import annotations

import logging
import math
import time
from datetime import timedelta
from typing import Any

import numpy as np
from django.conf import settings
from django.utils import timezone

from core.tasks import enqueue_on_commit
from labeling import selectors as labeling_selectors
from labeling import services as labeling_services
from labeling.models import Campaign, TaskType
from quality.aggregation._numeric import FloatArray
from quality.aggregation.answers import Answers
from quality.aggregation.campaign import (
    CampaignFit,
    fit_campaign,
    live_parameters,
)

from ..models import (
    CampaignQuality,
    WorkerSkill,
    WorkerStatus,
)
from .boxes import campaign_refit_boxes
from .campaign_data import CampaignArrays, load_campaign
from .params import (
    campaign_claim,
    campaign_idle,
    campaign_pause,
    fit_options,
    next_refit_at,
    pause_over,
)
from .refit_items import store_items
from .workers import next_status

log = logging.getLogger(__name__)

CLAIM = timedelta(minutes=30)  # longer than any refit; a crashed one frees the campaign after it
BATCH = 1000


def campaigns_refit_due() -> list[int]:
    """Campaigns whose pause (params.work_pause) is over and that have either
    KYODO_QUALITY_REFIT_MIN_NEW_LABELS new labels since their last refit or reached their next
    refit mark (a new model sets it to 0): what the beat refits, as a net under the per-label
    requests."""
    quality = CampaignQuality.objects
    marks = {
        c: (fit, mark)
        for c, fit, mark in quality.values_list("campaign_id", "labels_at_fit", "next_refit_at")
    }
    idle = quality.filter(campaign_idle(timezone.now()))
    paused = set(quality.exclude(pk__in=idle.values("pk")).values_list("campaign_id", flat=True))
    due = []
    for campaign_id, labels in labeling_selectors.campaigns_with_labels():
        fitted, mark = marks.get(campaign_id, (0, labels + 1))
        grown = labels - fitted >= settings.KYODO_QUALITY_REFIT_MIN_NEW_LABELS
        if campaign_id not in paused and (grown or labels >= mark):
            due.append(campaign_id)
    return due


def claim_refit(*, campaign_id: int) -> bool:
    return campaign_claim(campaign_id=campaign_id, field="refit_claimed_until", hold=CLAIM)


def campaign_refit(*, campaign_id: int) -> dict[str, Any] | None:
    """Refit one campaign if no other refit holds it; returns a summary, or None if skipped."""
    campaign = labeling_selectors.campaign_get(campaign_id=campaign_id)
    if not claim_refit(campaign_id=campaign_id):
        return None
    cpu = time.process_time()
    try:
        if campaign.task_type == TaskType.IMAGE_BBOX:
            return campaign_refit_boxes(campaign=campaign)
        return _refit_classes(campaign=campaign)
    finally:
        CampaignQuality.objects.filter(campaign_id=campaign_id).update(refit_claimed_until=None)
        campaign_pause(campaign_id=campaign_id, cpu_seconds=time.process_time() - cpu)


def _refit_classes(*, campaign: Campaign) -> dict[str, Any] | None:
    started = time.monotonic()
    labels_now = labeling_selectors.campaign_label_count(campaign_id=campaign.pk)
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
    closed = store_items(
        campaign=campaign, data=data, fit=fit, new_model=data.model_version != previous_version
    )
    summary.update(closed=closed, seconds=round(time.monotonic() - started, 3))
    log.info("quality refit of campaign %s: %s", campaign.pk, summary)
    _maybe_request_training(campaign=campaign, fit=fit, answers=data.answers, labels=labels_now)
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
        typical_confusion=None if live.typical is None else _matrix(live.typical),
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
            status, why, suspended_at = next_status(
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
        suspended = [r.worker_id for r in rows if r.status == WorkerStatus.SUSPENDED]
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
        # Next-task reads labeling's own block list (it cannot import quality); idempotent.
        for worker_id in suspended:
            labeling_services.worker_block(
                campaign_id=campaign_id, worker_id=worker_id, reason=reason
            )


def _maybe_request_training(
    *, campaign: Campaign, fit: CampaignFit, answers: Answers, labels: int
) -> None:
    """Train a new model once the evidence has grown: see `training_due`."""
    if not fit.calibrated:
        return
    labeled = np.bincount(answers.item_idx, minlength=answers.n_items) > 0
    confident = int((fit.posteriors.max(axis=1)[labeled] >= campaign.target_confidence).sum())
    if training_due(campaign_id=campaign.pk, confident=confident, labels=labels):
        enqueue_on_commit("quality.train_model", campaign.pk)


def training_due(*, campaign_id: int, confident: int, labels: int) -> bool:
    """Claim the campaign's next training, if due: the confident items have reached the bar the
    last training set (half as many again as then) and labels have come in since it. The claim
    sets the next bar in the same UPDATE, so two refits never both queue one.

    Nor while the campaign's pause runs (params.work_pause): trainings share the refits' bound
    on CPU. Only new labels can make a training due. A training asks for a refit (its model is
    one more annotator), and that refit, seeing no new labels, queues no training: the two never
    feed each other (they once did, for 20 minutes after the last label: the bar was set from the
    training set, which is capped, so it stayed below the confident count forever).
    """
    bar = max(settings.KYODO_QUALITY_TRAIN_MIN_ITEMS, math.ceil(1.5 * confident))
    claimed = (
        CampaignQuality.objects.filter(
            campaign_id=campaign_id, next_train_at__lte=confident, labels_at_train__lt=labels
        )
        .filter(pause_over(timezone.now()))
        .update(next_train_at=bar, labels_at_train=labels)
    )
    return bool(claimed)
