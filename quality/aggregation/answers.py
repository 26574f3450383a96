"""The common input of every aggregator: integer-coded (worker, item, label) triples.

Aggregators never see strings. `AnswerEncoder` turns arbitrary string triples into codes while they
stream in (one dict lookup per field, so a million rows encode in about a second) and `Codebook`
turns codes back into the caller's strings.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray

IntArray = NDArray[np.intp]

_EMPTY = np.zeros(0, dtype=np.intp)


def _as_index_array(values: ArrayLike, *, name: str) -> IntArray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{name} must hold integers, got dtype {array.dtype}")
    return np.ascontiguousarray(array, dtype=np.intp)


def _check_range(array: IntArray, *, upper: int, name: str) -> None:
    if array.size and (int(array.min()) < 0 or int(array.max()) >= upper):
        raise ValueError(f"{name} codes must lie in [0, {upper})")


@dataclass(frozen=True)
class Answers:
    """Answers as three aligned code arrays, plus optional gold (item code -> label code).

    A (worker, item) pair may occur more than once; each occurrence counts as one answer.
    """

    worker_idx: IntArray
    item_idx: IntArray
    label_idx: IntArray
    n_workers: int
    n_items: int
    n_classes: int
    gold_item_idx: IntArray = field(default_factory=lambda: _EMPTY)
    gold_label_idx: IntArray = field(default_factory=lambda: _EMPTY)

    def __post_init__(self) -> None:
        # Normalise once here so every aggregator can index with these arrays without copies.
        for name in ("worker_idx", "item_idx", "label_idx", "gold_item_idx", "gold_label_idx"):
            object.__setattr__(self, name, _as_index_array(getattr(self, name), name=name))
        n = self.worker_idx.size
        if self.item_idx.size != n or self.label_idx.size != n:
            raise ValueError("worker_idx, item_idx and label_idx must have the same length")
        if self.gold_item_idx.size != self.gold_label_idx.size:
            raise ValueError("gold_item_idx and gold_label_idx must have the same length")
        if self.n_classes < 1:
            raise ValueError("n_classes must be at least 1")
        _check_range(self.worker_idx, upper=self.n_workers, name="worker")
        _check_range(self.item_idx, upper=self.n_items, name="item")
        _check_range(self.label_idx, upper=self.n_classes, name="label")
        _check_range(self.gold_item_idx, upper=self.n_items, name="gold item")
        _check_range(self.gold_label_idx, upper=self.n_classes, name="gold label")
        if np.unique(self.gold_item_idx).size != self.gold_item_idx.size:
            raise ValueError("gold lists an item more than once")

    @classmethod
    def from_arrays(
        cls,
        *,
        worker_idx: ArrayLike,
        item_idx: ArrayLike,
        label_idx: ArrayLike,
        n_workers: int | None = None,
        n_items: int | None = None,
        n_classes: int | None = None,
        gold: Mapping[int, int] | None = None,
    ) -> Answers:
        """Build from code arrays; omitted sizes are taken as max code + 1."""
        workers = _as_index_array(worker_idx, name="worker_idx")
        items = _as_index_array(item_idx, name="item_idx")
        labels = _as_index_array(label_idx, name="label_idx")
        gold_items, gold_labels = _gold_arrays(gold or {})

        def size(given: int | None, *arrays: IntArray) -> int:
            if given is not None:
                return given
            return max((int(a.max()) + 1 for a in arrays if a.size), default=0)

        return cls(
            worker_idx=workers,
            item_idx=items,
            label_idx=labels,
            n_workers=size(n_workers, workers),
            n_items=size(n_items, items, gold_items),
            n_classes=max(size(n_classes, labels, gold_labels), 1),
            gold_item_idx=gold_items,
            gold_label_idx=gold_labels,
        )

    @property
    def n_answers(self) -> int:
        return int(self.worker_idx.size)

    @property
    def gold(self) -> dict[int, int]:
        return dict(zip(self.gold_item_idx.tolist(), self.gold_label_idx.tolist(), strict=True))

    def gold_of(self) -> IntArray:
        """(n_items,) the gold label code of each item, -1 where the item has none."""
        out = np.full(self.n_items, -1, dtype=np.intp)
        out[self.gold_item_idx] = self.gold_label_idx
        return out

    def with_gold(self, gold: Mapping[int, int]) -> Answers:
        """The same answers with `gold` (item code -> label code) as the known labels."""
        gold_items, gold_labels = _gold_arrays(gold)
        return Answers(
            worker_idx=self.worker_idx,
            item_idx=self.item_idx,
            label_idx=self.label_idx,
            n_workers=self.n_workers,
            n_items=self.n_items,
            n_classes=self.n_classes,
            gold_item_idx=gold_items,
            gold_label_idx=gold_labels,
        )

    def with_annotator(self, *, item_idx: ArrayLike, label_idx: ArrayLike) -> tuple[Answers, int]:
        """Append one more annotator (e.g. the ML model) and return its worker code.

        The model is aggregated exactly like a contributor: EM estimates its confusion matrix from
        the evidence, so it never gets more weight than its agreement with the crowd earns it.
        """
        items = _as_index_array(item_idx, name="item_idx")
        labels = _as_index_array(label_idx, name="label_idx")
        if items.size != labels.size:
            raise ValueError("item_idx and label_idx must have the same length")
        new_worker = self.n_workers
        answers = Answers(
            worker_idx=np.concatenate([self.worker_idx, np.full(items.size, new_worker)]),
            item_idx=np.concatenate([self.item_idx, items]),
            label_idx=np.concatenate([self.label_idx, labels]),
            n_workers=self.n_workers + 1,
            n_items=self.n_items,
            n_classes=self.n_classes,
            gold_item_idx=self.gold_item_idx,
            gold_label_idx=self.gold_label_idx,
        )
        return answers, new_worker


def _gold_arrays(gold: Mapping[int, int]) -> tuple[IntArray, IntArray]:
    if not gold:
        return _EMPTY, _EMPTY
    items = np.fromiter(gold.keys(), dtype=np.intp, count=len(gold))
    labels = np.fromiter(gold.values(), dtype=np.intp, count=len(gold))
    order = np.argsort(items, kind="stable")
    return items[order], labels[order]


def class_sort_key(label: str) -> tuple[int, float, str]:
    """Natural order of class names: numbers numerically ("2" < "10"), then other strings.

    Class codes follow this order, so codes (and the tie policy that falls back on them) never
    depend on the order in which rows arrive.
    """
    try:
        number = float(label)
    except ValueError:
        return (1, 0.0, label)
    if math.isnan(number):
        return (1, 0.0, label)
    return (0, number, label)


@dataclass(frozen=True)
class Codebook:
    """The strings behind the codes: `workers[code]`, `items[code]`, `classes[code]`."""

    workers: tuple[str, ...]
    items: tuple[str, ...]
    classes: tuple[str, ...]

    def class_code(self) -> dict[str, int]:
        return {name: code for code, name in enumerate(self.classes)}

    def item_code(self) -> dict[str, int]:
        return {name: code for code, name in enumerate(self.items)}

    def encode_gold(self, gold: Mapping[str, str]) -> dict[int, int]:
        """Gold as codes; tasks nobody answered are dropped, unknown classes raise `KeyError`."""
        items = self.item_code()
        classes = self.class_code()
        return {items[task]: classes[label] for task, label in gold.items() if task in items}

    def decode_labels(self, labels: ArrayLike) -> list[str]:
        return [self.classes[code] for code in np.asarray(labels, dtype=np.intp).tolist()]


class AnswerEncoder:
    """Streams string triples into codes; `finish()` yields `Answers` and their `Codebook`."""

    def __init__(self) -> None:
        self._workers: dict[str, int] = {}
        self._items: dict[str, int] = {}
        self._labels: dict[str, int] = {}
        self._worker_codes: list[int] = []
        self._item_codes: list[int] = []
        self._label_codes: list[int] = []

    def add(self, worker: str, item: str, label: str) -> None:
        # setdefault keeps this to one hash lookup per field: this is the hot loop of CSV import.
        self._worker_codes.append(self._workers.setdefault(worker, len(self._workers)))
        self._item_codes.append(self._items.setdefault(item, len(self._items)))
        self._label_codes.append(self._labels.setdefault(label, len(self._labels)))

    def add_many(self, triples: Iterable[tuple[str, str, str]]) -> None:
        """`add` for each (worker, item, label); the same work with the lookups bound locally."""
        workers, items, labels = self._workers, self._items, self._labels
        add_worker = self._worker_codes.append
        add_item = self._item_codes.append
        add_label = self._label_codes.append
        for worker, item, label in triples:
            add_worker(workers.setdefault(worker, len(workers)))
            add_item(items.setdefault(item, len(items)))
            add_label(labels.setdefault(label, len(labels)))

    def __len__(self) -> int:
        return len(self._worker_codes)

    def finish(self, *, extra_classes: Iterable[str] = ()) -> tuple[Answers, Codebook]:
        classes = sorted(set(self._labels) | set(extra_classes), key=class_sort_key)
        class_code = {name: code for code, name in enumerate(classes)}
        # Labels were coded in order of first appearance; remap them onto the sorted class order.
        remap = np.zeros(max(len(self._labels), 1), dtype=np.intp)
        for name, seen_code in self._labels.items():
            remap[seen_code] = class_code[name]
        answers = Answers(
            worker_idx=np.array(self._worker_codes, dtype=np.intp),
            item_idx=np.array(self._item_codes, dtype=np.intp),
            label_idx=remap[np.array(self._label_codes, dtype=np.intp)],
            n_workers=len(self._workers),
            n_items=len(self._items),
            n_classes=max(len(classes), 1),
        )
        codebook = Codebook(
            workers=tuple(self._workers), items=tuple(self._items), classes=tuple(classes)
        )
        return answers, codebook


def encode_answers(
    *,
    workers: Sequence[str],
    tasks: Sequence[str],
    labels: Sequence[str],
    gold: Mapping[str, str] | None = None,
) -> tuple[Answers, Codebook]:
    """Encode parallel string columns; `gold` (task -> label) is attached as codes."""
    if not len(workers) == len(tasks) == len(labels):
        raise ValueError("workers, tasks and labels must have the same length")
    encoder = AnswerEncoder()
    encoder.add_many(zip(workers, tasks, labels, strict=True))
    gold = gold or {}
    answers, codebook = encoder.finish(extra_classes=gold.values())
    if gold:
        answers = answers.with_gold(codebook.encode_gold(gold))
    return answers, codebook
