"""The live-campaign rules: when an item closes, which items are served first, how much weight
each annotator carried, and how far the ML model may be trusted. Pure functions, shared by the
product (quality.services) and the replay benchmark, so the benchmark measures the product's rules.

Closing (`should_close`): an item closes when it has `max_labels` labels, or when it has at least
`min_labels` labels and the posterior of its best class reaches `target_confidence`. Gold items
never close (their label is known; they exist to score workers, and next-task serves them to
every contributor from a queue of their own, at the campaign's `gold_ratio`).
`min_labels` is a floor, not an overlap: with workers the campaign knows to be good, two agreeing
labels (or one, if the requester sets `min_labels = 1`) can reach 0.95.

Queue order (`queue_priority`, lower is served first; new items start at 0):

- an item with labels: `round(1000 * max posterior) - 2000`, minus `DISAGREEMENT_PENALTY` when the
  model's label differs from the crowd's: from about -1750 to -1000. Items in progress come before
  untouched ones, the least certain first, and an item whose labels the model contradicts comes
  before an equally uncertain one on which they agree. Finishing started items first gives the
  campaign overlapping labels early (what a refit needs to tell workers apart, see
  `campaign.CALIBRATION_ITEMS`) and keeps the number of half-labeled items small;
- an item nobody labeled that the model has scored: `round(1000 * max posterior) - 1000`, from
  -1000 + 1000/K to 0: after every item in progress, the items the model is least sure of first;
- an item nothing is known about keeps 0 (the default): last.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from quality.aggregation._numeric import FloatArray, IntArray, decide
from quality.aggregation.one_coin import one_coin_confusions

# Priority points an item gains (is served sooner) when the model disagrees with its crowd label:
# a quarter of the scale, so such an item jumps ahead of agreeing items up to 0.25 more uncertain.
DISAGREEMENT_PENALTY = 250
PRIORITY_SCALE = 1000


# A label is bought only if it is expected to raise its item's chance of being decided right by at
# least this much (two points): the default of KYODO_QUALITY_MIN_GAIN, see `label_value`. Chosen
# on the five replay datasets together (0.0075, 0.01, 0.015 and 0.02 tried), never per dataset;
# docs/quality.md and bench/quality/RESULTS.md report the trade-off.
MIN_GAIN = 0.02
# How many labels ahead `label_value` looks (fewer when K^labels would pass MAX_SEQUENCES).
LOOKAHEAD = 3
MAX_SEQUENCES = 64


@dataclass(frozen=True)
class Policy:
    min_labels: int
    max_labels: int
    target_confidence: float
    min_gain: float = 0.0  # 0: items close on target_confidence and max_labels only


def should_close(
    *,
    policy: Policy,
    n_labels: int,
    confidence: float,
    is_gold: bool,
    value: float = float("inf"),
) -> bool:
    """Close at `max_labels`; or with `min_labels` and a posterior at `target_confidence`; or with
    `min_labels` when more labels are no longer worth buying (`value`, from `label_value`, below
    `policy.min_gain`). Gold items never close."""
    if is_gold:
        return False
    if n_labels >= policy.max_labels:
        return True
    if n_labels < policy.min_labels:
        return False
    return confidence >= policy.target_confidence or value < policy.min_gain


def label_sequences(matrix: FloatArray, *, labels: int) -> FloatArray:
    """(K^labels, K): P(this sequence of `labels` answers | true class) for a contributor with
    confusion `matrix`, every sequence in lexicographic order."""
    m = np.asarray(matrix, dtype=np.float64)
    k = m.shape[0]
    out = np.ones((1, k))
    for _ in range(labels):
        out = (out[:, None, :] * m.T[None, :, :]).reshape(-1, k)
    return out


def expected_gain(
    posteriors: FloatArray, *, matrix: FloatArray, temperature: float = 1.0, labels: int = 1
) -> FloatArray:
    """How much `labels` more answers from a contributor with confusion `matrix` are expected to
    raise each item's chance of being decided right (its value of information), per item.

    `posteriors` are (n, K) beliefs (tempered, as the campaign scores items). For each possible
    sequence `s` of answers, the item would be decided as `k*(s) = argmax p(k) L(s | k)^t`; it is
    then right with probability `p(k*) L(s | k*)` summed over the sequences. Minus today's chance
    of being right, `max p`. Vectorised over items: (n, K^labels, K) at most.
    """
    p = np.atleast_2d(np.asarray(posteriors, dtype=np.float64))
    likelihood = label_sequences(matrix, labels=labels)  # (S, K)
    tempered = likelihood if temperature == 1.0 else likelihood**temperature
    chosen = np.argmax(p[:, None, :] * tempered[None], axis=2)  # (n, S)
    right = np.take_along_axis(p[:, None, :] * likelihood[None], chosen[..., None], axis=2)
    return np.asarray(right[..., 0].sum(axis=1) - p.max(axis=1), dtype=np.float64)


def lookahead(n_classes: int) -> int:
    """Labels `label_value` looks ahead for K classes: LOOKAHEAD, or fewer so that at most
    MAX_SEQUENCES answer sequences are enumerated (always at least one)."""
    m = 1
    while m < LOOKAHEAD and n_classes ** (m + 1) <= MAX_SEQUENCES:
        m += 1
    return m


def label_value(
    posteriors: FloatArray, *, matrix: FloatArray, temperature: float = 1.0
) -> FloatArray:
    """Per item, what one more label is worth: the best over 1..`lookahead(K)` more labels of the
    expected gain in the chance of deciding the item right, per label (`expected_gain / m`).

    Looking several labels ahead matters: one contrary label often cannot flip a decision that two
    can, so a one-label look would stop items that still need labels. The contributor is the
    campaign's typical one (the default matrix a refit stores), the belief the tempered posterior
    the campaign scores items with. An item whose labels keep disagreeing among contributors
    barely better than chance has a low value: more of the same will not settle it (closing it
    saves the labels); an item one or two labels from a confident decision has a high one.
    """
    p = np.atleast_2d(np.asarray(posteriors, dtype=np.float64))
    k = p.shape[1]
    best = np.full(p.shape[0], -np.inf)
    for m in range(1, lookahead(k) + 1):
        gain = expected_gain(p, matrix=matrix, temperature=temperature, labels=m) / m
        best = np.maximum(best, gain)
    return np.asarray(best, dtype=np.float64)


def queue_priority(*, confidence: float, model_disagrees: bool, labeled: bool) -> int:
    """Next-task priority of an open item (lower is served first); see the module doc."""
    base = round(PRIORITY_SCALE * confidence)
    if not labeled:
        return base - PRIORITY_SCALE
    return base - 2 * PRIORITY_SCALE - (DISAGREEMENT_PENALTY if model_disagrees else 0)


def one_coin_matrix(accuracy: float, n_classes: int) -> FloatArray:
    """A (K, K) confusion matrix: right with probability `accuracy`, errors spread evenly."""
    return one_coin_confusions(np.array([accuracy], dtype=np.float64), n_classes=n_classes)[0]


def annotator_quality(matrix: FloatArray, *, class_priors: FloatArray) -> float:
    """P(the annotator's answer is right) under the class priors."""
    return float(np.dot(np.asarray(class_priors), np.diagonal(np.asarray(matrix))))


def cap_annotator(
    matrix: FloatArray, *, population: FloatArray, class_priors: FloatArray, max_quality: float
) -> FloatArray:
    """`matrix` shrunk toward `population` just enough that its quality is at most `max_quality`.

    The mix `lam * matrix + (1 - lam) * population` keeps rows summing to 1 and is linear in
    `lam`, so the largest allowed `lam` is closed-form. A matrix already within the cap is returned
    as it is; one whose population is above the cap falls back to the population itself.
    """
    quality = annotator_quality(matrix, class_priors=class_priors)
    if quality <= max_quality:
        return np.asarray(matrix, dtype=np.float64)
    base = annotator_quality(population, class_priors=class_priors)
    lam = 0.0 if quality <= base else float(np.clip((max_quality - base) / (quality - base), 0, 1))
    return np.asarray(lam * matrix + (1.0 - lam) * population, dtype=np.float64)


def tempered_posterior(
    *,
    labels: Sequence[int],
    matrices: Sequence[FloatArray],
    class_priors: FloatArray,
    temperature: float = 1.0,
) -> FloatArray:
    """P(class | these answers) with each annotator's log-likelihood scaled by `temperature`
    (`item_posterior` when it is 1); see `quality.aggregation.calibration`."""
    log_scores = np.log(np.asarray(class_priors, dtype=np.float64)).copy()
    for label, matrix in zip(labels, matrices, strict=True):
        log_scores += temperature * np.log(np.asarray(matrix, dtype=np.float64)[:, label])
    log_scores -= log_scores.max()
    posterior = np.exp(log_scores)
    return np.asarray(posterior / posterior.sum(), dtype=np.float64)


def best_and_runner_up(posterior: FloatArray, *, class_priors: FloatArray) -> tuple[int, int]:
    """The decided class (with the documented tie policy) and the most probable other class."""
    chosen = int(decide(np.asarray(posterior)[None, :], class_priors=class_priors)[0])
    others = np.array(posterior, dtype=np.float64)
    others[chosen] = -np.inf
    return chosen, int(np.argmax(others))


@dataclass(frozen=True)
class Explanation:
    """Why an item got its label: the posterior log-odds of the chosen class over the runner-up
    split exactly into the class prior's share and one term per annotator:

        log(p[chosen] / p[runner_up]) = prior_weight + sum(weights)

    A weight is `log A[chosen, l] - log A[runner_up, l]` for the label `l` the annotator gave:
    positive when its answer speaks for the chosen class, negative against it, near 0 for an
    annotator whose answers carry no information (a spammer).
    """

    chosen: int
    runner_up: int
    prior_weight: float
    weights: list[float]


def explain(
    *,
    labels: Sequence[int],
    matrices: Sequence[FloatArray],
    posterior: FloatArray,
    class_priors: FloatArray,
    temperature: float = 1.0,
) -> Explanation:
    """The split of the posterior log-odds; weights are scaled by the fit's `temperature`."""
    chosen, runner_up = best_and_runner_up(posterior, class_priors=class_priors)
    weights = [
        float(temperature * (np.log(m[chosen, label]) - np.log(m[runner_up, label])))
        for label, m in zip(labels, matrices, strict=True)
    ]
    prior_weight = float(np.log(class_priors[chosen]) - np.log(class_priors[runner_up]))
    return Explanation(chosen, runner_up, prior_weight, weights)


def answer_weights(
    *,
    worker_idx: IntArray,
    item_idx: IntArray,
    label_idx: IntArray,
    confusions: FloatArray,
    chosen: IntArray,
    runner_up: IntArray,
    temperature: float = 1.0,
) -> NDArray[np.float64]:
    """`explain`'s weight of every answer at once (for a full refit): one gather per term."""
    log_c = np.log(confusions)
    top = log_c[worker_idx, chosen[item_idx], label_idx]
    second = log_c[worker_idx, runner_up[item_idx], label_idx]
    return np.asarray(temperature * (top - second), dtype=np.float64)


def runner_up_of(posteriors: FloatArray, chosen: IntArray) -> IntArray:
    """Per item, the most probable class other than `chosen` (vectorised `best_and_runner_up`)."""
    masked = np.array(posteriors, dtype=np.float64)
    if masked.shape[0]:
        masked[np.arange(masked.shape[0]), chosen] = -np.inf
    return np.asarray(np.argmax(masked, axis=1), dtype=np.intp)
