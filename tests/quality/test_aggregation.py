"""Aggregators on small hand-made crowds whose right answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from quality.aggregation import (
    DEFAULT_METHOD,
    METHODS,
    NEEDS_GOLD,
    Answers,
    aggregate,
    dawid_skene,
    encode_answers,
    gold_dawid_skene,
    majority_vote,
    one_coin_dawid_skene,
    weighted_vote,
)
from quality.aggregation._numeric import digamma, trigamma
from quality.aggregation._passes import _stable_order
from quality.aggregation.confusion import fit_prior_strength


def simulate(
    *,
    confusions: np.ndarray,
    n_items: int,
    seed: int,
    class_shares: np.ndarray | None = None,
) -> tuple[Answers, np.ndarray]:
    """Every worker answers every item, drawing from its own confusion matrix."""
    rng = np.random.default_rng(seed)
    n_workers, k, _ = confusions.shape
    truth = rng.choice(k, size=n_items, p=class_shares)
    workers = np.repeat(np.arange(n_workers), n_items)
    items = np.tile(np.arange(n_items), n_workers)
    cumulative = np.cumsum(confusions[workers, truth[items]], axis=1)
    labels = np.minimum((rng.random(workers.size)[:, None] > cumulative).sum(axis=1), k - 1)
    answers = Answers.from_arrays(
        worker_idx=workers, item_idx=items, label_idx=labels, n_classes=k, n_items=n_items
    )
    return answers, truth


def one_coin(accuracy: float, k: int) -> np.ndarray:
    matrix = np.full((k, k), (1 - accuracy) / (k - 1))
    np.fill_diagonal(matrix, accuracy)
    return matrix


ALL_METHODS = sorted(METHODS)


@pytest.mark.parametrize("method", ALL_METHODS)
def test_perfect_workers_give_the_truth_with_full_confidence(method: str) -> None:
    answers, truth = simulate(
        confusions=np.stack([np.eye(3)] * 4), n_items=60, seed=1, class_shares=None
    )
    if method in NEEDS_GOLD:
        answers = answers.with_gold({0: int(truth[0])})
    result = aggregate(answers, method=method)
    np.testing.assert_array_equal(result.labels, truth)
    assert result.confidence.min() > 0.99
    np.testing.assert_allclose(result.posteriors.sum(axis=1), 1.0)
    assert result.method == method


def test_dawid_skene_reads_a_permuting_worker_as_information() -> None:
    k = 3
    permutation = np.array([1, 2, 0])
    adversary = np.eye(k)[permutation]  # always answers permutation[true class]
    confusions = np.stack([one_coin(0.65, k)] * 3 + [adversary])
    answers, truth = simulate(confusions=confusions, n_items=300, seed=2)

    ds = dawid_skene(answers)
    mv = majority_vote(answers)
    assert np.mean(ds.labels == truth) > 0.97
    assert np.mean(ds.labels == truth) > np.mean(mv.labels == truth) + 0.1
    assert ds.confusions is not None
    learned = ds.confusions[3].argmax(axis=1)
    np.testing.assert_array_equal(learned, permutation)
    # The adversary is perfectly informative once decoded, but it is never *correct*.
    assert ds.worker_quality[3] < 0.1


def test_spammers_get_no_weight() -> None:
    k = 4
    honest = [one_coin(0.7, k)] * 4
    spammers = [np.full((k, k), 1 / k)] * 8
    answers, truth = simulate(confusions=np.stack(honest + spammers), n_items=400, seed=3)

    mv = majority_vote(answers)
    for result in (dawid_skene(answers), weighted_vote(answers), one_coin_dawid_skene(answers)):
        assert np.mean(result.labels == truth) > np.mean(mv.labels == truth) + 0.05
    ds = dawid_skene(answers)
    assert ds.worker_quality[:4].min() > ds.worker_quality[4:].max()
    assert np.all(np.abs(ds.worker_quality[4:] - 1 / k) < 0.1)


@pytest.mark.parametrize("method", ALL_METHODS)
def test_same_input_same_output(method: str) -> None:
    answers, truth = simulate(confusions=np.stack([one_coin(0.65, 3)] * 5), n_items=80, seed=4)
    if method in NEEDS_GOLD:
        answers = answers.with_gold({1: int(truth[1])})
    first, second = aggregate(answers, method=method), aggregate(answers, method=method)
    np.testing.assert_array_equal(first.labels, second.labels)
    np.testing.assert_array_equal(first.posteriors, second.posteriors)


def test_row_order_does_not_change_labels() -> None:
    rows = [
        ("w1", "t1", "cat"),
        ("w2", "t1", "dog"),
        ("w3", "t1", "dog"),
        ("w1", "t2", "bird"),
        ("w2", "t2", "bird"),
        ("w3", "t2", "cat"),
        ("w1", "t3", "dog"),
        ("w2", "t3", "cat"),
        ("w3", "t4", "bird"),
    ] * 1
    outputs = []
    for order in (rows, rows[::-1], rows[3:] + rows[:3]):
        answers, codebook = encode_answers(
            workers=[r[0] for r in order], tasks=[r[1] for r in order], labels=[r[2] for r in order]
        )
        assert codebook.classes == ("bird", "cat", "dog")
        for method in ("majority_vote", "dawid_skene", "weighted_vote"):
            result = aggregate(answers, method=method)
            decoded = dict(zip(codebook.items, codebook.decode_labels(result.labels), strict=True))
            outputs.append((method, tuple(sorted(decoded.items()))))
    by_method: dict[str, set[tuple[tuple[str, str], ...]]] = {}
    for method, labels in outputs:
        by_method.setdefault(method, set()).add(labels)
    assert all(len(variants) == 1 for variants in by_method.values())


def test_majority_tie_goes_to_the_more_frequent_class() -> None:
    # "b" is the commoner label overall, so the 1-1 tie on t1 goes to "b" although "a" sorts first.
    answers, codebook = encode_answers(
        workers=["w1", "w2", "w1", "w2", "w3"],
        tasks=["t1", "t1", "t2", "t2", "t2"],
        labels=["a", "b", "b", "b", "b"],
    )
    result = majority_vote(answers)
    assert codebook.decode_labels(result.labels) == ["b", "b"]
    assert result.confidence[0] == pytest.approx(0.5)


def test_majority_tie_between_equally_frequent_classes_goes_to_the_lower_class() -> None:
    # Natural order: "9" < "10", whatever order the rows came in.
    answers, codebook = encode_answers(workers=["w1", "w2"], tasks=["t1", "t1"], labels=["10", "9"])
    assert codebook.classes == ("9", "10")
    assert codebook.decode_labels(majority_vote(answers).labels) == ["9"]


def test_gold_items_are_clamped_and_anchor_the_workers() -> None:
    # Three workers flip every binary label, two are right: the majority is always wrong, and so
    # is plain Dawid-Skene, which starts from it. A few gold items expose the flippers.
    flip = np.array([[0.0, 1.0], [1.0, 0.0]])
    confusions = np.stack([flip] * 3 + [one_coin(0.9, 2)] * 2)
    answers, truth = simulate(confusions=confusions, n_items=200, seed=5)
    plain = dawid_skene(answers)
    assert np.mean(plain.labels == truth) < 0.2

    gold = {item: int(truth[item]) for item in range(0, 200, 10)}
    anchored = gold_dawid_skene(answers.with_gold(gold))
    assert np.mean(anchored.labels == truth) > 0.95
    gold_items = np.array(list(gold))
    np.testing.assert_array_equal(anchored.posteriors[gold_items].max(axis=1), 1.0)
    np.testing.assert_array_equal(anchored.labels[gold_items], truth[gold_items])
    assert anchored.method == "gold_dawid_skene"


def test_gold_dawid_skene_refuses_to_run_without_gold() -> None:
    answers, _ = simulate(confusions=np.stack([np.eye(2)] * 2), n_items=5, seed=6)
    with pytest.raises(ValueError, match="gold"):
        gold_dawid_skene(answers)


def test_a_worker_seen_once_stays_near_the_population() -> None:
    answers, _ = simulate(confusions=np.stack([one_coin(0.8, 3)] * 6), n_items=100, seed=7)
    once = Answers.from_arrays(
        worker_idx=np.append(answers.worker_idx, 6),
        item_idx=np.append(answers.item_idx, 0),
        label_idx=np.append(answers.label_idx, 2),
        n_classes=3,
    )
    result = dawid_skene(once)
    assert result.confusions is not None
    assert result.prior_confusion is not None
    newcomer = result.confusions[6]
    assert np.all(np.isfinite(np.log(result.confusions)))
    assert np.all((newcomer > 0.01) & (newcomer < 0.99))
    # Its rows sit between the population matrix and its single answer, nearer the population.
    assert np.abs(newcomer - result.prior_confusion).max() < 0.5
    np.testing.assert_allclose(result.confusions.sum(axis=2), 1.0)


def test_a_class_nobody_answered_keeps_a_finite_prior() -> None:
    answers, _ = simulate(confusions=np.stack([np.eye(2)] * 3), n_items=20, seed=8)
    widened = Answers.from_arrays(
        worker_idx=answers.worker_idx,
        item_idx=answers.item_idx,
        label_idx=answers.label_idx,
        n_classes=3,
    )
    for method in ("dawid_skene", "one_coin_dawid_skene", "majority_vote", "weighted_vote"):
        result = aggregate(widened, method=method)
        assert np.all(np.isfinite(result.posteriors))
        assert set(result.labels.tolist()) <= {0, 1}


def test_items_nobody_answered_get_the_class_prior() -> None:
    answers = Answers.from_arrays(
        worker_idx=[0, 1, 0, 1], item_idx=[0, 0, 1, 1], label_idx=[1, 1, 1, 0], n_items=3
    )
    for method in ("dawid_skene", "one_coin_dawid_skene", "majority_vote"):
        result = aggregate(answers, method=method)
        np.testing.assert_allclose(result.posteriors[2], result.class_priors)


def test_answers_reject_codes_out_of_range() -> None:
    with pytest.raises(ValueError, match="label"):
        Answers(
            worker_idx=np.array([0]),
            item_idx=np.array([0]),
            label_idx=np.array([2]),
            n_workers=1,
            n_items=1,
            n_classes=2,
        )
    with pytest.raises(ValueError, match="same length"):
        Answers.from_arrays(worker_idx=[0, 1], item_idx=[0], label_idx=[0])


def test_unknown_method_names_the_known_ones() -> None:
    answers = Answers.from_arrays(worker_idx=[0], item_idx=[0], label_idx=[0])
    with pytest.raises(KeyError, match="dawid_skene"):
        aggregate(answers, method="nope")
    assert DEFAULT_METHOD in METHODS


def test_digamma_matches_known_values() -> None:
    euler_gamma = 0.5772156649015329
    values = digamma(np.array([1.0, 0.5, 10.0, 1e-3]))
    expected = [-euler_gamma, -euler_gamma - 2 * np.log(2), 2.251752589066721, -1000.5755719318]
    np.testing.assert_allclose(values, expected, rtol=1e-9)


def test_trigamma_is_the_derivative_of_digamma() -> None:
    x = np.array([1e-3, 0.3, 1.0, 7.5, 300.0])
    h = 1e-6 * x
    numeric = (digamma(x + h) - digamma(x - h)) / (2 * h)
    np.testing.assert_allclose(trigamma(x), numeric, rtol=1e-5)
    assert trigamma(np.array([1.0]))[0] == pytest.approx(np.pi**2 / 6, rel=1e-10)


def test_radix_item_order_is_the_stable_argsort() -> None:
    rng = np.random.default_rng(9)
    items = rng.integers(0, 200_000, size=50_000).astype(np.intp)
    np.testing.assert_array_equal(
        _stable_order(items, n_items=200_000), np.argsort(items, kind="stable")
    )


def test_learned_precision_follows_the_spread_of_workers() -> None:
    alike = np.array([[[80.0, 20.0], [20.0, 80.0]]] * 6)
    spread = np.array([[[95.0, 5.0], [5.0, 95.0]], [[55.0, 45.0], [45.0, 55.0]]] * 3)
    population = np.array([[0.8, 0.2], [0.2, 0.8]])
    start = np.array([2.0, 2.0])
    homogeneous = fit_prior_strength(alike, prior_confusion=population, start=start)
    heterogeneous = fit_prior_strength(spread, prior_confusion=population, start=start)
    assert np.all(homogeneous > 1000)
    assert np.all(heterogeneous < 50)
