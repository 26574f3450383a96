"""Accuracy smoke tests on real crowd data with expert gold (shared/data/crowd, read-only).

Thresholds sit a little under what bench/quality measured, so a regression fails loudly while
floating-point noise does not. Skipped when the data is not beside the repository.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from quality.aggregation import METHODS, Answers, aggregate, score
from quality.aggregation.io import read_answers, read_gold


def crowd_data_dir() -> Path | None:
    candidates = [
        os.environ.get("KYODO_CROWD_DATA", ""),
        str(Path(__file__).resolve().parents[3] / "shared" / "data" / "crowd"),
        "/work/shared/data/crowd",
    ]
    return next((Path(c) for c in candidates if c and Path(c, "rte").is_dir()), None)


DATA = crowd_data_dir()
pytestmark = pytest.mark.skipif(DATA is None, reason="shared/data/crowd not found")


def load(name: str) -> tuple[Answers, dict[int, int]]:
    assert DATA is not None
    gold = read_gold(DATA / name / "gold.csv")
    answers, codebook = read_answers(DATA / name / "answers.csv", extra_classes=gold.values())
    return answers, codebook.encode_gold(gold)


@pytest.mark.parametrize(
    ("name", "method", "floor"),
    [
        ("rte", "dawid_skene", 0.92),
        ("temp", "dawid_skene", 0.935),
        ("bluebirds", "dawid_skene", 0.88),
        ("d_product", "dawid_skene", 0.93),
        ("rte", "majority_vote", 0.86),
        ("rte", "weighted_vote", 0.91),
        ("rte", "one_coin_dawid_skene", 0.92),
    ],
)
def test_accuracy_floor(name: str, method: str, floor: float) -> None:
    answers, gold = load(name)
    assert score(aggregate(answers, method=method).labels, gold=gold).accuracy >= floor


def test_four_classes_and_every_method_on_them() -> None:
    answers, gold = load("s_rel")
    assert score(aggregate(answers).labels, gold=gold).accuracy >= 0.60
    # Every method on a slice (the suite must stay fast), with some gold to anchor on.
    head = 20_000
    sliced = Answers.from_arrays(
        worker_idx=answers.worker_idx[:head],
        item_idx=answers.item_idx[:head],
        label_idx=answers.label_idx[:head],
        n_workers=answers.n_workers,
        n_items=answers.n_items,
        n_classes=answers.n_classes,
        gold=dict(list(gold.items())[:200]),
    )
    for method in METHODS:
        result = aggregate(sliced, method=method)
        assert result.posteriors.shape == (answers.n_items, 4)
