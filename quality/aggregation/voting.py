"""Vote-based aggregators: majority vote and worker-weighted vote."""

from __future__ import annotations

import numpy as np

from quality.aggregation._numeric import (
    FloatArray,
    clamp_gold,
    decide,
    label_frequencies,
    normalise_rows,
    softmax_rows,
    vote_counts,
)
from quality.aggregation.answers import Answers
from quality.aggregation.result import Result

# Accuracies are kept inside (eps, 1 - eps) so log-odds weights stay finite for perfect workers.
_ACCURACY_EPS = 1e-6


def agreement_rate(
    answers: Answers, *, labels: np.ndarray, prior_mean: float, prior_strength: float
) -> FloatArray:
    """Per worker: share of answers equal to `labels`, shrunk toward `prior_mean`.

    The Beta prior is worth `prior_strength` answers, so a worker seen once cannot reach 0 or 1.
    """
    agree = (answers.label_idx == labels[answers.item_idx]).astype(np.float64)
    hits = np.bincount(answers.worker_idx, weights=agree, minlength=answers.n_workers)
    seen = np.bincount(answers.worker_idx, minlength=answers.n_workers).astype(np.float64)
    return (hits + prior_strength * prior_mean) / (seen + prior_strength)


def majority_vote(answers: Answers) -> Result:
    """Each answer is one vote; the posterior is the share of votes.

    Ties go to the class that is more frequent among all answers, then to the lower class code
    (natural sort order of class names); see `_numeric.decide`.
    """
    frequencies = label_frequencies(answers)
    posteriors = clamp_gold(normalise_rows(vote_counts(answers), fallback=frequencies), answers)
    labels = decide(posteriors, class_priors=frequencies)
    quality = agreement_rate(answers, labels=labels, prior_mean=0.5, prior_strength=2.0)
    return Result(
        method="majority_vote",
        labels=labels,
        posteriors=posteriors,
        class_priors=frequencies,
        worker_quality=quality,
    )


def weighted_vote(answers: Answers, *, prior_strength: float = 2.0) -> Result:
    """Votes weighted by each worker's agreement with the majority (gold items count as truth).

    A worker's weight is the log-odds `log((K - 1) * a / (1 - a))` of its smoothed agreement `a`:
    under a one-coin worker model this makes the softmax of the weighted votes the posterior, and
    a worker at chance level (a = 1/K) gets weight 0.
    """
    k = answers.n_classes
    majority = majority_vote(answers)
    overall = float(
        np.mean(answers.label_idx == majority.labels[answers.item_idx])
        if answers.n_answers
        else 1.0 / k
    )
    accuracy = agreement_rate(
        answers, labels=majority.labels, prior_mean=overall, prior_strength=prior_strength
    )
    accuracy = np.clip(accuracy, _ACCURACY_EPS, 1.0 - _ACCURACY_EPS)
    weights = np.log(max(k - 1, 1) * accuracy / (1.0 - accuracy))
    posteriors, _ = softmax_rows(vote_counts(answers, weights=weights))
    posteriors = clamp_gold(posteriors, answers)
    frequencies = label_frequencies(answers)
    return Result(
        method="weighted_vote",
        labels=decide(posteriors, class_priors=frequencies),
        posteriors=posteriors,
        class_priors=frequencies,
        worker_quality=accuracy,
    )
