"""The common output of every aggregator."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]


@dataclass(frozen=True)
class Result:
    """Labels and posteriors per item, and what the method learned about workers.

    `confusions[w, k, l]` is the probability that worker `w` answers `l` on an item whose true
    class is `k` (rows sum to 1); `prior_confusion` is what a worker with no answers is assumed to
    be, which is what an incremental update should use for a newcomer. Vote-based methods have no
    confusion matrices.
    """

    method: str
    labels: IntArray
    posteriors: FloatArray
    class_priors: FloatArray
    worker_quality: FloatArray
    confusions: FloatArray | None = None
    prior_confusion: FloatArray | None = None
    iterations: int = 0
    converged: bool = True
    # log P(answers, gold labels | fitted parameters) for EM methods; NaN for votes.
    log_likelihood: float = float("nan")
    # Dirichlet precision per true class (in answers) of the confusion prior, for `dawid_skene`:
    # with `prior_confusion` it gives each worker's full posterior over its confusion matrix.
    prior_strength: FloatArray | None = None

    @property
    def confidence(self) -> FloatArray:
        """The posterior of each item's chosen label."""
        rows = np.arange(self.labels.size)
        return np.asarray(self.posteriors[rows, self.labels], dtype=np.float64)
