"""The live-campaign rules: closing, queue order, tempered posteriors, explanations, model cap."""

from __future__ import annotations

import numpy as np
import pytest

from quality.aggregation.policy import (
    DISAGREEMENT_PENALTY,
    Policy,
    annotator_quality,
    answer_weights,
    cap_annotator,
    explain,
    one_coin_matrix,
    queue_priority,
    runner_up_of,
    should_close,
    tempered_posterior,
)

POLICY = Policy(min_labels=2, max_labels=5, target_confidence=0.95)


@pytest.mark.parametrize(
    ("n", "confidence", "gold", "closes"),
    [
        (1, 0.99, False, False),  # below min_labels, however sure
        (2, 0.96, False, True),
        (2, 0.94, False, False),
        (4, 0.50, False, False),
        (5, 0.50, False, True),  # max_labels
        (3, 1.00, True, False),  # gold never closes: it scores workers ...
        (50, 1.00, True, False),  # ... every one of them
    ],
)
def test_should_close(n: int, confidence: float, gold: bool, closes: bool) -> None:
    assert should_close(policy=POLICY, n_labels=n, confidence=confidence, is_gold=gold) is closes


def test_cold_start_two_agreeing_labels_reach_095_but_one_does_not() -> None:
    default = one_coin_matrix(0.85, 2)
    one = tempered_posterior(labels=[1], matrices=[default], class_priors=np.full(2, 0.5))
    two = tempered_posterior(labels=[1, 1], matrices=[default] * 2, class_priors=np.full(2, 0.5))
    assert one[1] == pytest.approx(0.85)
    assert two[1] > 0.95
    three_classes = one_coin_matrix(0.85, 3)
    assert (
        tempered_posterior(
            labels=[0, 0], matrices=[three_classes] * 2, class_priors=np.full(3, 1 / 3)
        )[0]
        > 0.95
    )


def test_temperature_softens_but_keeps_the_decision() -> None:
    m = one_coin_matrix(0.8, 3)
    sharp = tempered_posterior(labels=[2, 2, 1], matrices=[m] * 3, class_priors=np.full(3, 1 / 3))
    soft = tempered_posterior(
        labels=[2, 2, 1], matrices=[m] * 3, class_priors=np.full(3, 1 / 3), temperature=0.5
    )
    assert np.argmax(sharp) == np.argmax(soft) == 2
    assert soft[2] < sharp[2]


def test_queue_order_in_progress_first_least_certain_first_disagreement_sooner() -> None:
    unsure = queue_priority(confidence=0.6, model_disagrees=False, labeled=True)
    sure = queue_priority(confidence=0.9, model_disagrees=False, labeled=True)
    contested = queue_priority(confidence=0.9, model_disagrees=True, labeled=True)
    unlabeled = queue_priority(confidence=0.5, model_disagrees=False, labeled=False)
    assert unsure < sure
    assert contested == sure - DISAGREEMENT_PENALTY
    assert max(unsure, sure, contested) < unlabeled < 0  # 0 is a brand-new item's default


def test_explanation_weights_add_up_to_the_log_odds() -> None:
    good, weak = one_coin_matrix(0.9, 3), one_coin_matrix(0.6, 3)
    priors = np.array([0.5, 0.3, 0.2])
    labels, matrices = [0, 0, 1], [good, weak, good]
    for temperature in (1.0, 0.4):
        posterior = tempered_posterior(
            labels=labels, matrices=matrices, class_priors=priors, temperature=temperature
        )
        why = explain(
            labels=labels,
            matrices=matrices,
            posterior=posterior,
            class_priors=priors,
            temperature=temperature,
        )
        assert why.chosen == 0
        assert why.runner_up == 1
        log_odds = np.log(posterior[why.chosen] / posterior[why.runner_up])
        assert why.prior_weight + sum(why.weights) == pytest.approx(log_odds)
        assert why.weights[0] > why.weights[1] > 0 > why.weights[2]


