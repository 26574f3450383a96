"""One-coin Dawid-Skene: one accuracy per worker, errors spread evenly over the other classes.

Far fewer parameters than full confusion matrices (one per worker instead of K * (K - 1)), so it
suits workers with few answers; it cannot model a worker who systematically confuses two classes.
Each accuracy has a Beta prior worth `prior_strength` answers, centred on the pooled accuracy of
all workers (empirical Bayes, as in `dawid_skene`).
"""

from __future__ import annotations

import numpy as np

from quality.aggregation._numeric import FloatArray, clamp_gold, decide, softmax_rows
from quality.aggregation.answers import Answers
from quality.aggregation.confusion import (
    DEFAULT_MAX_ITER,
    class_priors_from,
    initial_posteriors,
)
from quality.aggregation.result import Result

# In answers: a worker's accuracy starts at the pooled accuracy and needs a few answers to move.
DEFAULT_PRIOR_STRENGTH = 2.0
# Stop when no posterior moves by more than this between iterations.
DEFAULT_TOL = 1e-5


def _accuracies(answers: Answers, posteriors: FloatArray, *, prior_strength: float) -> FloatArray:
    hits = posteriors[answers.item_idx, answers.label_idx]
    hit_sum = np.bincount(answers.worker_idx, weights=hits, minlength=answers.n_workers)
    seen = np.bincount(answers.worker_idx, minlength=answers.n_workers).astype(np.float64)
    # The +1/+2 keeps the pooled mean inside (0, 1) even when every answer agrees.
    pooled = (float(hit_sum.sum()) + 1.0) / (float(seen.sum()) + 2.0)
    return (hit_sum + prior_strength * pooled) / (seen + prior_strength)


def one_coin_confusions(accuracy: FloatArray, *, n_classes: int) -> FloatArray:
    """Expand accuracies into full (n_workers, K, K) confusion matrices."""
    off = (1.0 - accuracy) / max(n_classes - 1, 1)
    confusions = np.repeat(off[:, None, None], n_classes, axis=1).repeat(n_classes, axis=2)
    diagonal = np.arange(n_classes)
    confusions[:, diagonal, diagonal] = accuracy[:, None]
    return confusions


def one_coin_dawid_skene(
    answers: Answers,
    *,
    prior_strength: float = DEFAULT_PRIOR_STRENGTH,
    tol: float = DEFAULT_TOL,
    max_iter: int = DEFAULT_MAX_ITER,
) -> Result:
    """One-coin Dawid-Skene by EM; gold items are clamped like in `dawid_skene`."""
    k = answers.n_classes
    posteriors = initial_posteriors(answers)
    cell = answers.item_idx * k + answers.label_idx
    converged = False
    iterations = 0
    accuracy = _accuracies(answers, posteriors, prior_strength=prior_strength)
    priors = class_priors_from(posteriors)
    while iterations < max_iter:
        iterations += 1
        accuracy = _accuracies(answers, posteriors, prior_strength=prior_strength)
        priors = class_priors_from(posteriors)
        # Only the answered class gets the log-odds bonus; the (1 - a) / (K - 1) term is common to
        # all classes of an item and cancels in the softmax.
        bonus = np.log(max(k - 1, 1) * accuracy / (1.0 - accuracy))
        scores = np.bincount(cell, weights=bonus[answers.worker_idx], minlength=answers.n_items * k)
        log_scores = scores.astype(np.float64).reshape(answers.n_items, k) + np.log(priors)
        updated, _ = softmax_rows(log_scores)
        clamp_gold(updated, answers)
        change = float(np.max(np.abs(updated - posteriors))) if updated.size else 0.0
        posteriors = updated
        if change < tol:
            converged = True
            break
    pooled = float(np.average(accuracy, weights=None)) if accuracy.size else 1.0 / k
    return Result(
        method="one_coin_dawid_skene",
        labels=decide(posteriors, class_priors=priors),
        posteriors=posteriors,
        class_priors=priors,
        worker_quality=accuracy,
        confusions=one_coin_confusions(accuracy, n_classes=k),
        prior_confusion=one_coin_confusions(np.array([pooled]), n_classes=k)[0],
        iterations=iterations,
        converged=converged,
    )
