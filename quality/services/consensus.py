"""The per-submission update of one item: posterior, close or re-prioritise, hand over to rewards.

Between two full refits (`quality.services.refit`) an item's posterior is one E-step over its own
labels with the campaign's stored parameters (`params.campaign_params`): each labeler's confusion
matrix from the last calibrated refit (the campaign's default worker for anyone the refit has not
seen, and for everyone before the campaign is calibrated), the class priors, the temperature, and
the ML model's capped matrix when its prediction for the item is current. See docs/quality.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from django.conf import settings
from django.db import transaction

from core.tasks import enqueue_on_commit
from labeling import selectors as labeling_selectors
from labeling import services as labeling_services
from labeling.models import Campaign, Item, TaskType
from quality.aggregation._numeric import FloatArray
from quality.aggregation.boxes import Box, fuse_boxes
from quality.aggregation.policy import (
    MIN_GAIN,
    Policy,
    explain,
    label_value,
    queue_priority,
    should_close,
    tempered_posterior,
)

from ..models import CampaignQuality, ItemConsensus, ItemPrediction, WorkerSkill
from .closing import item_close_and_queue_reward, item_queue_reward
from .params import CampaignParams, campaign_params, ensure_campaign_quality, worker_params

GOLD = "gold"
BOXES = "weighted_box_fusion"


@dataclass
class Decision:
    label: str
    confidence: float
    method: str
    votes: dict[str, Any]
    n_labels: int
    model_version: str = ""
    model_disagrees: bool = False
    is_gold: bool = False
    # What one more label is worth (policy.label_value); infinite until the campaign is
    # calibrated, so that only its trusted parameters can stop an item short of its target.
    value: float = float("inf")
    extra: dict[str, Any] = field(default_factory=dict)


def policy_of(campaign: Campaign) -> Policy:
    return Policy(
        min_labels=campaign.min_labels,
        max_labels=campaign.max_labels,
        target_confidence=campaign.target_confidence,
        min_gain=min_gain(),
    )


def min_gain() -> float:
    """KYODO_QUALITY_MIN_GAIN (unset: policy.MIN_GAIN): the least a label must be worth."""
    value = settings.KYODO_QUALITY_MIN_GAIN
    return MIN_GAIN if value is None else float(value)


def _r(value: float) -> float:
    return round(float(value), 6)


def class_decision(
    *,
    item: Item,
    labels: list[tuple[int, str]],
    params: CampaignParams,
    prediction: tuple[int, str] | None,
) -> Decision | None:
    """The decision on a classification item from its (worker id, label) pairs."""
    code = {name: i for i, name in enumerate(params.classes)}
    known = [(worker_id, code[label]) for worker_id, label in labels if label in code]
    if not known:
        return None
    workers = worker_params(
        campaign_id=item.campaign_id, worker_ids=[w for w, _ in known], params=params
    )
    codes = [label for _, label in known]
    matrices = [workers[w].matrix for w, _ in known]
    crowd = tempered_posterior(
        labels=codes,
        matrices=matrices,
        class_priors=params.class_priors,
        temperature=params.temperature,
    )
    model_code = None
    if prediction is not None and params.model_confusion is not None:
        version, model_label = prediction
        if version == params.model_version and model_label in code:
            model_code = code[model_label]
    all_codes = codes + ([model_code] if model_code is not None else [])
    all_matrices = matrices + ([params.model_confusion] if model_code is not None else [])
    posterior = (
        crowd
        if model_code is None
        else tempered_posterior(
            labels=all_codes,
            matrices=all_matrices,  # type: ignore[arg-type]
            class_priors=params.class_priors,
            temperature=params.temperature,
        )
    )
    is_gold = item.gold_label in code
    if is_gold:
        posterior = np.zeros(len(params.classes))
        posterior[code[item.gold_label]] = 1.0
    why = explain(
        labels=all_codes,
        matrices=all_matrices,  # type: ignore[arg-type]
        posterior=np.clip(posterior, 1e-300, None),
        class_priors=params.class_priors,
        temperature=params.temperature,
    )
    chosen = code[item.gold_label] if is_gold else why.chosen
    votes = votes_payload(
        classes=params.classes,
        posterior=posterior,
        chosen=chosen,
        runner_up=why.runner_up,
        prior_weight=why.prior_weight,
        annotators=[
            (w, params.classes[c], weight)
            for (w, c), weight in zip(known, why.weights[: len(known)], strict=True)
        ],
        model=(
            (params.model_version, params.classes[model_code], why.weights[-1])
            if model_code is not None
            else None
        ),
        temperature=params.temperature,
        calibrated=params.calibrated,
        gold=is_gold,
    )
    return Decision(
        label=params.classes[chosen],
        confidence=float(posterior[chosen]),
        method=GOLD if is_gold else params.method,
        votes=votes,
        n_labels=len(labels),
        model_version=str(params.model_version) if model_code is not None else "",
        model_disagrees=model_code is not None and model_code != int(np.argmax(crowd)),
        is_gold=is_gold,
        value=(
            float(label_value(posterior, matrix=params.typical, temperature=params.temperature)[0])
            if params.calibrated and params.typical is not None and not is_gold
            else float("inf")
        ),
    )


def votes_payload(
    *,
    classes: tuple[str, ...],
    posterior: FloatArray,
    chosen: int,
    runner_up: int,
    prior_weight: float,
    annotators: list[tuple[int, str, float]],
    model: tuple[int | None, str, float] | None,
    temperature: float,
    calibrated: bool,
    gold: bool,
) -> dict[str, Any]:
    """What `ItemConsensus.votes` holds for a classification item (read by the explanation API).

    Weights: log(p[label] / p[runner_up]) = prior_weight + sum of the annotators' and the model's
    weights (`quality.aggregation.policy.Explanation`).
    """
    return {
        "classes": list(classes),
        "posterior": [_r(p) for p in posterior],
        "runner_up": classes[runner_up] if runner_up != chosen else None,
        "prior_weight": _r(prior_weight),
        "annotators": [
            {"worker_id": worker_id, "label": label, "weight": _r(weight)}
            for worker_id, label, weight in annotators
        ],
        "model": (
            None
            if model is None
            else {"version": model[0], "label": model[1], "weight": _r(model[2])}
        ),
        "temperature": _r(temperature),
        "calibrated": calibrated,
        "gold": gold,
    }


def box_decision(*, item: Item, classes: list[str]) -> Decision | None:
    """The decision on a bounding-box item: fused boxes weighted by the workers' box skill."""
    rows = [(a.worker_id, a.value) for a in labeling_selectors.item_annotations(item_id=item.pk)]
    if not rows:
        return None
    code = {name: i for i, name in enumerate(classes)}
    skills = dict(
        WorkerSkill.objects.filter(
            campaign_id=item.campaign_id, worker_id__in=[w for w, _ in rows]
        ).values_list("worker_id", "accuracy")
    )
    contributions = [boxes_of(value, code=code) for _, value in rows]
    weights = [skills.get(w) or 1.0 for w, _ in rows]
    result = fuse_boxes(contributions, weights=weights)
    votes = {
        "boxes": [
            {
                "x": _r(b.x),
                "y": _r(b.y),
                "w": _r(b.w),
                "h": _r(b.h),
                "label": classes[b.label],
                "support": _r(b.support),
                "kept": b.kept,
            }
            for b in result.boxes
        ],
        "annotators": [
            {"worker_id": w, "weight": _r(weight), "f1": _r(f1), "boxes_accepted": accepted}
            for (w, _), weight, f1, accepted in zip(
                rows, weights, result.f1, result.accepted, strict=True
            )
        ],
    }
    return Decision(
        label=f"{len(result.consensus)} boxes",
        confidence=result.confidence,
        method=BOXES,
        votes=votes,
        n_labels=len(rows),
    )


