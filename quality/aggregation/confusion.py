"""Dawid-Skene with full confusion matrices, fitted by EM, and its gold-anchored form.

Priors (why the estimates do not blow up on sparse data):

- Each row of each worker's confusion matrix has a Dirichlet prior worth `prior_strength` answers,
  centred on the *population* confusion matrix (all workers' soft counts pooled, plus one count per
  cell). A worker seen once is therefore assumed to be an average worker, and moves away from that
  only as its own answers accumulate. Centring on the pooled matrix rather than on a hand-picked
  "80 % accurate" matrix keeps the prior free of per-dataset constants (empirical Bayes).
- Class priors get one pseudo-count per class (Laplace), so a class no item currently holds keeps
  a non-zero prior and can still be chosen.

Every probability is strictly positive, so the E-step can work in log space without clipping.
"""

from __future__ import annotations

import numpy as np

from quality.aggregation._numeric import (
    FloatArray,
    IntArray,
    clamp_gold,
    decide,
    digamma,
    label_frequencies,
    normalise_rows,
    softmax_rows,
    vote_counts,
)
from quality.aggregation.answers import Answers
from quality.aggregation.result import Result

# Convergence: the log evidence per answer moves by less than this between iterations (the same
# yardstick as Crowd-Kit's default). On the benchmark data 1e-6 or 1e-7 change a handful of
# labels either way, at two to five times the iterations.
DEFAULT_TOL = 1e-5
DEFAULT_MAX_ITER = 200
# Bounds and starting point of the learned Dirichlet precision, in answers per confusion row.
INITIAL_STRENGTH = 2.0
MIN_STRENGTH = 0.1
MAX_STRENGTH = 1e4


def soft_confusion_counts(
    answers: Answers, *, posteriors: FloatArray, worker_label: IntArray
) -> FloatArray:
    """(n_workers, K, K) expected counts: [w, k, l] = sum of P(item is k) over w's answers l.

    `worker_label` is `worker_idx * K + label_idx`; one bincount per true class, none per answer.
    """
    k = answers.n_classes
    flat = np.empty((answers.n_workers * k, k), dtype=np.float64)
    for true_class in range(k):
        flat[:, true_class] = np.bincount(
            worker_label,
            weights=posteriors[:, true_class][answers.item_idx],
            minlength=answers.n_workers * k,
        )
    # flat is indexed [w * K + l, k]; reorder to [w, k, l].
    return flat.reshape(answers.n_workers, k, k).transpose(0, 2, 1).copy()


