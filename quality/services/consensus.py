"""The per-submission update of one item: posterior, close or re-prioritise, hand over to rewards.

Between two full refits (`quality.services.refit`) an item's posterior is one E-step over its own
labels with the campaign's stored parameters (`params.campaign_params`): each labeler's confusion
matrix from the last calibrated refit (the campaign's default worker for anyone the refit has not
seen, and for everyone before the campaign is calibrated), the class priors, the temperature, and
the ML model's capped matrix when its prediction for the item is current. See docs/quality.md.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from django.conf import settings
from django.db import transaction
from django.utils import timezone

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
from .closing import items_close_and_queue_reward, items_queue_reward
from .params import (
    CampaignParams,
    WorkerParams,
    campaign_idle,
    campaign_params,
    ensure_campaign_quality,
    worker_params,
)

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
    workers: dict[int, WorkerParams] | None = None,
) -> Decision | None:
    """The decision on a classification item from its (worker id, label) pairs. `workers`: the
    labelers' parameters when the caller read them already (a batch reads them all at once)."""
    code = {name: i for i, name in enumerate(params.classes)}
    known = [(worker_id, code[label]) for worker_id, label in labels if label in code]
    if not known:
        return None
    if workers is None or any(w not in workers for w, _ in known):
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


def item_consensus_update(*, item_id: int) -> ItemConsensus | None:
    """`items_consensus_update` of one item: its consensus row (None for an unknown item)."""
    return items_consensus_update(item_ids=[item_id]).get(item_id)


def items_consensus_update(
    *, item_ids: Iterable[int], request_refit: bool = True
) -> dict[int, ItemConsensus]:
    """Recompute the items' consensus from all their labels; close those the policy says to.

    One transaction per campaign of the batch, with a fixed number of queries for any number of
    items: the consensus rows locked (in item id order), then the items, their labels, the
    campaign's parameters, the labelers' skills and the model's predictions read at once; one
    upsert of the rows, one close of the items to close, one priority update, one reward message.

    Idempotent and safe to run concurrently for the same items: the consensus rows are locked
    before the labels are read, so the last run always sees every committed label. Unknown ids
    are skipped (an item deleted since its label). `request_refit`: False for a refit's own
    re-decisions, which must not ask for another refit.
    """
    # Only the grouping here; each campaign's transaction reads its items after its locks.
    by_campaign = labeling_selectors.items_by_campaign(item_ids=item_ids)
    out: dict[int, ItemConsensus] = {}
    for campaign_id in sorted(by_campaign):
        out.update(
            _campaign_update(
                campaign_id=campaign_id,
                item_ids=by_campaign[campaign_id],
                request_refit=request_refit,
            )
        )
    return out


@transaction.atomic
def _campaign_update(
    *, campaign_id: int, item_ids: list[int], request_refit: bool
) -> dict[int, ItemConsensus]:
    campaign = labeling_selectors.campaign_get(campaign_id=campaign_id)
    ensure_campaign_quality(campaign_id=campaign_id)
    rows = consensus_locked(campaign_id=campaign_id, item_ids=item_ids)
    # Read after the locks: every label committed before them is in.
    items = labeling_selectors.items_states(item_ids=item_ids)
    classes = campaign.class_names
    gold = [pk for pk, item in items.items() if item.gold_label and item.gold_label in classes]
    decisions: dict[int, Decision | None] = {
        pk: gold_decision(item=items[pk], classes=classes) for pk in gold
    }
    rest = [pk for pk in sorted(items) if pk not in decisions]
    if campaign.task_type == TaskType.IMAGE_BBOX:
        for pk in rest:
            decisions[pk] = box_decision(item=items[pk], classes=classes)
    elif rest:
        decisions.update(
            _class_decisions(
                campaign_id=campaign_id, classes=classes, items=[items[pk] for pk in rest]
            )
        )
    policy = policy_of(campaign)
    changed: list[ItemConsensus] = []
    to_close: list[int] = []
    priorities: dict[int, int] = {}
    for pk, decision in decisions.items():
        if decision is None:
            continue
        consensus = rows[pk]
        close, priority = consensus_apply(consensus=consensus, decision=decision, policy=policy)
        changed.append(consensus)
        if close:
            to_close.append(pk)
        elif priority is not None:
            priorities[pk] = priority
    if changed:
        consensus_upsert(changed)
    labeling_services.items_set_priority(priorities=priorities)
    if changed and request_refit:
        labels = labeling_selectors.campaign_label_count(campaign_id=campaign_id)
        _maybe_request_refit(campaign_id=campaign_id, labels=labels)
    # Last, so that the campaign row the close counts on (which a budgeted campaign's next-task
    # also updates) is held for the fewest statements before the commit. Also after a late label
    # on a closed item: accounting is idempotent per annotation. Gold items never close; their
    # labels are judged against the known answer at once.
    items_close_and_queue_reward(item_ids=to_close)
    items_queue_reward(item_ids=gold)
    return rows