def boxes_of(value: object, *, code: dict[str, int]) -> list[Box]:
    boxes = value.get("boxes", []) if isinstance(value, dict) else []
    return [
        Box(b["x"], b["y"], b["w"], b["h"], code[b["label"]]) for b in boxes if b["label"] in code
    ]


def gold_decision(*, item: Item, classes: list[str]) -> Decision:
    """A gold item's decision is its known label. It reads none of the item's labels: every
    contributor may meet a gold item, so it can have more labels than any other item."""
    posterior = [1.0 if name == item.gold_label else 0.0 for name in classes]
    return Decision(
        label=item.gold_label,
        confidence=1.0,
        method=GOLD,
        votes={"classes": classes, "posterior": posterior, "gold": True, "annotators": []},
        n_labels=item.label_count,
        is_gold=True,
    )


@transaction.atomic
def item_consensus_update(*, item_id: int) -> ItemConsensus | None:
    """Recompute one item's consensus from all its labels; close it when the policy says so.

    Idempotent and safe to run concurrently for the same item: the consensus row is locked, so the
    last run always sees every committed label.
    """
    item = labeling_selectors.item_get(item_id=item_id)
    campaign = item.campaign
    ensure_campaign_quality(campaign_id=campaign.pk)
    consensus = consensus_locked(item)
    if item.gold_label and item.gold_label in campaign.class_names:
        decision: Decision | None = gold_decision(item=item, classes=campaign.class_names)
        # Its labels are judged against the known answer at once: it never closes.
        item_queue_reward(item_id=item.pk)
    elif campaign.task_type == TaskType.IMAGE_BBOX:
        decision = box_decision(item=item, classes=campaign.class_names)
    else:
        params = campaign_params(campaign_id=campaign.pk, classes=campaign.class_names)
        prediction = (
            ItemPrediction.objects.filter(item_id=item_id).values_list("version", "label").first()
        )
        decision = class_decision(
            item=item,
            labels=labeling_selectors.item_labels(item_id=item_id),
            params=params,
            prediction=prediction,
        )
    if decision is None:
        return consensus
    consensus_apply(consensus=consensus, decision=decision, item=item, campaign=campaign)
    labels = labeling_selectors.campaign_label_count(campaign_id=campaign.pk)
    _maybe_request_refit(campaign_id=campaign.pk, labels=labels)
    return consensus