def test_answer_weights_match_explain() -> None:
    confusions = np.stack([one_coin_matrix(0.9, 3), one_coin_matrix(0.6, 3)])
    posteriors = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])
    chosen = np.array([0, 2])
    runner_up = runner_up_of(posteriors, chosen)
    np.testing.assert_array_equal(runner_up, [1, 1])
    weights = answer_weights(
        worker_idx=np.array([0, 1, 1]),
        item_idx=np.array([0, 0, 1]),
        label_idx=np.array([0, 1, 2]),
        confusions=confusions,
        chosen=chosen,
        runner_up=runner_up,
    )
    assert weights[0] == pytest.approx(np.log(0.9 / 0.05))
    assert weights[1] == pytest.approx(np.log(0.2 / 0.6))
    assert weights[2] == pytest.approx(np.log(0.6 / 0.2))


def test_cap_shrinks_toward_the_population_only_as_far_as_needed() -> None:
    priors = np.array([0.5, 0.5])
    population = one_coin_matrix(0.7, 2)
    model = one_coin_matrix(0.99, 2)
    capped = cap_annotator(model, population=population, class_priors=priors, max_quality=0.85)
    assert annotator_quality(capped, class_priors=priors) == pytest.approx(0.85)
    np.testing.assert_allclose(capped.sum(axis=1), 1.0)
    modest = one_coin_matrix(0.8, 2)
    np.testing.assert_array_equal(
        cap_annotator(modest, population=population, class_priors=priors, max_quality=0.85),
        modest,
    )


def test_expected_gain_matches_enumeration_by_hand() -> None:
    from quality.aggregation.policy import expected_gain

    a = one_coin_matrix(0.8, 2)
    p = np.array([[0.6, 0.4]])
    # One label: "0" keeps class 0 (right w.p. 0.6*0.8); "1" flips it (right w.p. 0.4*0.8).
    assert expected_gain(p, matrix=a, labels=1)[0] == pytest.approx(0.6 * 0.8 + 0.4 * 0.8 - 0.6)
    # A decision one label cannot flip gains nothing from one label.
    assert expected_gain(np.array([[0.9, 0.1]]), matrix=a, labels=1)[0] == pytest.approx(0.0)


def test_label_value_high_when_labels_can_settle_an_item_low_when_they_cannot() -> None:
    from quality.aggregation.policy import label_value, lookahead

    good, weak = one_coin_matrix(0.9, 2), one_coin_matrix(0.35, 4)
    posteriors = np.array([[0.5, 0.5], [0.9, 0.1], [0.999, 0.001]])
    value = label_value(posteriors, matrix=good)
    assert value[0] > 0.1 > value[1] > 0.0
    assert value[2] == pytest.approx(0.0, abs=1e-6)
    # Four classes, contributors barely better than chance: more of the same settles little.
    undecided = np.array([[0.4, 0.3, 0.2, 0.1]])
    assert label_value(undecided, matrix=weak)[0] < label_value(posteriors[:1], matrix=good)[0]
    # Vectorised and one item at a time agree; bounded enumeration.
    one = [label_value(row, matrix=good)[0] for row in posteriors]
    np.testing.assert_allclose(value, one)
    assert (lookahead(2), lookahead(4), lookahead(8), lookahead(100)) == (3, 3, 2, 1)


def test_items_close_when_labels_are_not_worth_buying() -> None:
    policy = Policy(min_labels=2, max_labels=10, target_confidence=0.95, min_gain=0.01)
    assert should_close(policy=policy, n_labels=2, confidence=0.6, is_gold=False, value=0.005)
    assert not should_close(policy=policy, n_labels=2, confidence=0.6, is_gold=False, value=0.02)
    assert not should_close(policy=policy, n_labels=1, confidence=0.6, is_gold=False, value=0.0)
    assert not should_close(policy=policy, n_labels=3, confidence=0.6, is_gold=True, value=0.0)
    # Without a value (an uncalibrated campaign) only the target and max_labels close.
    assert not should_close(policy=policy, n_labels=3, confidence=0.6, is_gold=False)