def _class_decisions(
    *, campaign_id: int, classes: list[str], items: list[Item]
) -> dict[int, Decision | None]:
    """Classification decisions of a campaign's items, with everything they read read once."""
    ids = [item.pk for item in items]
    params = campaign_params(campaign_id=campaign_id, classes=classes)
    labels = labeling_selectors.items_labels(item_ids=ids)
    predictions = {
        item_id: (version, label)
        for item_id, version, label in ItemPrediction.objects.filter(item_id__in=ids).values_list(
            "item_id", "version", "label"
        )
    }
    workers = worker_params(
        campaign_id=campaign_id,
        worker_ids=sorted({w for rows in labels.values() for w, _ in rows}),
        params=params,
    )
    return {
        item.pk: class_decision(
            item=item,
            labels=labels.get(item.pk, []),
            params=params,
            prediction=predictions.get(item.pk),
            workers=workers,
        )
        for item in items
    }


def consensus_locked(*, campaign_id: int, item_ids: list[int]) -> dict[int, ItemConsensus]:
    """The items' consensus rows (created empty if missing), locked for this transaction in item
    id order (two batches sharing items wait for each other, never deadlock)."""
    ItemConsensus.objects.bulk_create(
        [
            ItemConsensus(
                item_id=item_id,
                campaign_id=campaign_id,
                label="",
                confidence=0.0,
                n_labels=0,
                method="",
            )
            for item_id in sorted(item_ids)
        ],
        ignore_conflicts=True,
    )
    locked = (
        ItemConsensus.objects.select_for_update().filter(item_id__in=item_ids).order_by("item_id")
    )
    return {row.item_id: row for row in locked}


def consensus_apply(
    *, consensus: ItemConsensus, decision: Decision, policy: Policy
) -> tuple[bool, int | None]:
    """Put a decision on a locked consensus row (not saved): (close the item now, the queue
    priority to set, or None when unchanged)."""
    complete = consensus.is_complete or should_close(
        policy=policy,
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
    if complete or decision.is_gold:
        return complete, None
    priority = queue_priority(
        confidence=decision.confidence,
        model_disagrees=decision.model_disagrees,
        labeled=decision.n_labels > 0,
    )
    if priority == consensus.priority:
        return False, None
    consensus.priority = priority
    return False, priority


def consensus_upsert(rows: list[ItemConsensus]) -> None:
    """Write consensus rows in one INSERT ... ON CONFLICT (item_id) DO UPDATE."""
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


def _maybe_request_refit(*, campaign_id: int, labels: int) -> None:
    """Ask for a full refit once the campaign has grown enough since the last one.

    The conditional UPDATE claims the request, so of many submissions crossing the mark at once
    only one enqueues the refit; the refit then sets the real next mark. While the campaign's
    pause runs (params.work_pause) nothing is claimed: the first batch after it asks, or the
    beat does.
    """
    claimed = (
        CampaignQuality.objects.filter(campaign_id=campaign_id, next_refit_at__lte=labels)
        .filter(campaign_idle(timezone.now()))
        .update(next_refit_at=labels + 1_000_000)
    )
    if claimed:
        enqueue_on_commit("quality.refit_campaign", campaign_id)
