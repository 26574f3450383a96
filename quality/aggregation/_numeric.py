"""Vectorised building blocks shared by the aggregators (no loops over answers)."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from quality.aggregation.answers import Answers

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]

# Probabilities closer than this are a tie: EM posteriors that are equal in exact arithmetic can
# differ in the last bits depending on summation order.
TIE_TOLERANCE = 1e-12


def vote_counts(answers: Answers, *, weights: FloatArray | None = None) -> FloatArray:
    """(n_items, n_classes) sum of (weighted) votes per item and class, with one bincount."""
    k = answers.n_classes
    per_answer = None if weights is None else weights[answers.worker_idx]
    counts = np.bincount(
        answers.item_idx * k + answers.label_idx,
        weights=per_answer,
        minlength=answers.n_items * k,
    )
    return counts.astype(np.float64, copy=False).reshape(answers.n_items, k)


def label_frequencies(answers: Answers) -> FloatArray:
    """Share of each class among all answers (uniform when there are none)."""
    counts = np.bincount(answers.label_idx, minlength=answers.n_classes).astype(np.float64)
    total = counts.sum()
    if total == 0:
        return np.full(answers.n_classes, 1.0 / answers.n_classes)
    return np.asarray(counts / total, dtype=np.float64)


def normalise_rows(scores: FloatArray, *, fallback: FloatArray) -> FloatArray:
    """Rows scaled to sum to 1; all-zero rows (items nobody answered) get `fallback`."""
    totals = scores.sum(axis=1, keepdims=True)
    empty = totals[:, 0] <= 0
    out = np.divide(scores, totals, out=np.zeros_like(scores), where=totals > 0)
    out[empty] = fallback
    return np.asarray(out, dtype=np.float64)


def softmax_rows(log_scores: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Row-wise softmax in log space; also returns each row's log-sum-exp (log evidence)."""
    peak = log_scores.max(axis=1, keepdims=True)
    scaled = np.exp(log_scores - peak)
    totals = scaled.sum(axis=1, keepdims=True)
    return scaled / totals, (peak + np.log(totals))[:, 0]


def softmax_by_class(log_scores: FloatArray) -> tuple[FloatArray, FloatArray]:
    """`softmax_rows` for a class-major (K, n_items) table, normalising each column, in place."""
    peak = np.max(log_scores, axis=0)
    np.subtract(log_scores, peak, out=log_scores)
    np.exp(log_scores, out=log_scores)
    totals = np.sum(log_scores, axis=0)
    np.divide(log_scores, totals, out=log_scores)
    return log_scores, peak + np.log(totals)


def clamp_gold_by_class(by_class: FloatArray, answers: Answers) -> FloatArray:
    """`clamp_gold` for a class-major (K, n_items) table (in place, returned)."""
    if answers.gold_item_idx.size:
        by_class[:, answers.gold_item_idx] = 0.0
        by_class[answers.gold_label_idx, answers.gold_item_idx] = 1.0
    return by_class


def clamp_gold(posteriors: FloatArray, answers: Answers) -> FloatArray:
    """Gold items' posteriors become one-hot on their known label (in place, returned)."""
    if answers.gold_item_idx.size:
        posteriors[answers.gold_item_idx] = 0.0
        posteriors[answers.gold_item_idx, answers.gold_label_idx] = 1.0
    return posteriors


def tie_order(class_priors: FloatArray) -> IntArray:
    """Classes from most to least preferred on a tie: higher prior first, then lower code."""
    k = class_priors.size
    return np.lexsort((np.arange(k), -np.round(class_priors, 12))).astype(np.intp)


def decide(posteriors: FloatArray, *, class_priors: FloatArray) -> IntArray:
    """Arg-max per item with the documented tie policy.

    Among classes within `TIE_TOLERANCE` of the best posterior, the one with the larger class
    prior wins (the Bayes choice when the item's own evidence is balanced), then the lower class
    code (classes are coded in natural sort order of their names, not in order of appearance).
    """
    n_items, k = posteriors.shape
    if n_items == 0:
        return np.zeros(0, dtype=np.intp)
    best = posteriors.max(axis=1, keepdims=True)
    tied = posteriors >= best - TIE_TOLERANCE
    preference = np.empty(k, dtype=np.float64)
    preference[tie_order(class_priors)] = np.arange(k, 0, -1, dtype=np.float64)
    return np.asarray(np.argmax(np.where(tied, preference, 0.0), axis=1), dtype=np.intp)


def digamma(values: FloatArray) -> FloatArray:
    """The digamma function for positive reals (numpy has none; scipy is not a dependency here).

    Six steps of psi(x) = psi(x + 6) - sum 1/(x + j) lift every value past 6, where the asymptotic
    series is accurate to about 1e-11. Unconditional shifts avoid boolean masks, which dominate
    the cost on large arrays.
    """
    x = np.asarray(values, dtype=np.float64)
    if np.any(x <= 0):
        raise ValueError("digamma is only defined here for positive values")
    shift = 1.0 / x
    for step in range(1, 6):
        shift += 1.0 / (x + step)
    z = x + 6.0
    inv2 = 1.0 / (z * z)
    series = inv2 * (1 / 12 - inv2 * (1 / 120 - inv2 * (1 / 252 - inv2 * (1 / 240 - inv2 / 132))))
    return np.asarray(np.log(z) - 0.5 / z - series - shift, dtype=np.float64)


def trigamma(values: FloatArray) -> FloatArray:
    """The derivative of `digamma`, by the same shift-then-series scheme (error about 1e-11)."""
    x = np.asarray(values, dtype=np.float64)
    if np.any(x <= 0):
        raise ValueError("trigamma is only defined here for positive values")
    shift = 1.0 / (x * x)
    for step in range(1, 6):
        shift += 1.0 / ((x + step) * (x + step))
    z = x + 6.0
    inv = 1.0 / z
    inv2 = inv * inv
    series = inv + inv2 * (0.5 + inv * (1 / 6 - inv2 * (1 / 30 - inv2 * (1 / 42 - inv2 / 30))))
    return np.asarray(shift + series, dtype=np.float64)
