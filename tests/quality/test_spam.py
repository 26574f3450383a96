"""Raykar-Yu spammer scores and the evidence needed to suspend or trust a worker."""

from __future__ import annotations

import numpy as np
import pytest

from quality.aggregation import Answers
from quality.aggregation.policy import one_coin_matrix
from quality.aggregation.spam import (
    evidence_counts,
    kappa,
    likely_spammers,
    right_evidence,
    spam_evidence,
    spammer_scores,
)


def test_scores_of_known_matrices() -> None:
    spammer = np.tile([0.2, 0.5, 0.3], (3, 1))  # rank one, whatever its label mix
    scores = spammer_scores(np.stack([np.eye(3), spammer, np.eye(3)[[1, 2, 0]]]))
    np.testing.assert_allclose(scores, [1.0, 0.0, 1.0], atol=1e-12)
    # One-coin: ((K a - 1) / (K - 1))^2.
    for k, a in ((2, 0.66), (4, 0.7)):
        expected = ((k * a - 1) / (k - 1)) ** 2
        assert spammer_scores(one_coin_matrix(a, k))[0] == pytest.approx(expected)


def test_evidence_separates_spammers_from_workers_and_waits_on_thin_evidence() -> None:
    counts = np.stack(
        [
            np.array([[40.0, 40.0], [40.0, 40.0]]),  # 160 answers, independent of the truth
            np.array([[70.0, 10.0], [10.0, 70.0]]),  # 160 answers, 87 % right
            np.array([[2.0, 1.0], [1.0, 2.0]]),  # 6 answers: nobody can tell
        ]
    )
    p = spam_evidence(counts, threshold=0.1)
    assert p[0] < 0.05
    assert p[1] > 0.99
    assert 0.05 < p[2] < 0.95
    np.testing.assert_array_equal(
        likely_spammers(counts, threshold=0.1, certainty=0.95), [True, False, False]
    )
    np.testing.assert_array_equal(spam_evidence(counts, threshold=0.1), p)  # seeded


def test_evidence_counts_leave_each_answer_out_and_skip_unsure_items() -> None:
    k = 2
    m = np.log(one_coin_matrix(0.9, k))
    # Item 0: workers 0, 1, 2 all say 1. Item 1: only worker 0 (its own answer decides nothing).
    answers = Answers.from_arrays(
        worker_idx=[0, 1, 2, 0], item_idx=[0, 0, 0, 1], label_idx=[1, 1, 1, 0], n_classes=k
    )
    log_confusions = np.stack([m] * 3)
    scores = np.zeros((k, 2))
    for i, label in zip(answers.item_idx, answers.label_idx, strict=True):
        scores[:, i] += m[:, label]
    counts = evidence_counts(answers, log_scores=scores, log_confusions=log_confusions)
    # Worker 0 on item 0: the others say 1 with posterior 0.9^2 / (0.9^2 + 0.1^2) = 0.988.
    assert counts[0, 1, 1] == pytest.approx((0.81 / 0.82 - 0.5) / 0.5)
    assert counts[0, :, 0].sum() == pytest.approx(0.0)  # item 1: no one else, no evidence
    gold = answers.with_gold({1: 1})
    counts = evidence_counts(gold, log_scores=scores, log_confusions=log_confusions)
    assert counts[0, 1, 0] == pytest.approx(1.0)  # gold counts fully: worker 0 was wrong


def test_kappa_is_zero_for_any_spammer_and_the_root_score_for_a_one_coin_worker() -> None:
    skewed = np.array([0.8, 0.15, 0.05])
    spammer = np.tile([0.9, 0.05, 0.05], (3, 1))  # "always the common class", rank one
    np.testing.assert_allclose(kappa(spammer, class_priors=skewed), 0.0, atol=1e-12)
    for k, a in ((2, 0.66), (4, 0.7)):
        worker = one_coin_matrix(a, k)
        expected = np.sqrt(spammer_scores(worker)[0])
        assert kappa(worker, class_priors=np.full(k, 1 / k)) == pytest.approx(expected)
    assert kappa(np.eye(2)[[1, 0]], class_priors=np.array([0.5, 0.5])) == pytest.approx(-1.0)


def test_trust_needs_answers_right_not_merely_informative() -> None:
    counts = np.stack(
        [
            np.array([[70.0, 10.0], [10.0, 70.0]]),  # 87 % right
            np.array([[10.0, 70.0], [70.0, 10.0]]),  # reliably wrong: informative, never paid
            np.array([[140.0, 0.0], [20.0, 0.0]]),  # always says 0 on a skewed campaign
            np.array([[2.0, 0.0], [0.0, 1.0]]),  # 3 right answers: too few to tell
        ]
    )
    priors = np.array([0.5, 0.5])
    informative = spam_evidence(counts, threshold=0.1)
    right = right_evidence(counts, class_priors=priors)
    assert informative[0] > 0.99
    assert right[0] > 0.99
    assert informative[1] > 0.99
    assert right[1] < 0.01
    assert informative[2] < 0.05  # right 88 % of the time by raw count, and a spammer
    assert 0.5 < right[3] < 0.99
    np.testing.assert_array_equal(right_evidence(counts, class_priors=priors), right)  # seeded
