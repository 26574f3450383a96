"""Spammer detection: how far each worker's confusion matrix is from rank one.

A spammer answers without looking: whatever the true class, it picks labels from one fixed
distribution, so every row of its confusion matrix is the same and the matrix has rank one
(Raykar & Yu, "Eliminating spammers and ranking annotators for crowdsourced tasks", JMLR 2012).
Their score measures the distance from that:

    S = 1 / (K (K - 1)) * sum over pairs of true classes c < c' of sum_l (A[c, l] - A[c', l])^2

0 for a spammer (any rank-one matrix, whatever its label mix), 1 for a perfect worker (or a
perfectly adversarial one, whose answers are just as informative once the confusion matrix is
known). For a worker who is right with probability `a` and spreads errors evenly,
S = ((K a - 1) / (K - 1))^2, the square of its accuracy above chance: binary a = 0.66 gives 0.1.

A score alone would suspend a worker on a handful of unlucky answers, and the soft counts of a fit
are no evidence where the fit itself is unsure. Suspension therefore rests on `evidence_counts`:
each answer is compared with its item's decision *without that answer* (leave one out), and counts
only as much as that decision is certain (0 at chance, 1 when sure; gold items count fully). Then
`likely_spammers` asks how sure these counts make us that the worker's true score is below the
threshold, drawing confusion matrices from the Dirichlet posterior of the counts under a flat prior.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from quality.aggregation._numeric import FloatArray, softmax_rows
from quality.aggregation.answers import Answers

# Draws per worker; a probability near 5 % is then estimated within about 1.4 points, and a fixed
# seed makes the result deterministic.
DEFAULT_DRAWS = 256
_CHUNK = 256  # workers per batch of draws: bounds memory to draws * chunk * K * K floats


def spammer_scores(confusions: FloatArray) -> FloatArray:
    """Raykar-Yu spammer score of each (K, K) confusion matrix in a (W, K, K) stack, in [0, 1]."""
    matrices = np.asarray(confusions, dtype=np.float64)
    if matrices.ndim == 2:
        matrices = matrices[None]
    k = matrices.shape[-1]
    if k < 2:
        return np.zeros(matrices.shape[0])
    # sum_{c<c'} sum_l (A_cl - A_c'l)^2 = sum_l (K sum_c A_cl^2 - (sum_c A_cl)^2)
    squares = np.einsum("...cl,...cl->...", matrices, matrices)
    column_sums = matrices.sum(axis=-2)
    spread = k * squares - np.einsum("...l,...l->...", column_sums, column_sums)
    return np.asarray(np.clip(spread / (k * (k - 1)), 0.0, 1.0), dtype=np.float64)


def evidence_counts(
    answers: Answers, *, log_scores: FloatArray, log_confusions: FloatArray
) -> FloatArray:
    """(W, K, K) counts [w, decided class, answered label], each answer weighted by how certain
    its item's decision is without it.

    `log_scores` are the fit's (K, n_items) unnormalised log posteriors (class priors plus every
    annotator's log-likelihood, the model's included); `log_confusions` the (W, K, K) terms of the
    workers that went into them (tempered, if the scores are). Memory: one (n_answers, K) array.
    """
    k = answers.n_classes
    w, i, label = answers.worker_idx, answers.item_idx, answers.label_idx
    loo = log_scores[:, i].T - log_confusions[w, :, label]
    posterior, _ = softmax_rows(loo)
    decided = np.argmax(posterior, axis=1)
    weight = (posterior.max(axis=1) - 1.0 / k) / (1.0 - 1.0 / k) if k > 1 else np.ones(w.size)
    if answers.gold_item_idx.size:
        known = answers.gold_of()[i]
        on_gold = known >= 0
        decided = np.where(on_gold, known, decided)
        weight = np.where(on_gold, 1.0, weight)
    flat = np.bincount(
        (w * k + decided) * k + label, weights=weight, minlength=answers.n_workers * k * k
    )
    return np.asarray(flat.reshape(answers.n_workers, k, k), dtype=np.float64)


def _posterior_share(
    counts: FloatArray,
    statistic: Callable[[FloatArray], np.ndarray],
    *,
    draws: int,
    seed: int,
) -> FloatArray:
    """Per worker, the share of `draws` confusion matrices from Dirichlet(counts + 1) rows for
    which `statistic` (a (draws, workers, K, K) stack -> (draws, workers) bool) holds."""
    alpha = np.asarray(counts, dtype=np.float64) + 1.0
    n_workers = alpha.shape[0]
    rng = np.random.default_rng(seed)
    out = np.empty(n_workers, dtype=np.float64)
    for start in range(0, n_workers, _CHUNK):
        block = alpha[start : start + _CHUNK]
        samples = rng.gamma(block[None], size=(draws, *block.shape))
        samples /= samples.sum(axis=-1, keepdims=True)
        out[start : start + _CHUNK] = statistic(samples).mean(axis=0)
    return out


def spam_evidence(
    counts: FloatArray, *, threshold: float, draws: int = DEFAULT_DRAWS, seed: int = 0
) -> FloatArray:
    """P(worker's spammer score >= threshold | its evidence counts), per worker, by Monte Carlo
    over Dirichlet(counts + 1) rows. Few counts leave the rows wide, so the probability stays high
    and nobody is declared a spammer on thin evidence."""

    def informative(samples: FloatArray) -> np.ndarray:
        k = samples.shape[-1]
        scores = spammer_scores(samples.reshape(-1, k, k)).reshape(samples.shape[:2])
        return np.asarray(scores >= threshold)

    return _posterior_share(counts, informative, draws=draws, seed=seed)


def kappa(confusions: FloatArray, *, class_priors: FloatArray) -> FloatArray:
    """Cohen's kappa between the true class and the answer of each (K, K) matrix in a stack:
    `(p_o - p_e) / (1 - p_e)` with `p_o = sum_k prior_k A[k, k]` (right this often) and
    `p_e = sum_k prior_k q_k`, `q` the answers' own label mix (right this often by chance).

    0 for every spammer, whatever its label mix and however skewed the classes (an "always the
    common class" answerer is right often, never better than chance); below 0 for a worker who
    is reliably wrong; for a one-coin worker under equal priors `(K a - 1) / (K - 1)`, the square
    root of its spammer score. Classes weigh by their priors, so a rare class a worker has seen
    little of leaves the estimate narrow where a per-class average would stay wide."""
    matrices = np.asarray(confusions, dtype=np.float64)
    priors = np.asarray(class_priors, dtype=np.float64)
    observed = np.einsum("k,...kk->...", priors, matrices)
    mix = np.einsum("k,...kl->...l", priors, matrices)
    chance = np.einsum("l,...l->...", priors, mix)
    return np.asarray((observed - chance) / np.maximum(1.0 - chance, 1e-12), dtype=np.float64)


def right_evidence(
    counts: FloatArray,
    *,
    class_priors: FloatArray,
    min_kappa: float = 0.0,
    draws: int = DEFAULT_DRAWS,
    seed: int = 0,
) -> FloatArray:
    """P(worker's kappa > min_kappa | its evidence counts), per worker, by Monte Carlo over
    Dirichlet(counts + 1) rows; with the default 0: how sure we are the worker is right more
    often than chance, not merely informative.

    The spammer score cannot tell the two apart (a permuted worker scores like a perfect one), so
    it alone let a binary spammer whose evidence happened to lean the *wrong* way be trusted and
    paid on the replay (temp, 0 of 3 gold items passed). Trust asks for both.
    """

    def right(samples: FloatArray) -> np.ndarray:
        return np.asarray(kappa(samples, class_priors=class_priors) > min_kappa)

    return _posterior_share(counts, right, draws=draws, seed=seed)


def likely_spammers(
    counts: FloatArray, *, threshold: float, certainty: float, seed: int = 0
) -> np.ndarray:
    """Boolean mask: workers whose score is below `threshold` with probability >= `certainty`."""
    return np.asarray(spam_evidence(counts, threshold=threshold, seed=seed) <= 1.0 - certainty)
