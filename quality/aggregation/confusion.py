"""Dawid-Skene with full confusion matrices, fitted by EM, and its gold-anchored form.

Priors (why the estimates do not blow up on sparse data):

- Each row of each worker's confusion matrix has a Dirichlet prior worth `s` answers, centred on
  the *population* confusion matrix (all workers' soft counts pooled, plus one count per cell). A
  worker seen once is therefore assumed to be an average worker, and moves away from that only as
  its own answers accumulate. Centring on the pooled matrix rather than on a hand-picked
  "80 % accurate" matrix, and learning `s` from how much workers differ (`fit_prior_strength`)
  unless `prior_strength` fixes it, keeps the prior free of per-dataset constants (empirical
  Bayes).
- Class priors get one pseudo-count per class (Laplace), so a class no item currently holds keeps
  a non-zero prior and can still be chosen.

A live campaign can also pass `population`, pseudo-counts for the pooled matrix (in place of the
one count per cell), and `class_counts`, pseudo-counts for the class priors: estimates that do not
come from EM (`quality.aggregation.campaign` derives both from how often labels agree). With few
answers per item, EM alone can slide into a degenerate explanation of the data; these anchor it.
The offline aggregators do not use them.

Every probability is strictly positive, so the E-step can work in log space without clipping.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from quality.aggregation._numeric import (
    FloatArray,
    clamp_gold,
    clamp_gold_by_class,
    decide,
    digamma,
    label_frequencies,
    normalise_rows,
    softmax_by_class,
    trigamma,
    vote_counts,
)
from quality.aggregation._passes import (
    ItemLayout,
    item_layout,
    log_likelihood_scores,
    soft_confusion_counts,
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
# The first stage (starting precision) only has to place the workers well enough to measure how
# they spread, so it stops at a 10x looser tolerance; the second stage converges to `tol`.
FIRST_STAGE_TOL_FACTOR = 10.0


def population_matrix(counts: FloatArray, *, population: FloatArray | None = None) -> FloatArray:
    """The pooled matrix: all workers' counts plus one count per cell, or plus the `population`
    pseudo-counts instead when given (they replace the uniform count, which would otherwise pull
    the belief they encode toward the uniform matrix)."""
    pooled = counts.sum(axis=0) + (1.0 if population is None else population)
    return np.asarray(pooled / pooled.sum(axis=1, keepdims=True), dtype=np.float64)


def smoothed_confusions(
    counts: FloatArray,
    *,
    prior_strength: float | FloatArray,
    population: FloatArray | None = None,
) -> tuple[FloatArray, FloatArray]:
    """Posterior-mean confusion matrices under the pooled-population Dirichlet prior.

    Returns (confusions, prior_confusion): the latter is the population matrix itself, i.e. the
    estimate for a worker with no answers.
    """
    prior_confusion = population_matrix(counts, population=population)
    strength = np.broadcast_to(np.asarray(prior_strength, dtype=np.float64), (counts.shape[1],))
    pseudo = strength[:, None] * prior_confusion
    confusions = (counts + pseudo) / (counts.sum(axis=2, keepdims=True) + strength[:, None])
    return confusions, prior_confusion


def class_priors_from(posteriors: FloatArray) -> FloatArray:
    """Laplace-smoothed class shares of (n_items, K) posteriors (all-zero rows carry no weight)."""
    return class_priors_from_mass(posteriors.sum(axis=0))


def class_priors_from_mass(mass: FloatArray) -> FloatArray:
    """Laplace-smoothed class shares of the total posterior mass per class."""
    return np.asarray((mass + 1.0) / (mass.sum() + mass.size), dtype=np.float64)


def fit_prior_strength(
    counts: FloatArray, *, prior_confusion: FloatArray, start: FloatArray, max_steps: int = 30
) -> FloatArray:
    """Per true class, the Dirichlet precision that best explains how workers spread around the
    population matrix: the maximum of the Dirichlet-multinomial likelihood in the precision `s`
    with the mean held at `prior_confusion` (Minka, "Estimating a Dirichlet distribution").

    Homogeneous workers give a large precision (everyone is shrunk toward the population),
    heterogeneous ones a small one. Newton's method on log `s` (a few steps; Minka's fixed point
    needs dozens), falling back to a unit step where the likelihood is not concave; the result
    is clipped to [MIN_STRENGTH, MAX_STRENGTH].
    """
    counts = counts[counts.sum(axis=(1, 2)) > 0]  # workers with no answers add nothing
    seen = counts.sum(axis=2)  # (W, K): soft answers per worker and true class
    mean = prior_confusion[None]
    log_strength = np.log(np.clip(start, MIN_STRENGTH, MAX_STRENGTH))
    for _ in range(max_steps):
        strength = np.exp(log_strength)
        alpha = strength[None, :, None] * mean
        # First and second derivatives of the log-likelihood in s, summed over workers.
        first = (digamma(strength) - digamma(seen + strength)).sum(axis=0) + (
            mean * (digamma(counts + alpha) - digamma(alpha))
        ).sum(axis=(0, 2))
        second = (trigamma(strength) - trigamma(seen + strength)).sum(axis=0) + (
            mean * mean * (trigamma(counts + alpha) - trigamma(alpha))
        ).sum(axis=(0, 2))
        gradient = strength * first  # in log s
        curvature = strength * first + strength * strength * second
        newton = np.divide(gradient, -curvature, out=np.zeros_like(gradient), where=curvature < 0)
        step = np.clip(np.where(curvature < 0, newton, np.sign(gradient)), -1.0, 1.0)
        updated = np.clip(log_strength + step, np.log(MIN_STRENGTH), np.log(MAX_STRENGTH))
        done = bool(np.max(np.abs(updated - log_strength)) < 1e-6)
        log_strength = updated
        if done:
            break
    return np.asarray(np.exp(log_strength), dtype=np.float64)


def initial_posteriors(answers: Answers, *, gold_only: bool = False) -> FloatArray:
    """Where EM starts: the soft majority vote with gold clamped (deterministic).

    With `gold_only`, every non-gold row is zero, so the first M-step estimates the workers from
    their gold answers alone: gold then *seeds* the workers instead of being outvoted by the
    majority on all other items.
    """
    if gold_only:
        return clamp_gold(np.zeros((answers.n_items, answers.n_classes)), answers)
    counts = vote_counts(answers)
    return clamp_gold(normalise_rows(counts, fallback=label_frequencies(answers)), answers)


@dataclass(frozen=True)
class _Fit:
    by_class: FloatArray  # posteriors, class-major (K, n_items)
    confusions: FloatArray
    prior_confusion: FloatArray
    priors: FloatArray
    log_likelihood: float
    iterations: int
    converged: bool
    strength: FloatArray


def _run_em(
    layout: ItemLayout,
    *,
    by_class: FloatArray,
    strength: FloatArray,
    tol: float,
    max_iter: int,
    population: FloatArray | None = None,
    class_counts: FloatArray | None = None,
) -> _Fit:
    """EM with a fixed prior precision, from `posteriors`, until the log evidence settles.

    It ends right after an E-step, so the confusions and priors it returns are exactly those that
    produced its posteriors: `item_posterior` with them reproduces the fit for any item.
    """
    answers = layout.answers
    gold_items, gold_labels = answers.gold_item_idx, answers.gold_label_idx
    threshold = tol * max(answers.n_answers, 1)
    objective = -np.inf
    iterations = 0
    converged = False
    while not converged and iterations < max_iter:
        iterations += 1
        counts = soft_confusion_counts(layout, by_class=by_class)
        confusions, prior_confusion = smoothed_confusions(
            counts, prior_strength=strength, population=population
        )
        mass = by_class.sum(axis=1)
        priors = class_priors_from_mass(mass if class_counts is None else mass + class_counts)
        scores = log_likelihood_scores(
            layout, log_confusions=np.log(confusions), log_priors=np.log(priors)
        )
        # Gold items count with their known class, not summed over classes.
        gold_evidence = scores[gold_labels, gold_items]
        by_class, evidence = softmax_by_class(scores)
        clamp_gold_by_class(by_class, answers)
        evidence[gold_items] = gold_evidence
        updated = float(evidence.sum())
        converged = abs(updated - objective) < threshold
        objective = updated
    return _Fit(
        by_class=by_class,
        confusions=confusions,
        prior_confusion=prior_confusion,
        priors=priors,
        log_likelihood=objective,
        iterations=iterations,
        converged=converged,
        strength=strength,
    )


def dawid_skene(
    answers: Answers,
    *,
    prior_strength: float | None = None,
    tol: float = DEFAULT_TOL,
    max_iter: int = DEFAULT_MAX_ITER,
    method: str = "dawid_skene",
    seed_from_gold: bool = False,
    population: FloatArray | None = None,
    class_counts: FloatArray | None = None,
) -> Result:
    """Full-confusion Dawid-Skene by EM under the priors in the module docstring.

    `prior_strength=None` learns the Dirichlet precision per true class from the data (empirical
    Bayes); a number fixes it, in answers. Gold items in `answers`, if any, are clamped to their
    label in every E-step, so they also anchor the worker estimates; with `seed_from_gold` the
    first worker estimates come from gold items alone. Stops when the log evidence per answer
    changes by less than `tol` between two iterations, or after `max_iter` iterations in all.
    `population` gives (K, K) pseudo-counts to the pooled population matrix and `class_counts`
    (K,) pseudo-counts to the class priors (module docstring).
    """
    if prior_strength is not None and prior_strength < 0:
        raise ValueError("prior_strength must be non-negative")
    if max_iter < 1:
        raise ValueError("max_iter must be at least 1")
    layout = item_layout(answers)
    k = layout.answers.n_classes
    start = initial_posteriors(
        layout.answers, gold_only=seed_from_gold and bool(layout.answers.gold_item_idx.size)
    )
    start = np.ascontiguousarray(start.T)
    if prior_strength is not None:
        fixed = np.full(k, prior_strength)
        fit = _run_em(
            layout,
            by_class=start,
            strength=fixed,
            tol=tol,
            max_iter=max_iter,
            population=population,
            class_counts=class_counts,
        )
        return _result(fit, method=method, iterations=fit.iterations)
    # The precision is learned once, from a first fit with the starting precision, and then held
    # while EM converges again. Re-learning it every iteration feeds back on itself: an excellent
    # annotator among a few look-alike workers is shrunk a little, so it looks more like the
    # others, so the learned precision grows, so it is shrunk more, without end.
    first = _run_em(
        layout,
        by_class=start,
        strength=np.full(k, INITIAL_STRENGTH),
        tol=tol * FIRST_STAGE_TOL_FACTOR,
        max_iter=max_iter,
        population=population,
        class_counts=class_counts,
    )
    if first.iterations >= max_iter:
        return _result(first, method=method, iterations=first.iterations)
    counts = soft_confusion_counts(layout, by_class=first.by_class)
    strength = fit_prior_strength(
        counts,
        prior_confusion=population_matrix(counts, population=population),
        start=np.full(k, INITIAL_STRENGTH),
    )
    fit = _run_em(
        layout,
        by_class=first.by_class,
        strength=strength,
        tol=tol,
        max_iter=max_iter - first.iterations,
        population=population,
        class_counts=class_counts,
    )
    return _result(fit, method=method, iterations=first.iterations + fit.iterations)


def _result(fit: _Fit, *, method: str, iterations: int) -> Result:
    posteriors = np.ascontiguousarray(fit.by_class.T)
    return Result(
        method=method,
        labels=decide(posteriors, class_priors=fit.priors),
        posteriors=posteriors,
        class_priors=fit.priors,
        worker_quality=np.einsum("k,wkk->w", fit.priors, fit.confusions),
        confusions=fit.confusions,
        prior_confusion=fit.prior_confusion,
        iterations=iterations,
        converged=fit.converged,
        log_likelihood=fit.log_likelihood,
        prior_strength=fit.strength,
    )


def gold_dawid_skene(
    answers: Answers,
    *,
    prior_strength: float | None = None,
    tol: float = DEFAULT_TOL,
    max_iter: int = DEFAULT_MAX_ITER,
    population: FloatArray | None = None,
    class_counts: FloatArray | None = None,
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
            population=population,
            class_counts=class_counts,
        )
        for seeded in (True, False)
    ]
    return max(fits, key=lambda fit: fit.log_likelihood)
