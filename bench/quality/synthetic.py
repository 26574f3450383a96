"""Synthetic crowd for the speed test: integer-coded answers with known truth (numpy only)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True)
class SyntheticCrowd:
    worker_idx: NDArray[np.intp]
    item_idx: NDArray[np.intp]
    label_idx: NDArray[np.intp]
    truth: NDArray[np.intp]
    spammers: NDArray[np.intp]
    n_workers: int
    n_items: int
    n_classes: int


def make_crowd(
    *,
    n_items: int = 100_000,
    n_workers: int = 5_000,
    n_classes: int = 5,
    answers_per_item: int = 10,
    spammer_share: float = 0.2,
    seed: int = 20240501,
) -> SyntheticCrowd:
    """Honest workers have their own confusion matrices (accuracy 0.4-0.9 per true class, errors
    spread by a Dirichlet draw); spammers answer uniformly at random. No worker sees an item
    twice. Class shares are unequal (a Dirichlet draw) so class priors matter."""
    rng = np.random.default_rng(seed)
    class_shares = rng.dirichlet(np.full(n_classes, 5.0))
    truth = rng.choice(n_classes, size=n_items, p=class_shares)

    accuracy = rng.uniform(0.4, 0.9, size=(n_workers, n_classes))
    errors = rng.dirichlet(np.ones(n_classes - 1), size=(n_workers, n_classes))
    confusions = np.empty((n_workers, n_classes, n_classes))
    for true_class in range(n_classes):
        others = [c for c in range(n_classes) if c != true_class]
        confusions[:, true_class, true_class] = accuracy[:, true_class]
        confusions[:, true_class, others] = (1 - accuracy[:, true_class, None]) * errors[
            :, true_class
        ]
    spammers = rng.choice(n_workers, size=round(spammer_share * n_workers), replace=False)
    confusions[spammers] = 1.0 / n_classes

    workers = rng.integers(0, n_workers, size=(n_items, answers_per_item))
    while True:  # redraw the rows in which a worker appears twice: no duplicate (worker, item)
        ordered = np.sort(workers, axis=1)
        clash = (ordered[:, 1:] == ordered[:, :-1]).any(axis=1)
        if not clash.any():
            break
        workers[clash] = rng.integers(0, n_workers, size=(int(clash.sum()), answers_per_item))
    worker_idx = workers.ravel()
    item_idx = np.repeat(np.arange(n_items), answers_per_item)
    # Inverse-CDF sampling of every answer at once from its worker's row for the item's truth.
    cumulative = np.cumsum(confusions[worker_idx, truth[item_idx]], axis=1)
    draws = rng.random(worker_idx.size)[:, None]
    label_idx = np.minimum((draws > cumulative).sum(axis=1), n_classes - 1)
    order = rng.permutation(worker_idx.size)  # answers arrive interleaved, not item by item
    return SyntheticCrowd(
        worker_idx=worker_idx[order].astype(np.intp),
        item_idx=item_idx[order].astype(np.intp),
        label_idx=label_idx[order].astype(np.intp),
        truth=truth.astype(np.intp),
        spammers=np.sort(spammers).astype(np.intp),
        n_workers=n_workers,
        n_items=n_items,
        n_classes=n_classes,
    )
