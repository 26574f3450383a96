"""One full refit of a live campaign: Dawid-Skene (gold-anchored when there is gold), the ML model
as one more annotator with a capped confusion matrix, worker skills and spammer suspicion.

`fit_campaign` is what the periodic Celery refit runs on a campaign's arrays and what the replay
benchmark runs on its simulated campaigns, so both measure the same thing.

The model (`model_items`, `model_labels`: its predicted class per item) joins EM only on items with
at least one crowd answer or a gold label: on an item nobody else labeled, the model would agree
with itself and EM would credit it for that. Its confusion matrix is estimated like anyone's and
then capped (`policy.cap_annotator`) so the model is never trusted more than the campaign's
`model_cap_percentile`-th percentile contributor among those with at least `min_answers` answers
(the population matrix when there are none yet): it can stand in for one good contributor, never
for several. Final posteriors, for every item the model predicted, use the capped matrix.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from quality.aggregation._numeric import (
    FloatArray,
    IntArray,
    clamp_gold,
    decide,
    label_frequencies,
    softmax_rows,
    vote_counts,
)
from quality.aggregation._passes import item_layout, log_likelihood_scores
from quality.aggregation.answers import Answers
from quality.aggregation.calibration import fit_temperature
from quality.aggregation.confusion import dawid_skene, gold_dawid_skene
from quality.aggregation.policy import annotator_quality, cap_annotator, one_coin_matrix
from quality.aggregation.result import Result
from quality.aggregation.spam import (
    evidence_counts,
    right_evidence,
    spam_evidence,
    spammer_scores,
)

# Documented defaults (see docs/quality.md); the product reads them from settings.
PRIOR_ACCURACY = 0.85  # the cold-start worker: right 85 % of the time, errors spread evenly
SPAM_THRESHOLD = 0.1
SPAM_CERTAINTY = 0.95  # suspended when this sure to score below the threshold ...
TRUST_CERTAINTY = 0.9  # ... trusted (paid) when this sure to score at or above it and kappa > 0
MODEL_CAP_PERCENTILE = 90.0
MIN_ANSWERS = 20
PRIOR_PAIRS = 20.0  # how many label pairs the cold-start belief is worth against observed agreement
CALIBRATION_ITEMS = 100  # items with >= 3 labels (or answered gold items) before a fit is trusted
CALIBRATION_OVERLAP = 3  # three views: what Dawid-Skene needs to tell workers apart (Kruskal)


@dataclass(frozen=True)
class CampaignFit:
    """A refit's outcome. Until it is `calibrated`, a live campaign should score items with
    `default_confusion` for every worker and uniform class priors (`live_parameters`)."""

    method: str
    result: Result  # the EM fit itself (its last worker is the model when there is one)
    confusions: FloatArray  # (n_workers, K, K) of the crowd workers, codes as in the answers
    prior_confusion: FloatArray  # a worker the fit has not seen is assumed to be this
    class_priors: FloatArray
    posteriors: FloatArray  # (n_items, K): crowd and (capped) model
    labels: IntArray
    crowd_posteriors: FloatArray  # (n_items, K): the same workers without the model
    worker_quality: FloatArray  # P(answer right) per worker
    spam_scores: FloatArray
    likely_spammers: np.ndarray  # bool per worker: suspend
    trusted: np.ndarray  # bool per worker: proven informative and right; their labels are paid
    informative: FloatArray  # P(spammer score >= threshold | the worker's evidence)
    answers_per_worker: IntArray
    gold_seen: IntArray
    gold_passed: IntArray
    calibrated: bool
    judging: bool  # workers are judged (suspended, trusted): calibrated, or on gold answers
    temperature: float  # multiplies every log-likelihood (calibration.py)
    default_accuracy: float  # the one-coin accuracy implied by how often labels agree
    default_confusion: FloatArray
    typical_confusion: FloatArray | None = None  # the next label's contributor (label_value)
    model_confusion: FloatArray | None = None  # capped
    model_quality: float | None = None  # before the cap
    model_cap: float | None = None


def pair_agreement(answers: Answers) -> tuple[float, float]:
    """(pairs of labels on the same item, pairs among them that agree), summed over items."""
    per_class = vote_counts(answers)
    per_item = per_class.sum(axis=1)
    pairs = float((per_item * (per_item - 1)).sum() / 2)
    agreeing = float((per_class * (per_class - 1)).sum() / 2)
    return pairs, agreeing


def agreement_accuracy(
    *, pairs: float, agreeing: float, n_classes: int, prior_accuracy: float, prior_pairs: float
) -> float:
    """The one-coin accuracy `a` whose chance of two labels agreeing, a^2 + (1-a)^2 / (K-1),
    matches the observed agreement rate (shrunk toward `prior_accuracy` by `prior_pairs` pairs).

    It needs no EM and no worker identities, so it is trustworthy from the first overlapping
    labels on: the campaign's belief about its average worker before a fit can be trusted.
    """
    m = 1.0 / max(n_classes - 1, 1)
    prior_rate = prior_accuracy**2 + m * (1.0 - prior_accuracy) ** 2
    rate = (agreeing + prior_pairs * prior_rate) / (pairs + prior_pairs)
    chance = 1.0 / n_classes
    if rate <= chance:
        return chance
    # (1 + m) a^2 - 2 m a + (m - rate) = 0, the root at or above chance.
    return float((m + np.sqrt(max(m * m - (1 + m) * (m - rate), 0.0))) / (1 + m))


def calibration_items(answers: Answers) -> int:
    """Items that let a fit tell workers apart: three or more labels, or a gold label."""
    per_item = np.bincount(answers.item_idx, minlength=answers.n_items)
    overlapping = per_item >= CALIBRATION_OVERLAP
    overlapping[answers.gold_item_idx[per_item[answers.gold_item_idx] > 0]] = True
    return int(overlapping.sum())


@dataclass(frozen=True)
class LiveParameters:
    """What a live campaign scores items with between two refits:
    `log P(k | answers) = log class_priors[k] + temperature * sum log confusions[w, k, l]`."""

    confusions: FloatArray  # (W, K, K), worker codes as in the fit
    default: FloatArray  # (K, K): a worker the fit has not seen
    class_priors: FloatArray
    temperature: float
    model: FloatArray | None  # (K, K) capped, or None
    # (K, K): the contributor `policy.label_value` assumes; None: labels are not valued (the
    # campaign is not calibrated, or nobody is proven yet), items close on the target alone.
    typical: FloatArray | None


def live_parameters(fit: CampaignFit) -> LiveParameters:
    """The fit's own parameters once it is calibrated; before, everyone is the one-coin worker
    implied by the observed agreement, the classes are equally likely, and the model stays out."""
    if fit.calibrated:
        return LiveParameters(
            confusions=fit.confusions,
            default=fit.prior_confusion,
            class_priors=fit.class_priors,
            temperature=fit.temperature,
            model=fit.model_confusion,
            typical=fit.typical_confusion,
        )
    k = fit.class_priors.size
    everyone = np.broadcast_to(fit.default_confusion, fit.confusions.shape).copy()
    return LiveParameters(everyone, fit.default_confusion, np.full(k, 1.0 / k), 1.0, None, None)


def fit_campaign(
    answers: Answers,
    *,
    model_items: IntArray | None = None,
    model_labels: IntArray | None = None,
    spam_threshold: float = SPAM_THRESHOLD,
    spam_certainty: float = SPAM_CERTAINTY,
    trust_certainty: float = TRUST_CERTAINTY,
    model_cap_percentile: float = MODEL_CAP_PERCENTILE,
    min_answers: int = MIN_ANSWERS,
    prior_accuracy: float = PRIOR_ACCURACY,
    prior_answers: float | None = None,
    prior_pairs: float = PRIOR_PAIRS,
    calibration: int = CALIBRATION_ITEMS,
) -> CampaignFit:
    """Fit a campaign's answers (gold attached with `Answers.with_gold`); see the module doc.

    The population matrix (the centre of every worker's prior) is pulled toward the one-coin
    worker implied by the observed agreement (`agreement_accuracy`) with pseudo-counts worth
    `prior_answers` answers (default: as many as the answers themselves, spread over the true
    classes). Pooled EM counts alone let a sparse campaign slide into a degenerate explanation
    (on 10 % of RTE, "class-0 items are labeled at random" with a class prior of 0.87, 51 %
    accurate); the agreement rate needs no EM and cannot slide. Class priors get pseudo-counts
    of one answered item's worth spread as the labels are spread, for the same reason.

    The fit is `calibrated` once `calibration` items have three or more labels or a gold label:
    before that, EM with so little overlap is too easily wrong (on the replay benchmark, trusting
    such fits closed items early on wrong worker estimates), and workers are judged (suspended or
    trusted) on their gold answers and their agreement with the equal-weight vote of the other
    labels (`consensus_evidence_counts`), or not at all in a campaign without gold.
    """
    if answers.n_answers == 0:
        raise ValueError("a campaign fit needs at least one answer")
    n_workers = answers.n_workers
    model = None
    if model_items is not None and model_labels is not None and model_items.size > 0:
        model = (np.asarray(model_items, dtype=np.intp), np.asarray(model_labels, dtype=np.intp))
    fitted_on = answers
    if model is not None:
        evidence = np.bincount(answers.item_idx, minlength=answers.n_items) > 0
        evidence[answers.gold_item_idx] = True
        joins = evidence[model[0]]
        fitted_on, _ = answers.with_annotator(item_idx=model[0][joins], label_idx=model[1][joins])
    pairs, agreeing = pair_agreement(answers)
    default_accuracy = agreement_accuracy(
        pairs=pairs,
        agreeing=agreeing,
        n_classes=answers.n_classes,
        prior_accuracy=prior_accuracy,
        prior_pairs=prior_pairs,
    )
    default_confusion = one_coin_matrix(default_accuracy, answers.n_classes)
    calibrated = calibration_items(answers) >= calibration
    weight = answers.n_answers / answers.n_classes if prior_answers is None else prior_answers
    population = weight * default_confusion
    answered_items = float(np.count_nonzero(np.bincount(answers.item_idx)))
    class_counts = answered_items * label_frequencies(answers)
    solver = gold_dawid_skene if answers.gold_item_idx.size else dawid_skene
    fit = solver(fitted_on, population=population, class_counts=class_counts)
    if fit.confusions is None or fit.prior_confusion is None:  # pragma: no cover - EM always has
        raise RuntimeError("Dawid-Skene returned no confusion matrices")
    priors = fit.class_priors
    confusions = fit.confusions[:n_workers]
    quality = np.einsum("k,wkk->w", priors, confusions)
    answered = np.bincount(answers.worker_idx, minlength=n_workers)

    log_priors = np.log(priors)
    log_confusions = np.log(confusions)
    crowd_likelihood = log_likelihood_scores(
        item_layout(answers), log_confusions=log_confusions, log_priors=np.zeros_like(priors)
    )
    model_confusion = model_quality = cap = None
    likelihood = crowd_likelihood
    if model is not None:
        raw = fit.confusions[n_workers]
        model_quality = annotator_quality(raw, class_priors=priors)
        seasoned = quality[answered >= min_answers]
        cap = (
            float(np.percentile(seasoned, model_cap_percentile))
            if seasoned.size
            else annotator_quality(fit.prior_confusion, class_priors=priors)
        )
        model_confusion = cap_annotator(
            raw, population=fit.prior_confusion, class_priors=priors, max_quality=cap
        )
        likelihood = crowd_likelihood.copy()
        likelihood[:, model[0]] += np.log(model_confusion)[:, model[1]]
    # The temperature judges the crowd's fit alone: the model is capped separately.
    temperature, _ = fit_temperature(
        answers, likelihood=crowd_likelihood, log_priors=log_priors, log_confusions=log_confusions
    )
    scores = log_priors[:, None] + temperature * likelihood
    crowd = _posteriors(log_priors[:, None] + temperature * crowd_likelihood, answers)
    posteriors = _posteriors(scores.copy(), answers)
    gold_seen, gold_passed = gold_record(answers)
    # Before calibration the fit's own decisions are no evidence, but gold answers are, and so is
    # agreement with the equal-weight vote of the item's other labels (the agreement worker the
    # live campaign scores everyone as): a campaign with gold judges its workers on these until
    # it is calibrated.
    judging = calibrated or bool(gold_seen.sum())
    if calibrated:
        counts = evidence_counts(
            answers, log_scores=scores, log_confusions=temperature * log_confusions
        )
    else:
        counts = consensus_evidence_counts(answers, default_confusion=default_confusion)
    informative = spam_evidence(counts, threshold=spam_threshold)
    spammers = (informative <= 1.0 - spam_certainty) & judging
    proven_informative = (informative >= trust_certainty) & judging & ~spammers
    right = right_evidence(counts, class_priors=priors)
    trusted = proven_informative & (right >= trust_certainty)
    return CampaignFit(
        method=fit.method,
        result=fit,
        confusions=confusions,
        prior_confusion=fit.prior_confusion,
        class_priors=priors,
        posteriors=posteriors,
        labels=decide(posteriors, class_priors=priors),
        crowd_posteriors=crowd,
        worker_quality=quality,
        spam_scores=spammer_scores(confusions),
        likely_spammers=spammers,
        trusted=trusted,
        informative=informative,
        answers_per_worker=answered,
        gold_seen=gold_seen,
        gold_passed=gold_passed,
        calibrated=calibrated,
        judging=judging,
        temperature=temperature,
        default_accuracy=default_accuracy,
        default_confusion=default_confusion,
        typical_confusion=typical_confusion(
            confusions,
            quality,
            np.where(proven_informative, answered, 0),
            fallback=one_coin_matrix(prior_accuracy, answers.n_classes),
        ),
        model_confusion=model_confusion,
        model_quality=model_quality,
        model_cap=cap,
    )


def typical_confusion(
    confusions: FloatArray,
    quality: FloatArray,
    weights: FloatArray,
    *,
    fallback: FloatArray | None = None,
) -> FloatArray | None:
    """The contributor `policy.label_value` values the next label of: the worker at the
    answer-weighted median of quality among the *proven* ones (`weights`: their answers, 0 for
    everyone else; `fit_campaign` passes those proven informative); `fallback` when nobody is
    proven yet. Proven workers only, and a median: the
    pooled matrix of a crowd with 30 % spammers, or an EM fit they pulled toward a degenerate
    explanation, is a weak worker whose labels look worthless, so items would close early on
    posteriors of 0.6 to 0.8 (on the replay, temp lost 5 points with spammers that way). Ties go
    to the lower worker code.

    `fit_campaign` passes the cold-start worker (KYODO_QUALITY_PRIOR_ACCURACY, one coin) as the
    fallback: a fixed assumption no spammer can drag down, so a calibrated campaign values its
    labels from calibration on instead of waiting for its first proven worker (on the replay's
    d_product, where the rare class keeps anyone from being proven until a fifth of the stream,
    that wait cost 4 to 9 points of the labels)."""
    w = np.asarray(weights, dtype=np.float64)
    if w.sum() <= 0:
        return None if fallback is None else np.asarray(fallback, dtype=np.float64)
    order = np.lexsort((np.arange(quality.size), quality))
    cumulative = np.cumsum(w[order])
    median = order[int(np.searchsorted(cumulative, cumulative[-1] / 2.0))]
    return np.asarray(confusions[median], dtype=np.float64)


def consensus_evidence_counts(answers: Answers, *, default_confusion: FloatArray) -> FloatArray:
    """`spam.evidence_counts` under the uncalibrated live model: every labeler the agreement
    worker, classes equally likely. Each answer is compared with the vote of its item's *other*
    labels (gold answers with the known label), weighted by how sure that vote is; EM plays no
    part, so a sparse campaign's degenerate fit cannot vouch for anyone."""
    log_default = np.log(np.asarray(default_confusion, dtype=np.float64))
    everyone = np.broadcast_to(log_default, (answers.n_workers, *log_default.shape))
    scores = log_likelihood_scores(
        item_layout(answers), log_confusions=everyone, log_priors=np.zeros(answers.n_classes)
    )
    return evidence_counts(answers, log_scores=scores, log_confusions=everyone)


def _posteriors(scores: FloatArray, answers: Answers) -> FloatArray:
    """(n_items, K) posteriors from (K, n_items) log scores, gold items clamped."""
    posteriors, _ = softmax_rows(np.ascontiguousarray(scores.T))
    return clamp_gold(posteriors, answers)


def gold_record(answers: Answers) -> tuple[IntArray, IntArray]:
    """Per worker: answers on gold items, and how many of those matched the gold label."""
    known = answers.gold_of()[answers.item_idx]
    on_gold = known >= 0
    seen = np.bincount(answers.worker_idx[on_gold], minlength=answers.n_workers)
    passed = np.bincount(
        answers.worker_idx[on_gold & (known == answers.label_idx)], minlength=answers.n_workers
    )
    return seen.astype(np.intp), passed.astype(np.intp)


def live_scores(
    answers: Answers,
    fit: CampaignFit,
    *,
    model_items: IntArray | None = None,
    model_labels: IntArray | None = None,
) -> tuple[FloatArray, FloatArray]:
    """(K, n_items) log scores of every item under `live_parameters(fit)`: with the model (when it
    takes part) and without it. What a live campaign holds between refits, for all items at once.
    """
    live = live_parameters(fit)
    k = answers.n_classes
    log_priors = np.log(live.class_priors)
    crowd = log_likelihood_scores(
        item_layout(answers),
        log_confusions=np.log(live.confusions[: answers.n_workers]),
        log_priors=np.zeros(k),
    )
    crowd *= live.temperature
    crowd += log_priors[:, None]
    scores = crowd
    if live.model is not None and model_items is not None and model_labels is not None:
        scores = crowd.copy()
        scores[:, model_items] += live.temperature * np.log(live.model)[:, model_labels]
    return scores, crowd


def scores_to_posteriors(scores: FloatArray, answers: Answers) -> FloatArray:
    """(n_items, K) posteriors of (K, n_items) log scores, gold items clamped."""
    return _posteriors(scores.copy(), answers)
