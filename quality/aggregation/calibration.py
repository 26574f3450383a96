"""How far a fit's posteriors can be believed: a temperature learned by leave-one-out prediction.

Dawid-Skene multiplies the answers' likelihoods as if workers erred independently given the true
class. They do not: hard items fool many workers at once, so the posterior of an item with five
agreeing answers is much surer than the data justify, and a live campaign that closes items at
0.95 would close them too early. The usual remedy for an over-confident probabilistic classifier
is temperature scaling (Guo et al., "On calibration of modern neural networks", ICML 2017); here
the temperature `t` multiplies the log-likelihood, `log P(k | answers) = log prior[k] + t * sum
log A[w, k, l] + const`, and is chosen without any held-out labels: for every answer on an item
with other answers, predict it from the *others* (`P(l | others) = sum_k P_t(k | others)
A[w, k, l]`) and keep the `t` under which these predictions are likeliest.

`t` is searched on a grid in [MIN_TEMPERATURE, 1]: a fit is never made surer than Dawid-Skene
itself. An item's decision is unchanged by `t` unless its answers and the class prior disagree.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from quality.aggregation._numeric import FloatArray, IntArray, softmax_rows
from quality.aggregation.answers import Answers

MIN_TEMPERATURE = 0.1
GRID = np.round(np.linspace(MIN_TEMPERATURE, 1.0, 19), 3)
_CHUNK = 250_000  # answers per pass: bounds memory to a few (chunk, K) arrays


def _predictable(answers: Answers) -> IntArray:
    """Indices of the answers on non-gold items with two or more answers: those that can be
    predicted from the item's others (a gold item's class is known: nothing to predict)."""
    per_item = np.bincount(answers.item_idx, minlength=answers.n_items)
    on_gold = np.zeros(answers.n_items, dtype=bool)
    on_gold[answers.gold_item_idx] = True
    return np.flatnonzero((per_item[answers.item_idx] >= 2) & ~on_gold[answers.item_idx])


def loo_log_likelihoods(
    answers: Answers,
    *,
    likelihood: FloatArray,
    log_priors: FloatArray,
    log_confusions: FloatArray,
    temperatures: Sequence[float],
) -> list[float]:
    """`loo_log_likelihood` for several temperatures at once: the gathers that do not depend on
    the temperature are made once per chunk of answers, not once per temperature."""
    keep = _predictable(answers)
    totals = [0.0] * len(temperatures)
    for start in range(0, keep.size, _CHUNK):
        rows = keep[start : start + _CHUNK]
        w, i = answers.worker_idx[rows], answers.item_idx[rows]
        own = log_confusions[w, :, answers.label_idx[rows]]  # (n, K): log A[w, k, answered]
        rest = likelihood[:, i].T - own
        own_probability = np.exp(own)
        for j, temperature in enumerate(temperatures):
            posterior, _ = softmax_rows(log_priors[None, :] + temperature * rest)
            predicted = np.einsum("nk,nk->n", posterior, own_probability)
            totals[j] += float(np.log(np.maximum(predicted, 1e-300)).sum())
    return totals


def loo_log_likelihood(
    answers: Answers,
    *,
    likelihood: FloatArray,
    log_priors: FloatArray,
    log_confusions: FloatArray,
    temperature: float,
) -> float:
    """Sum over answers on items with two or more answers of log P(answer | the item's others).

    `likelihood` is the (K, n_items) sum of every annotator's log-likelihood per class (the
    model's too, if it takes part); `log_confusions` the (W, K, K) logs of the workers' matrices.
    Gold items are left out: their class is known, so there is nothing to predict.
    """
    return loo_log_likelihoods(
        answers,
        likelihood=likelihood,
        log_priors=log_priors,
        log_confusions=log_confusions,
        temperatures=[temperature],
    )[0]


def fit_temperature(
    answers: Answers, *, likelihood: FloatArray, log_priors: FloatArray, log_confusions: FloatArray
) -> tuple[float, float]:
    """The grid temperature whose leave-one-out predictions of the answers are likeliest (1.0 when
    no item has two answers), and that leave-one-out log-likelihood."""
    scores = loo_log_likelihoods(
        answers,
        likelihood=likelihood,
        log_priors=log_priors,
        log_confusions=log_confusions,
        temperatures=[float(t) for t in GRID],
    )
    # Ties (e.g. nothing to predict) go to the highest temperature: no tempering without evidence.
    best = max(range(len(GRID)), key=lambda j: (round(scores[j], 9), j))
    return float(GRID[best]), scores[best]
