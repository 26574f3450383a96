"""Scoring aggregated labels against known truth."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True)
class Score:
    correct: int
    total: int

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else float("nan")


def score(labels: NDArray[np.intp], *, gold: Mapping[int, int]) -> Score:
    """How many of the gold items (item code -> label code) got their gold label."""
    if not gold:
        return Score(correct=0, total=0)
    items = np.fromiter(gold.keys(), dtype=np.intp, count=len(gold))
    truth = np.fromiter(gold.values(), dtype=np.intp, count=len(gold))
    return Score(correct=int(np.sum(labels[items] == truth)), total=len(gold))
