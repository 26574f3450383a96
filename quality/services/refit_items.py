"""The item side of a full refit: every labeled item's consensus, closes and queue priorities.

Written in batches of `BATCH` items, each in its own transaction with the batch's consensus rows
locked; an item labeled after the answers were read is left to its own per-item update.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from django.db import transaction

from core.tasks import enqueue_on_commit
from labeling import services as labeling_services
from labeling.models import Campaign
from quality.aggregation._numeric import FloatArray, IntArray, decide
from quality.aggregation.campaign import (
    CampaignFit,
    LiveParameters,
    live_parameters,
    live_scores,
    scores_to_posteriors,
)
from quality.aggregation.policy import (
    answer_weights,
    label_value,
    queue_priority,
    runner_up_of,
    should_close,
)

from ..models import ItemConsensus
from .campaign_data import CampaignArrays
from .closing import items_close_and_queue_reward
from .consensus import consensus_upsert, policy_of, votes_payload

BATCH = 1000
VALUE_CHUNK = 4096  # items per label_value call: (chunk, K^lookahead, K) floats at most
# Confidence moves smaller than this do not rewrite a consensus row (queue priorities are in
# thousandths, so this is also the finest step next-task can see).
CONFIDENCE_TOLERANCE = 1e-3


def store_items(
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
    gold_of = answers.gold_of()
    order = np.argsort(answers.item_idx, kind="stable")
    starts = np.concatenate([[0], np.cumsum(n_labels)])
    labeled = np.flatnonzero(n_labels > 0)
    value = np.full(answers.n_items, np.inf)
    if fit.calibrated and live.typical is not None:
        # Only a calibrated campaign's parameters may stop an item short of its target.
        for start in range(0, labeled.size, VALUE_CHUNK):
            codes = labeled[start : start + VALUE_CHUNK]
            value[codes] = label_value(
                posteriors[codes], matrix=live.typical, temperature=live.temperature
            )
    context = _ItemContext(
        data=data,
        fit=fit,
        live=live,
        log_model=np.log(live.model) if live.model is not None else None,
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
        value=value,
    )
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
    live: LiveParameters  # live_parameters(fit), once per refit: it copies W x K x K arrays
    log_model: FloatArray | None  # log of live.model, when the model takes part
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
    value: FloatArray  # policy.label_value per item (inf: not judged)


def _votes(ctx: _ItemContext, code: int) -> dict[str, Any]:
    answers = ctx.data.answers
    classes = ctx.data.classes
    live = ctx.live
    rows = ctx.order[ctx.starts[code] : ctx.starts[code + 1]]
    chosen = int(ctx.chosen[code])
    runner_up = int(ctx.runner_up[code])
    model = None
    log_model = ctx.log_model
    if ctx.model_of[code] >= 0 and log_model is not None:
        label = int(ctx.model_of[code])
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
    # Every row exists before it is locked: an item's first live update may be creating its row
    # right now, and an upsert of a row this batch had not locked would overwrite that update
    # (closing the item) with this fit's older view. Same first step as the live update's.
    ItemConsensus.objects.bulk_create(
        [
            ItemConsensus(
                item_id=item_id,
                campaign_id=ctx.campaign.pk,
                label="",
                confidence=0.0,
                n_labels=0,
                method="",
            )
            for item_id in ids
        ],
        ignore_conflicts=True,
    )
    current = {
        row[0]: row[1:]
        for row in ItemConsensus.objects.select_for_update()
        .filter(item_id__in=ids)
        .values_list(
            "item_id",
            "n_labels",
            "is_complete",
            "priority",
            "label",
            "confidence",
            "method",
            "model_version",
        )
    }
    policy = policy_of(ctx.campaign)
    method = ctx.fit.method if ctx.fit.calibrated else "one_coin_agreement"
    rows, to_close, stale = [], [], []
    to_prioritise: dict[int, int] = {}
    for code, item_id in zip(codes.tolist(), ids, strict=True):
        n = int(ctx.n_labels[code])
        old = current.get(item_id)
        seen_labels, was_complete, old_priority = old[:3] if old else (0, False, None)
        if seen_labels > n:
            stale.append(item_id)  # labeled after the read: its own update is queued
            continue
        is_gold = bool(ctx.gold_of[code] >= 0)
        chosen = int(ctx.chosen[code])
        confidence = float(ctx.posteriors[code, chosen])
        is_open = bool(ctx.data.is_open[code]) and not was_complete
        close = is_open and should_close(
            policy=policy,
            n_labels=n,
            confidence=confidence,
            is_gold=is_gold,
            value=float(ctx.value[code]),
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
                to_prioritise[item_id] = priority
        if close:
            to_close.append(item_id)
        row = ItemConsensus(
            item_id=item_id,
            campaign_id=ctx.campaign.pk,
            label=ctx.data.classes[chosen],
            confidence=confidence,
            n_labels=n,
            method="gold" if is_gold else method,
            model_version=str(ctx.data.model_version) if ctx.model_of[code] >= 0 else "",
            is_complete=was_complete or close or not bool(ctx.data.is_open[code]),
            priority=priority,
        )
        if old is None or _changed(row, old):
            row.votes = _gold_votes(ctx, code) if is_gold else _votes(ctx, code)
            rows.append(row)
    if rows:
        consensus_upsert(rows)
    items_close_and_queue_reward(item_ids=to_close)
    labeling_services.items_set_priority(priorities=to_prioritise)
    if stale:
        enqueue_on_commit("quality.update_items", stale)
    return len(to_close)


def _prioritise_unlabeled(ctx: _ItemContext, codes: IntArray) -> None:
    """Items nobody labeled yet, ordered by how sure a new model is of them (least sure first)."""
    priorities = {
        int(ctx.data.item_ids[code]): queue_priority(
            confidence=float(ctx.posteriors[code].max()), model_disagrees=False, labeled=False
        )
        for code in codes.tolist()
        if ctx.data.is_open[code] and ctx.gold_of[code] < 0
    }
    for start in range(0, len(priorities), BATCH):
        chunk = dict(list(priorities.items())[start : start + BATCH])
        labeling_services.items_set_priority(priorities=chunk)


def _changed(row: ItemConsensus, old: tuple[Any, ...]) -> bool:
    """Whether a refit's decision differs from the stored one enough to be written again.

    A refit moves every posterior a little (the worker parameters change); rewriting rows whose
    label, label count, method, model, state and queue priority are the same and whose confidence
    moved by less than CONFIDENCE_TOLERANCE would only churn the table (and its WAL). Such rows
    keep their stored explanation weights until a real change or the item's next label.
    """
    _, was_complete, priority, label, confidence, method, model_version = old
    n_labels = old[0]
    return (
        row.label != label
        or row.n_labels != n_labels
        or row.method != method
        or row.model_version != model_version
        or row.is_complete != was_complete
        or row.priority != priority
        or abs(row.confidence - confidence) >= CONFIDENCE_TOLERANCE
    )
