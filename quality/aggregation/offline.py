"""Offline aggregation of a CSV file: what `manage.py aggregate` does, testable without Django."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from quality.aggregation.io import AggregationInputError, read_answers, read_gold, write_labels
from quality.aggregation.metrics import Score, score
from quality.aggregation.registry import DEFAULT_METHOD, METHODS, NEEDS_GOLD


@dataclass(frozen=True)
class OfflineReport:
    method: str
    n_answers: int
    n_workers: int
    n_tasks: int
    n_classes: int
    rows_written: int
    iterations: int
    seconds: float
    score: Score | None  # against --gold, excluding anchored tasks
    gold_without_answers: int
    anchored: int


def aggregate_file(
    *,
    answers_path: Path,
    out_path: Path,
    method: str = DEFAULT_METHOD,
    gold_path: Path | None = None,
    anchor_path: Path | None = None,
) -> OfflineReport:
    """Read answers, aggregate with `method`, write labels, and score against gold if given.

    `gold_path` is only for scoring. `anchor_path` holds known answers that the method may use
    (clamped during aggregation); anchored tasks are left out of the score, since their label
    was given, not inferred.
    """
    if method not in METHODS:
        raise AggregationInputError(f"unknown method {method!r}; known: {', '.join(METHODS)}")
    if method in NEEDS_GOLD and anchor_path is None:
        raise AggregationInputError(f"method {method} needs --anchor (a task,label CSV)")
    started = time.perf_counter()
    gold = read_gold(gold_path) if gold_path is not None else {}
    anchor = read_gold(anchor_path) if anchor_path is not None else {}
    answers, codebook = read_answers(
        answers_path, extra_classes=set(gold.values()) | set(anchor.values())
    )
    anchor_codes = codebook.encode_gold(anchor)
    if anchor_codes:
        answers = answers.with_gold(anchor_codes)
    result = METHODS[method](answers)
    rows = write_labels(out_path, codebook=codebook, result=result)
    known_tasks = set(codebook.items)
    gold_codes = {
        item: label
        for item, label in codebook.encode_gold(gold).items()
        if item not in anchor_codes
    }
    return OfflineReport(
        method=method,
        n_answers=answers.n_answers,
        n_workers=answers.n_workers,
        n_tasks=answers.n_items,
        n_classes=answers.n_classes,
        rows_written=rows,
        iterations=result.iterations,
        seconds=time.perf_counter() - started,
        score=score(result.labels, gold=gold_codes) if gold_path is not None else None,
        gold_without_answers=sum(1 for task in gold if task not in known_tasks),
        anchored=len(anchor_codes),
    )
