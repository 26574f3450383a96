"""A full refit of a live campaign: calibration gate, temperature, spammers, the capped model."""

from __future__ import annotations

import numpy as np
import pytest

from quality.aggregation import Answers
from quality.aggregation.calibration import GRID, fit_temperature
from quality.aggregation.campaign import (
    agreement_accuracy,
    calibration_items,
    fit_campaign,
    live_parameters,
    live_scores,
    pair_agreement,
)
from quality.aggregation.policy import annotator_quality, one_coin_matrix


def crowd(
    *,
    accuracies: list[float],
    n_items: int,
    per_item: int,
    seed: int,
    k: int = 2,
) -> tuple[Answers, np.ndarray]:
    """Each item answered by `per_item` distinct random workers; one-coin workers."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, k, n_items)
    workers, items, labels = [], [], []
    for item in range(n_items):
        for w in rng.choice(len(accuracies), size=per_item, replace=False):
            right = rng.random() < accuracies[w]
            wrong = (truth[item] + rng.integers(1, k)) % k
            workers.append(w)
            items.append(item)
            labels.append(truth[item] if right else wrong)
    answers = Answers.from_arrays(
        worker_idx=workers,
        item_idx=items,
        label_idx=labels,
        n_workers=len(accuracies),
        n_items=n_items,
        n_classes=k,
    )
    return answers, truth


def test_agreement_accuracy_inverts_the_agreement_rate() -> None:
    for k, a in ((2, 0.8), (4, 0.6)):
        rate = a**2 + (1 - a) ** 2 / (k - 1)
        got = agreement_accuracy(
            pairs=1e6, agreeing=rate * 1e6, n_classes=k, prior_accuracy=0.85, prior_pairs=20
        )
        assert got == pytest.approx(a, abs=1e-4)
    # No pairs yet: the prior; agreement below chance: chance.
    assert agreement_accuracy(
        pairs=0, agreeing=0, n_classes=2, prior_accuracy=0.85, prior_pairs=20
    ) == pytest.approx(0.85)
    assert agreement_accuracy(
        pairs=100, agreeing=0, n_classes=2, prior_accuracy=0.85, prior_pairs=0
    ) == pytest.approx(0.5)


def test_pair_agreement_counts() -> None:
    answers = Answers.from_arrays(
        worker_idx=[0, 1, 2, 0, 1], item_idx=[0, 0, 0, 1, 1], label_idx=[1, 1, 0, 0, 0]
    )
    assert pair_agreement(answers) == (4.0, 2.0)  # item 0: 3 pairs, 1 agreeing; item 1: 1 and 1


def test_a_sparse_campaign_is_not_calibrated_and_runs_on_the_agreement_worker() -> None:
    answers, _ = crowd(accuracies=[0.8] * 20, n_items=40, per_item=3, seed=1)
    assert calibration_items(answers) == 40
    fit = fit_campaign(answers)  # 40 < CALIBRATION_ITEMS
    assert not fit.calibrated
    assert not fit.likely_spammers.any()
    assert not fit.trusted.any()
    live = live_parameters(fit)
    np.testing.assert_allclose(live.confusions[3], one_coin_matrix(fit.default_accuracy, 2))
    np.testing.assert_allclose(live.class_priors, [0.5, 0.5])
    assert live.temperature == 1.0
    assert 0.7 < fit.default_accuracy < 0.9


def test_a_calibrated_campaign_finds_its_spammers_and_trusts_its_workers() -> None:
    accuracies = [0.85] * 14 + [0.5] * 6  # six uniform spammers
    answers, truth = crowd(accuracies=accuracies, n_items=400, per_item=5, seed=2)
    fit = fit_campaign(answers)
    assert fit.calibrated
    assert np.mean(fit.labels == truth) > 0.93
    assert fit.likely_spammers[14:].sum() >= 5
    assert not fit.likely_spammers[:14].any()
    assert fit.trusted[:14].all()
    assert not fit.trusted[14:].any()
    assert fit.spam_scores[:14].min() > fit.spam_scores[14:].max()
    assert 0 < fit.temperature <= 1.0


def test_gold_is_clamped_and_counted() -> None:
    answers, truth = crowd(accuracies=[0.8] * 10, n_items=200, per_item=3, seed=3)
    gold = {i: int(truth[i]) for i in range(20)}
    fit = fit_campaign(answers.with_gold(gold))
    np.testing.assert_array_equal(fit.labels[:20], truth[:20])
    assert fit.gold_seen.sum() == 60
    assert 0.6 < fit.gold_passed.sum() / 60 < 1.0
    assert fit.method == "gold_dawid_skene"


def test_the_model_joins_capped_and_only_where_people_labeled() -> None:
    answers, truth = crowd(accuracies=[0.75] * 12, n_items=300, per_item=3, seed=4)
    rng = np.random.default_rng(5)
    model_labels = np.where(rng.random(300) < 0.97, truth, 1 - truth)  # a very good model
    fit = fit_campaign(answers, model_items=np.arange(300), model_labels=model_labels)
    assert fit.model_confusion is not None
    assert fit.model_quality is not None
    assert fit.model_cap is not None
    assert fit.model_quality > fit.model_cap  # earned more than it may carry
    capped = annotator_quality(fit.model_confusion, class_priors=fit.class_priors)
    assert capped == pytest.approx(fit.model_cap)
    # The model makes the decisions better than the crowd alone.
    alone = fit_campaign(answers)
    assert np.mean(fit.labels == truth) > np.mean(alone.labels == truth)
    scores, crowd_scores = live_scores(
        answers, fit, model_items=np.arange(300), model_labels=model_labels
    )
    assert not np.allclose(scores, crowd_scores)

    # An item nobody labeled: the model's vote alone never reaches the campaign's bar of 0.95.
    unlabeled, _ = crowd(accuracies=[0.75] * 12, n_items=300, per_item=3, seed=4)
    extra = Answers(
        worker_idx=unlabeled.worker_idx,
        item_idx=unlabeled.item_idx,
        label_idx=unlabeled.label_idx,
        n_workers=12,
        n_items=301,
        n_classes=2,
    )
    fit = fit_campaign(extra, model_items=np.arange(301), model_labels=np.append(model_labels, 1))
    assert fit.posteriors[300].max() < 0.95


def test_temperature_is_low_for_correlated_errors_and_one_for_independent_ones() -> None:
    # Independent workers: the fit's own posteriors are calibrated.
    answers, _ = crowd(accuracies=[0.8] * 10, n_items=400, per_item=5, seed=6)
    fit = fit_campaign(answers)
    assert fit.temperature >= 0.8
    # Hard items fool every worker at once: Dawid-Skene is over-confident there.
    rng = np.random.default_rng(7)
    n, per = 400, 5
    truth = rng.integers(0, 2, n)
    hard = rng.random(n) < 0.3
    workers = np.concatenate([rng.choice(10, per, replace=False) for _ in range(n)])
    items = np.repeat(np.arange(n), per)
    accuracy = np.where(hard[items], 0.45, 0.95)
    labels = np.where(rng.random(n * per) < accuracy, truth[items], 1 - truth[items])
    correlated = Answers.from_arrays(worker_idx=workers, item_idx=items, label_idx=labels)
    assert fit_campaign(correlated).temperature < fit.temperature
    assert GRID.min() > 0
    assert fit_temperature.__doc__


def test_a_degenerate_slide_is_rejected_by_the_agreement_anchor() -> None:
    # Mostly singletons: EM alone could call everything one class. The anchored fit does not.
    answers, truth = crowd(accuracies=[0.8] * 30, n_items=600, per_item=1, seed=8)
    fit = fit_campaign(answers)
    assert not fit.calibrated
    assert 0.35 < fit.class_priors[0] < 0.65
    assert np.mean(fit.labels == truth) > 0.7


def test_before_calibration_gold_answers_alone_judge_workers() -> None:
    accuracies = [0.95] * 6 + [0.5] * 2  # two uniform spammers
    answers, truth = crowd(accuracies=accuracies, n_items=60, per_item=8, seed=21)
    fit = fit_campaign(answers)
    assert not fit.calibrated
    assert not fit.judging
    assert not fit.trusted.any()
    assert not fit.likely_spammers.any()
    gold = {i: int(truth[i]) for i in range(60)}
    judged = fit_campaign(answers.with_gold(gold), calibration=10**6)
    assert not judged.calibrated
    assert judged.judging
    assert judged.trusted[:6].all()
    assert not judged.trusted[6:].any()


def test_the_typical_contributor_is_the_median_trusted_worker() -> None:
    from quality.aggregation.campaign import typical_confusion

    accuracies = [0.9] * 10 + [0.5] * 5
    answers, _ = crowd(accuracies=accuracies, n_items=400, per_item=5, seed=22)
    fit = fit_campaign(answers)
    assert fit.typical_confusion is not None
    # A trusted (good) worker's matrix, not the pooled one the spammers dilute.
    assert annotator_quality(fit.typical_confusion, class_priors=fit.class_priors) > 0.85
    assert live_parameters(fit).typical is fit.typical_confusion
    assert typical_confusion(fit.confusions, fit.worker_quality, np.zeros(15)) is None
    sparse, _ = crowd(accuracies=[0.8] * 20, n_items=40, per_item=3, seed=1)
    assert live_parameters(fit_campaign(sparse)).typical is None  # not calibrated: not valued


def test_before_calibration_agreement_with_the_others_judges_workers_beside_few_gold() -> None:
    accuracies = [0.85] * 8 + [0.5] * 4  # four uniform spammers
    answers, truth = crowd(accuracies=accuracies, n_items=60, per_item=8, seed=23)
    gold = {i: int(truth[i]) for i in range(3)}  # 5 % gold: at most 3 gold answers per worker
    fit = fit_campaign(answers.with_gold(gold), calibration=10**6)
    assert not fit.calibrated
    assert fit.judging
    # Three gold answers alone cannot prove anyone; agreeing with the vote of the other labels
    # on each item can.
    assert fit.trusted[:8].sum() >= 6
    assert not fit.trusted[8:].any()


def test_a_reliably_wrong_worker_is_informative_but_never_trusted() -> None:
    accuracies = [0.85] * 14 + [0.1]  # the last one answers the opposite class 90 % of the time
    answers, _ = crowd(accuracies=accuracies, n_items=400, per_item=5, seed=24)
    fit = fit_campaign(answers)
    assert fit.calibrated
    assert fit.informative[14] > 0.99  # its labels carry information (a permuted worker) ...
    assert not fit.trusted[14]  # ... but its rewards would pay for wrong answers
    assert not fit.likely_spammers[14]
    assert fit.trusted[:14].all()


def test_a_calibrated_campaign_with_nobody_proven_values_labels_as_the_cold_start_worker() -> None:
    # 300 items with three labels each from 450 workers of two answers: calibrated (overlap),
    # but no worker has shown enough to be proven.
    answers, _ = crowd(accuracies=[0.85] * 450, n_items=300, per_item=3, seed=25)
    fit = fit_campaign(answers, prior_accuracy=0.8)
    assert fit.calibrated
    assert not fit.trusted.any()
    assert fit.typical_confusion is not None
    np.testing.assert_allclose(fit.typical_confusion, one_coin_matrix(0.8, 2))
    assert live_parameters(fit).typical is fit.typical_confusion
