"""A campaign's live parameters (what each submission is scored with) and the quality settings."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from quality.aggregation._numeric import FloatArray
from quality.aggregation.policy import one_coin_matrix

from ..models import CampaignQuality, WorkerSkill, WorkerStatus


def fit_options() -> dict[str, Any]:
    """`fit_campaign` keyword arguments from the KYODO_QUALITY_* settings."""
    return {
        "spam_threshold": settings.KYODO_QUALITY_SPAM_THRESHOLD,
        "spam_certainty": settings.KYODO_QUALITY_SPAM_CERTAINTY,
        "trust_certainty": settings.KYODO_QUALITY_TRUST_CERTAINTY,
        "model_cap_percentile": settings.KYODO_QUALITY_MODEL_CAP_PERCENTILE,
        "prior_accuracy": settings.KYODO_QUALITY_PRIOR_ACCURACY,
        "calibration": settings.KYODO_QUALITY_CALIBRATION_ITEMS,
    }


@dataclass(frozen=True)
class CampaignParams:
    classes: tuple[str, ...]
    class_priors: FloatArray
    default: FloatArray  # a worker the last refit has not seen (every worker before calibration)
    temperature: float
    calibrated: bool
    method: str
    model_version: int | None
    model_confusion: FloatArray | None
    typical: FloatArray | None = None  # policy.label_value's contributor; None: not valued


def cold_start(classes: tuple[str, ...]) -> CampaignParams:
    """Before any refit: every worker right with KYODO_QUALITY_PRIOR_ACCURACY, classes equal."""
    k = len(classes)
    return CampaignParams(
        classes=classes,
        class_priors=np.full(k, 1.0 / k),
        default=one_coin_matrix(settings.KYODO_QUALITY_PRIOR_ACCURACY, k),
        temperature=1.0,
        calibrated=False,
        method="cold_start",
        model_version=None,
        model_confusion=None,
    )


def campaign_params(*, campaign_id: int, classes: list[str]) -> CampaignParams:
    row = CampaignQuality.objects.filter(campaign_id=campaign_id).first()
    names = tuple(classes)
    if row is None or tuple(row.classes) != names or not row.class_priors:
        return cold_start(names)
    return CampaignParams(
        classes=names,
        class_priors=np.asarray(row.class_priors, dtype=np.float64),
        default=np.asarray(row.default_confusion, dtype=np.float64),
        temperature=row.temperature,
        calibrated=row.calibrated,
        method=row.method,
        model_version=row.model_version,
        model_confusion=(
            np.asarray(row.model_confusion, dtype=np.float64)
            if row.calibrated and row.model_confusion
            else None
        ),
        typical=(
            np.asarray(row.typical_confusion, dtype=np.float64)
            if row.calibrated and row.typical_confusion
            else None
        ),
    )


@dataclass(frozen=True)
class WorkerParams:
    matrix: FloatArray
    status: str


def worker_params(
    *, campaign_id: int, worker_ids: list[int], params: CampaignParams
) -> dict[int, WorkerParams]:
    """Each worker's confusion matrix from the last calibrated refit, else the default."""
    k = len(params.classes)
    rows = WorkerSkill.objects.filter(campaign_id=campaign_id, worker_id__in=worker_ids)
    found = {
        worker_id: (confusion, status)
        for worker_id, confusion, status in rows.values_list("worker_id", "confusion", "status")
    }
    out: dict[int, WorkerParams] = {}
    for worker_id in worker_ids:
        confusion, status = found.get(worker_id, ({}, WorkerStatus.PROBATION))
        matrix = params.default
        if params.calibrated and isinstance(confusion, dict) and confusion.get("matrix"):
            candidate = np.asarray(confusion["matrix"], dtype=np.float64)
            if candidate.shape == (k, k) and tuple(confusion.get("classes", ())) == params.classes:
                matrix = candidate
        out[worker_id] = WorkerParams(matrix=matrix, status=status)
    return out


def ensure_campaign_quality(*, campaign_id: int) -> None:
    """The campaign's row, created at the first submission with the first refit scheduled."""
    if CampaignQuality.objects.filter(campaign_id=campaign_id).exists():
        return  # the common case: one index lookup, no insert attempt (and no sequence value)
    CampaignQuality.objects.bulk_create(
        [
            CampaignQuality(
                campaign_id=campaign_id,
                next_refit_at=settings.KYODO_QUALITY_REFIT_MIN_NEW_LABELS,
                next_train_at=settings.KYODO_QUALITY_TRAIN_MIN_ITEMS,
            )
        ],
        ignore_conflicts=True,
    )


def next_refit_at(labels: int) -> int:
    """After a refit at `labels` labels, the label count that asks for the next one."""
    grow = int(settings.KYODO_QUALITY_REFIT_GROWTH * labels)
    return labels + max(settings.KYODO_QUALITY_REFIT_MIN_NEW_LABELS, grow)


def work_pause(cpu_seconds: float) -> timedelta:
    """How long after a refit or training that took `cpu_seconds` of CPU the next of either may
    be asked for: whole-campaign work then takes at most KYODO_QUALITY_REFIT_CPU_SHARE of one
    process, however large the campaign (its cost grows with it; its frequency falls in step)."""
    share = min(max(settings.KYODO_QUALITY_REFIT_CPU_SHARE, 0.01), 1.0)
    return timedelta(seconds=cpu_seconds * (1.0 / share - 1.0))


def pause_over(now: datetime) -> Q:
    """The campaigns (CampaignQuality rows) whose pause is over: what a training claim asks (from
    inside the refit that requests it); a refit request asks `campaign_idle`."""
    return Q(pause_until__isnull=True) | Q(pause_until__lte=now)


def campaign_idle(now: datetime) -> Q:
    """The campaigns whose pause is over and that run no refit or training now: those a refit
    may be asked for (a request made while one runs would queue behind it and start the moment
    it ends, outside the pause that run is about to set)."""
    running = Q(refit_claimed_until__gte=now) | Q(train_claimed_until__gte=now)
    return pause_over(now) & ~running


def campaign_pause(*, campaign_id: int, cpu_seconds: float) -> None:
    """Start the campaign's pause after a refit or training of `cpu_seconds` (work_pause)."""
    CampaignQuality.objects.filter(campaign_id=campaign_id).update(
        pause_until=timezone.now() + work_pause(cpu_seconds)
    )


def campaign_claim(*, campaign_id: int, field: str, hold: timedelta) -> bool:
    """Take one of the campaign's run claims (`refit_claimed_until`, `train_claimed_until`) for
    `hold`, unless another run holds it unexpired; True when taken. One UPDATE, so two copies of
    a task never both take it; a crashed run frees the campaign when its claim expires."""
    ensure_campaign_quality(campaign_id=campaign_id)
    now = timezone.now()
    free = Q(**{f"{field}__isnull": True}) | Q(**{f"{field}__lt": now})
    return bool(
        CampaignQuality.objects.filter(campaign_id=campaign_id)
        .filter(free)
        .update(**{field: now + hold})
    )
