"""CSV in and out for offline aggregation (`manage.py aggregate`), with no Django in sight.

Input is parsed row by row with the csv module straight into integer codes, so memory holds three
int lists and the distinct strings, never the rows. Every problem with a file surfaces as one
`AggregationInputError` whose message fits on one line and names the file (and line).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn, TextIO

import numpy as np

from quality.aggregation.answers import AnswerEncoder, Answers, Codebook
from quality.aggregation.result import Result

ANSWER_COLUMNS = ("worker", "task", "label")
GOLD_COLUMNS = ("task", "label")


class AggregationInputError(ValueError):
    """A file that cannot be aggregated; the message is one line, fit for a terminal."""


@contextmanager
def _open_csv(path: Path) -> Iterator[TextIO]:
    # utf-8-sig drops the byte-order mark that spreadsheet exports put before the header.
    try:
        with path.open(newline="", encoding="utf-8-sig", errors="strict") as handle:
            yield handle
    except FileNotFoundError:
        raise AggregationInputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise AggregationInputError(f"{path}: is a directory, not a CSV file") from None
    except PermissionError:
        raise AggregationInputError(f"{path}: permission denied") from None
    except UnicodeDecodeError:
        raise AggregationInputError(f"{path}: not UTF-8 text") from None
    except csv.Error as error:
        raise AggregationInputError(f"{path}: malformed CSV: {error}") from None


def _column_positions(
    reader: Iterator[list[str]], *, path: Path, required: tuple[str, ...]
) -> list[int]:
    try:
        header = next(reader)
    except StopIteration:
        raise AggregationInputError(f"{path}: empty file (expected a header row)") from None
    names = [name.strip().lower() for name in header]
    missing = [column for column in required if column not in names]
    if missing:
        raise AggregationInputError(
            f"{path}: missing column(s) {', '.join(missing)} in header "
            f"(need {','.join(required)}; found {','.join(names) or 'nothing'})"
        )
    return [names.index(column) for column in required]


def _checked(reader: Iterator[list[str]], *, path: Path) -> Iterator[list[str]]:
    """The reader's rows, with a malformed-CSV error tagged by its line number."""
    line_num = getattr(reader, "line_num", 0)
    try:
        yield from reader
    except csv.Error as error:
        line_num = getattr(reader, "line_num", line_num)
        raise AggregationInputError(f"{path}: line {line_num}: malformed CSV: {error}") from None
    except UnicodeDecodeError:
        # Text is decoded in blocks, so the bad byte is somewhere after the last good line.
        line_num = getattr(reader, "line_num", line_num)
        raise AggregationInputError(f"{path}: not UTF-8 text after line {line_num}") from None


def _rows(path: Path, *, required: tuple[str, ...]) -> Iterator[tuple[int, list[str]]]:
    """(line number, [values of the required columns]) for every non-blank data row."""
    with _open_csv(path) as handle:
        reader = csv.reader(handle, strict=True)
        positions = _column_positions(reader, path=path, required=required)
        last = max(positions)
        for row in _checked(reader, path=path):
            if not row:
                continue
            if len(row) <= last:
                raise AggregationInputError(
                    f"{path}: line {reader.line_num}: expected at least {last + 1} fields, "
                    f"got {len(row)}"
                )
            values = [row[position].strip() for position in positions]
            if not all(values):
                empty = required[values.index("")]
                raise AggregationInputError(f"{path}: line {reader.line_num}: empty {empty}")
            yield reader.line_num, values


def _answer_triples(
    reader: Iterator[list[str]], *, path: Path, positions: list[int]
) -> Iterator[tuple[str, str, str]]:
    """`_rows` specialised to three columns: this runs once per answer, a million times a file."""
    worker_at, task_at, label_at = positions
    need = max(positions) + 1
    for row in _checked(reader, path=path):
        if len(row) < need:
            if not row:
                continue
            message = f"expected at least {need} fields, got {len(row)}"
            _rows_error(reader, path=path, message=message)
        worker, task, label = row[worker_at].strip(), row[task_at].strip(), row[label_at].strip()
        if not (worker and task and label):
            empty = ANSWER_COLUMNS[[worker, task, label].index("")]
            _rows_error(reader, path=path, message=f"empty {empty}")
        yield worker, task, label


def _rows_error(reader: Iterator[list[str]], *, path: Path, message: str) -> NoReturn:
    raise AggregationInputError(f"{path}: line {getattr(reader, 'line_num', 0)}: {message}")


def read_answers(
    path: Path | str, *, extra_classes: Iterable[str] = ()
) -> tuple[Answers, Codebook]:
    """Parse a `worker,task,label` CSV (header required, extra columns ignored) into codes.

    `extra_classes` adds class names nobody answered (e.g. labels that only gold uses), so they
    get codes too.
    """
    path = Path(path)
    encoder = AnswerEncoder()
    with _open_csv(path) as handle:
        reader = csv.reader(handle, strict=True)
        positions = _column_positions(reader, path=path, required=ANSWER_COLUMNS)
        encoder.add_many(_answer_triples(reader, path=path, positions=positions))
    if not len(encoder):
        raise AggregationInputError(f"{path}: no answers after the header")
    return encoder.finish(extra_classes=extra_classes)


def read_gold(path: Path | str) -> dict[str, str]:
    """Parse a `task,label` CSV into task -> label; a task with two different labels is an error."""
    path = Path(path)
    gold: dict[str, str] = {}
    for line, (task, label) in _rows(path, required=GOLD_COLUMNS):
        if gold.setdefault(task, label) != label:
            raise AggregationInputError(
                f"{path}: line {line}: task {task!r} has two labels, {gold[task]!r} and {label!r}"
            )
    if not gold:
        raise AggregationInputError(f"{path}: no rows after the header")
    return gold


def write_labels(path: Path | str, *, codebook: Codebook, result: Result) -> int:
    """Write `task,label,confidence` for every item, in first-seen order; returns the row count."""
    path = Path(path)
    labels = codebook.decode_labels(result.labels)
    confidence = np.round(result.confidence, 6).tolist()
    try:
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(("task", "label", "confidence"))
            writer.writerows(zip(codebook.items, labels, confidence, strict=True))
    except OSError as error:
        raise AggregationInputError(f"{path}: cannot write: {error.strerror}") from None
    return len(labels)
