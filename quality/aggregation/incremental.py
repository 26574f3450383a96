"""Posteriors from fixed worker parameters: the cheap update run on each submission.

Between two full EM runs a campaign's confusion matrices and class priors stay fixed, so an item's
posterior is one E-step over that item's few answers. With the parameters a full run returned,
these functions reproduce that run's posteriors exactly.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any, TypeVar

import numpy as np
from numpy.typing import ArrayLike, NDArray

from quality.aggregation._numeric import FloatArray, clamp_gold, softmax_by_class, softmax_rows
from quality.aggregation._passes import item_layout, log_likelihood_scores
from quality.aggregation.answers import Answers

# Annotator keys: contributor ids, or any key the caller picks for the ML model.
Key = TypeVar("Key", bound=Hashable)


def item_posterior(
    *,
    labels_by_workers: Mapping[Key, int],
    confusions: Mapping[Key, ArrayLike] | NDArray[Any],
    priors: ArrayLike,
    default_confusion: ArrayLike | None = None,
) -> FloatArray:
    """P(true class | this item's answers) for one item, as a (K,) array.

    `labels_by_workers` maps each annotator of the item (a contributor's id, or any key chosen for
    the ML model) to its label code. `confusions` maps the same keys to (K, K) matrices, rows the
    true class; a (W, K, K) array is accepted with integer keys. Annotators without a matrix get
    `default_confusion` (use `Result.prior_confusion`: a newcomer is an average worker); without
    one, they raise `KeyError`.
    """
    prior_array = np.asarray(priors, dtype=np.float64)
    log_scores = np.log(prior_array)
    for worker, label in labels_by_workers.items():
        matrix = _confusion_of(worker, confusions=confusions, default=default_confusion)
        if matrix.shape != (prior_array.size, prior_array.size):
            raise ValueError(f"confusion of {worker!r} has shape {matrix.shape}")
        log_scores += np.log(matrix[:, label])
    posterior, _ = softmax_rows(log_scores[None, :])
    return np.asarray(posterior[0], dtype=np.float64)


def _confusion_of(
    worker: Key,
    *,
    confusions: Mapping[Key, ArrayLike] | NDArray[Any],
    default: ArrayLike | None,
) -> FloatArray:
    if isinstance(confusions, np.ndarray):
        if isinstance(worker, int | np.integer) and 0 <= int(worker) < confusions.shape[0]:
            return np.asarray(confusions[int(worker)], dtype=np.float64)
    elif worker in confusions:
        return np.asarray(confusions[worker], dtype=np.float64)
    if default is None:
        raise KeyError(f"no confusion matrix for annotator {worker!r} and no default_confusion")
    return np.asarray(default, dtype=np.float64)


def posteriors_given(answers: Answers, *, confusions: ArrayLike, priors: ArrayLike) -> FloatArray:
    """One vectorised E-step over all items with fixed (W, K, K) confusions and (K,) priors.

    Gold items in `answers` stay clamped. Used to re-score a batch of items without refitting.
    """
    matrices = np.asarray(confusions, dtype=np.float64)
    if matrices.shape != (answers.n_workers, answers.n_classes, answers.n_classes):
        raise ValueError(f"confusions shape {matrices.shape} does not match the answers")
    scores = log_likelihood_scores(
        item_layout(answers),
        log_confusions=np.log(matrices),
        log_priors=np.log(np.asarray(priors, dtype=np.float64)),
    )
    by_class, _ = softmax_by_class(scores)
    return clamp_gold(np.ascontiguousarray(by_class.T), answers)