def smoothed_confusions(
    counts: FloatArray, *, prior_strength: float | FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Posterior-mean confusion matrices under the pooled-population Dirichlet prior.

    Returns (confusions, prior_confusion): the latter is the population matrix itself, i.e. the
    estimate for a worker with no answers.
    """
    pooled = counts.sum(axis=0) + 1.0
    prior_confusion = pooled / pooled.sum(axis=1, keepdims=True)
    strength = np.broadcast_to(np.asarray(prior_strength, dtype=np.float64), (counts.shape[1],))
    pseudo = strength[:, None] * prior_confusion
    confusions = (counts + pseudo) / (counts.sum(axis=2, keepdims=True) + strength[:, None])
    return confusions, prior_confusion


def class_priors_from(posteriors: FloatArray) -> FloatArray:
    """Laplace-smoothed class shares of the current posteriors (all-zero rows carry no weight)."""
    mass = posteriors.sum(axis=0)
    return np.asarray((mass + 1.0) / (mass.sum() + mass.size), dtype=np.float64)


def log_likelihood_scores(
    answers: Answers, *, log_confusions: FloatArray, log_priors: FloatArray, worker_label: IntArray
) -> FloatArray:
    """(n_items, K) log P(item's answers, class k): the E-step numerator, one bincount per class."""
    k = answers.n_classes
    # table[k, w * K + l] = log P(w answers l | true class k): a contiguous row per true class.
    table = np.ascontiguousarray(log_confusions.transpose(1, 0, 2).reshape(k, -1))
    scores = np.empty((answers.n_items, k), dtype=np.float64)
    for true_class in range(k):
        scores[:, true_class] = np.bincount(
            answers.item_idx,
            weights=table[true_class][worker_label],
            minlength=answers.n_items,
        )
    scores += log_priors
    return scores


def fit_prior_strength(
    counts: FloatArray, *, prior_confusion: FloatArray, start: FloatArray, steps: int = 50
) -> FloatArray:
    """Per true class, the Dirichlet precision that best explains how workers spread around the
    population matrix (Minka's fixed point for the Dirichlet-multinomial, mean held fixed).

    Homogeneous workers give a large precision (everyone is shrunk toward the population),
    heterogeneous ones a small one. The arrays are only W x K x K, so the steps cost little next
    to one E-step; the result is clipped to [MIN_STRENGTH, MAX_STRENGTH].
    """
    strength = start.copy()
    seen = counts.sum(axis=2)  # (W, K): soft answers per worker and true class
    active = seen > 0
    for _ in range(steps):
        alpha = strength[:, None] * prior_confusion  # (K, L)
        gain = (prior_confusion * (digamma(counts + alpha) - digamma(alpha))).sum(axis=2)
        norm = digamma(seen + strength) - digamma(strength)
        numerator = np.where(active, gain, 0.0).sum(axis=0)
        denominator = np.where(active, norm, 0.0).sum(axis=0)
        ratio = np.divide(numerator, denominator, out=np.ones_like(strength), where=denominator > 0)
        strength = np.clip(strength * ratio, MIN_STRENGTH, MAX_STRENGTH)
    return strength


def sorted_by_item(answers: Answers) -> Answers:
    """The same answers ordered by item (stable), unless they already are.

    Both EM steps gather per-answer rows of the (items x K) posteriors; in item order those reads
    are sequential, which halves the M-step's time on a million answers. Stability keeps each
    item's answers in their original order, so per-item sums are bit-for-bit unchanged.
    """
    items = answers.item_idx
    if items.size < 2 or bool(np.all(items[1:] >= items[:-1])):
        return answers
    order = np.argsort(items, kind="stable")
    return Answers(
        worker_idx=answers.worker_idx[order],
        item_idx=items[order],
        label_idx=answers.label_idx[order],
        n_workers=answers.n_workers,
        n_items=answers.n_items,
        n_classes=answers.n_classes,
        gold_item_idx=answers.gold_item_idx,
        gold_label_idx=answers.gold_label_idx,
    )


def _initial_posteriors(answers: Answers, *, gold_only: bool = False) -> FloatArray:
    """Where EM starts: the soft majority vote with gold clamped (deterministic).

    With `gold_only`, every non-gold row is zero, so the first M-step estimates the workers from
    their gold answers alone: gold then *seeds* the workers instead of being outvoted by the
    majority on all other items.
    """
    if gold_only:
        return clamp_gold(np.zeros((answers.n_items, answers.n_classes)), answers)
    counts = vote_counts(answers)
    return clamp_gold(normalise_rows(counts, fallback=label_frequencies(answers)), answers)


def dawid_skene(
    answers: Answers,
    *,
    prior_strength: float | None = None,
    tol: float = DEFAULT_TOL,
    max_iter: int = DEFAULT_MAX_ITER,
    method: str = "dawid_skene",
    seed_from_gold: bool = False,
) -> Result:
    """Full-confusion Dawid-Skene by EM under the priors in the module docstring.

    `prior_strength=None` learns the Dirichlet precision per true class from the data (empirical
    Bayes); a number fixes it, in answers. Gold items in `answers`, if any, are clamped to their
    label in every E-step, so they also anchor the worker estimates; with `seed_from_gold` the
    first worker estimates come from gold items alone. Stops when the mean log
    evidence per answer changes by less than `tol` between two iterations, or after `max_iter`.
    """
    if prior_strength is not None and prior_strength < 0:
        raise ValueError("prior_strength must be non-negative")
    if max_iter < 1:
        raise ValueError("max_iter must be at least 1")
    answers = sorted_by_item(answers)
    k = answers.n_classes
    worker_label = answers.worker_idx * k + answers.label_idx
    posteriors = _initial_posteriors(
        answers, gold_only=seed_from_gold and bool(answers.gold_item_idx.size)
    )
    strength = np.full(k, INITIAL_STRENGTH if prior_strength is None else prior_strength)
    # The precision is learned once, from the converged fit with the starting precision, and then
    # held while EM converges again. Re-learning it every iteration feeds back on itself: an
    # excellent annotator among a few look-alike workers is shrunk a little, so it looks more
    # like the others, so the learned precision grows, so it is shrunk more, without end.
    learned = prior_strength is not None
    objective = -np.inf
    converged = False
    iterations = 0
    while iterations < max_iter:
        counts = soft_confusion_counts(answers, posteriors=posteriors, worker_label=worker_label)
        if converged:
            if learned:
                break
            pooled = counts.sum(axis=0) + 1.0
            strength = fit_prior_strength(
                counts, prior_confusion=pooled / pooled.sum(axis=1, keepdims=True), start=strength
            )
            learned, converged, objective = True, False, -np.inf
        iterations += 1
        confusions, prior_confusion = smoothed_confusions(counts, prior_strength=strength)
        priors = class_priors_from(posteriors)
        scores = log_likelihood_scores(
            answers,
            log_confusions=np.log(confusions),
            log_priors=np.log(priors),
            worker_label=worker_label,
        )
        posteriors, evidence = softmax_rows(scores)
        clamp_gold(posteriors, answers)
        # Gold items count with their known class, not summed over classes.
        evidence[answers.gold_item_idx] = scores[answers.gold_item_idx, answers.gold_label_idx]
        updated = float(evidence.sum())
        converged = abs(updated - objective) < tol * max(answers.n_answers, 1)
        objective = updated
    # The loop ends right after an E-step, so the confusions and priors returned are exactly those
    # that produced `posteriors`: `item_posterior` with them reproduces this result for any item.
    quality = np.einsum("k,wkk->w", priors, confusions)
    return Result(
        method=method,
        labels=decide(posteriors, class_priors=priors),
        posteriors=posteriors,
        class_priors=priors,
        worker_quality=quality,
        confusions=confusions,
        prior_confusion=prior_confusion,
        iterations=iterations,
        converged=converged,
        log_likelihood=objective,
    )


def gold_dawid_skene(
    answers: Answers,
    *,
    prior_strength: float | None = None,
    tol: float = DEFAULT_TOL,
    max_iter: int = DEFAULT_MAX_ITER,
) -> Result:
    """Dawid-Skene with gold items fixed: they alone seed the first worker estimates, then stay
    clamped while EM runs over all items. A crowd whose majority is systematically wrong is
    then read correctly as long as its workers also answered some gold.

    Raises `ValueError` without gold, so a misconfigured campaign is not silently unanchored.
    """
    if not answers.gold_item_idx.size:
        raise ValueError("gold_dawid_skene needs gold items (Answers.with_gold)")
    # Two starts, the gold-seeded one and the usual majority vote one, and the likelier fit wins:
    # a handful of gold items is too little to seed every class on its own, while a majority that
    # is wrong by design makes the gold items unlikely under the majority-started fit.
    fits = [
        dawid_skene(
            answers,
            prior_strength=prior_strength,
            tol=tol,
            max_iter=max_iter,
            method="gold_dawid_skene",
            seed_from_gold=seeded,
        )
        for seeded in (True, False)
    ]
    return max(fits, key=lambda fit: fit.log_likelihood)
