"""Per-item updates with fixed worker parameters, and the ML model as one more annotator."""

from __future__ import annotations

import numpy as np
import pytest

from quality.aggregation import Answers, dawid_skene, item_posterior, posteriors_given
from tests.quality.test_aggregation import one_coin, simulate


@pytest.fixture
def fitted() -> tuple[Answers, np.ndarray]:
    return simulate(confusions=np.stack([one_coin(0.7, 3)] * 5), n_items=120, seed=11)


def test_item_posterior_reproduces_the_full_run(fitted: tuple[Answers, np.ndarray]) -> None:
    answers, _ = fitted
    result = dawid_skene(answers)
    assert result.confusions is not None
    for item in (0, 17, 119):
        mine = answers.item_idx == item
        labels = dict(
            zip(answers.worker_idx[mine].tolist(), answers.label_idx[mine].tolist(), strict=True)
        )
        posterior = item_posterior(
            labels_by_workers=labels, confusions=result.confusions, priors=result.class_priors
        )
        np.testing.assert_allclose(posterior, result.posteriors[item], atol=1e-12)


def test_posteriors_given_reproduces_the_full_run(fitted: tuple[Answers, np.ndarray]) -> None:
    answers, _ = fitted
    result = dawid_skene(answers)
    assert result.confusions is not None
    again = posteriors_given(answers, confusions=result.confusions, priors=result.class_priors)
    np.testing.assert_allclose(again, result.posteriors, atol=1e-12)


def test_keys_can_be_any_ids_and_newcomers_use_the_default() -> None:
    good = one_coin(0.9, 2)
    confusions = {"alice": good, "model:v3": one_coin(0.6, 2)}
    priors = np.array([0.5, 0.5])
    alone = item_posterior(labels_by_workers={"alice": 1}, confusions=confusions, priors=priors)
    assert alone[1] == pytest.approx(0.9)
    with_model = item_posterior(
        labels_by_workers={"alice": 1, "model:v3": 1}, confusions=confusions, priors=priors
    )
    assert with_model[1] > alone[1]
    with pytest.raises(KeyError, match="bob"):
        item_posterior(labels_by_workers={"bob": 0}, confusions=confusions, priors=priors)
    newcomer = item_posterior(
        labels_by_workers={"bob": 0}, confusions=confusions, priors=priors, default_confusion=good
    )
    assert newcomer[0] == pytest.approx(0.9)


def test_no_answers_gives_the_priors() -> None:
    priors = np.array([0.2, 0.3, 0.5])
    posterior = item_posterior(labels_by_workers={}, confusions={}, priors=priors)
    np.testing.assert_allclose(posterior, priors)


def test_the_model_earns_its_weight_as_one_more_annotator() -> None:
    answers, truth = simulate(confusions=np.stack([one_coin(0.65, 2)] * 3), n_items=300, seed=12)
    rng = np.random.default_rng(13)
    items = np.arange(300)
    good_model = np.where(rng.random(300) < 0.95, truth, 1 - truth)
    with_good, model = answers.with_annotator(item_idx=items, label_idx=good_model)
    assert model == answers.n_workers
    useless_model = rng.integers(0, 2, size=300)
    with_useless, _ = answers.with_annotator(item_idx=items, label_idx=useless_model)

    base = np.mean(dawid_skene(answers).labels == truth)
    helped = dawid_skene(with_good)
    assert np.mean(helped.labels == truth) > base
    # Four annotators are little evidence, so the prior keeps it below its true 0.95; it still
    # stands well above the 0.65 crowd.
    assert helped.worker_quality[model] > 0.8
    assert helped.worker_quality[model] > helped.worker_quality[:model].max() + 0.1
    ignored = dawid_skene(with_useless)
    assert abs(ignored.worker_quality[model] - 0.5) < 0.1
    assert np.mean(ignored.labels == truth) >= base - 0.02