def consensus_locked(item: Item) -> ItemConsensus:
    """The item's consensus row (created empty if missing), locked for this transaction."""
    ItemConsensus.objects.bulk_create(
        [
            ItemConsensus(
                item_id=item.pk,
                campaign_id=item.campaign_id,
                label="",
                confidence=0.0,
                n_labels=0,
                method="",
            )
        ],
        ignore_conflicts=True,
    )
    return ItemConsensus.objects.select_for_update().get(item_id=item.pk)


def consensus_apply(
    *, consensus: ItemConsensus, decision: Decision, item: Item, campaign: Campaign
) -> None:
    """Store a decision on a locked consensus row; close the item or set its queue priority."""
    complete = consensus.is_complete or should_close(
        policy=policy_of(campaign),
        n_labels=decision.n_labels,
        confidence=decision.confidence,
        is_gold=decision.is_gold,
        value=decision.value,
    )
    consensus.label = decision.label
    consensus.confidence = decision.confidence
    consensus.n_labels = decision.n_labels
    consensus.method = decision.method
    consensus.model_version = decision.model_version
    consensus.votes = decision.votes
    consensus.is_complete = complete
    priority = None
    if not complete and not decision.is_gold:
        priority = queue_priority(
            confidence=decision.confidence,
            model_disagrees=decision.model_disagrees,
            labeled=decision.n_labels > 0,
        )
    changed_priority = priority is not None and priority != consensus.priority
    if changed_priority:
        consensus.priority = priority
    consensus.save()
    if complete:
        # Also after a late label on a closed item: accounting is idempotent per annotation.
        item_close_and_queue_reward(item_id=item.pk)
    elif changed_priority and priority is not None:
        labeling_services.item_set_priority(item_id=item.pk, priority=priority)


def _maybe_request_refit(*, campaign_id: int, labels: int) -> None:
    """Ask for a full refit once the campaign has grown enough since the last one.

    The conditional UPDATE claims the request, so of many submissions crossing the mark at once
    only one enqueues the refit; the refit then sets the real next mark.
    """
    claimed = CampaignQuality.objects.filter(
        campaign_id=campaign_id, next_refit_at__lte=labels
    ).update(next_refit_at=labels + 1_000_000)
    if claimed:
        enqueue_on_commit("quality.refit_campaign", campaign_id)
