"""Weighted box fusion of several contributors' boxes, per-box agreement and acceptance."""

from __future__ import annotations

import numpy as np
import pytest

from quality.aggregation.boxes import Box, fuse_boxes, iou_matrix


def jitter(box: Box, rng: np.random.Generator, scale: float = 0.01) -> Box:
    dx, dy = rng.normal(0, scale, 2)
    return Box(box.x + dx, box.y + dy, box.w, box.h, box.label)


def test_iou() -> None:
    a = np.array([[0.0, 0.0, 0.5, 0.5]])
    b = np.array([[0.0, 0.0, 0.5, 0.5], [0.25, 0.0, 0.75, 0.5], [0.6, 0.6, 0.9, 0.9]])
    np.testing.assert_allclose(iou_matrix(a, b), [[1.0, 1 / 3, 0.0]])


def test_three_contributors_agree_on_two_objects_and_one_adds_a_stray_box() -> None:
    rng = np.random.default_rng(3)
    cat, dog = Box(0.1, 0.1, 0.3, 0.3, 0), Box(0.55, 0.5, 0.35, 0.4, 1)
    stray = Box(0.7, 0.05, 0.1, 0.1, 0)
    contributions = [
        [jitter(cat, rng), jitter(dog, rng)],
        [jitter(dog, rng), jitter(cat, rng)],
        [jitter(cat, rng), jitter(dog, rng), stray],
    ]
    result = fuse_boxes(contributions)
    kept = result.consensus
    assert sorted(b.label for b in kept) == [0, 1]
    fused_cat = next(b for b in kept if b.label == 0)
    assert fused_cat.support == pytest.approx(1.0)
    assert abs(fused_cat.x - cat.x) < 0.02
    assert abs(fused_cat.w - cat.w) < 0.02
    assert result.accepted == [[True, True], [True, True], [True, True, False]]
    dropped = [b for b in result.boxes if not b.kept]
    assert len(dropped) == 1
    assert dropped[0].support == pytest.approx(1 / 3)
    assert result.confidence == pytest.approx(2 / 3)
    assert result.f1[0] == 1.0
    assert result.f1[2] == pytest.approx(2 * 2 / (3 + 2))


def test_weights_decide_a_split_and_shift_the_fused_box() -> None:
    left, right = Box(0.10, 0.1, 0.4, 0.4, 0), Box(0.16, 0.1, 0.4, 0.4, 0)
    result = fuse_boxes([[left], [right]], weights=[3.0, 1.0])
    (fused,) = result.consensus
    assert fused.x == pytest.approx(0.10 * 0.75 + 0.16 * 0.25)
    # A box of another class never merges, and one contributor's box stays below half the weight.
    split = fuse_boxes([[left], [Box(0.1, 0.1, 0.4, 0.4, 1)], []], weights=[1.0, 1.0, 1.0])
    assert split.consensus == []
    assert split.confidence == pytest.approx(2 / 3)
    assert split.f1 == [0.0, 0.0, 1.0]


def test_nobody_drew_anything_is_a_confident_empty_consensus() -> None:
    result = fuse_boxes([[], []])
    assert result.consensus == []
    assert result.confidence == 1.0
    assert result.f1 == [1.0, 1.0]


def test_a_loose_box_is_rejected_against_the_fused_one() -> None:
    target = Box(0.2, 0.2, 0.4, 0.4, 0)
    loose = Box(0.35, 0.35, 0.4, 0.4, 0)  # IoU with the target about 0.22: its own cluster
    result = fuse_boxes([[target], [target], [loose]])
    assert result.accepted == [[True], [True], [False]]


def test_leave_one_out_judges_each_contributor_against_the_others() -> None:
    from quality.aggregation.boxes import leave_one_out_accepted

    rng = np.random.default_rng(5)
    cat = Box(0.1, 0.1, 0.3, 0.3, 0)
    honest = [[jitter(cat, rng)] for _ in range(3)]
    spam = [Box(0.6, 0.6, 0.2, 0.2, 1)]
    assert leave_one_out_accepted([*honest, spam]) == [True, True, True, False]
    assert leave_one_out_accepted([honest[0]]) == [None]  # nobody else: no evidence


def test_box_spammers_need_evidence_then_are_suspended() -> None:
    from quality.aggregation.boxes import box_worker_status

    accepted = np.array([0, 1, 28, 0])
    judged = np.array([2, 30, 30, 25])
    spammers, trusted, informative = box_worker_status(accepted, judged)
    assert spammers.tolist() == [False, True, False, True]  # two misses prove nothing
    assert trusted.tolist() == [False, False, True, False]
    assert informative[2] > 0.99
    again = box_worker_status(accepted, judged)[2]
    np.testing.assert_array_equal(informative, again)  # deterministic
