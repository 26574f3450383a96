"""CSV parsing and writing for offline aggregation, without Django."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from quality.aggregation.io import AggregationInputError, read_answers, read_gold, write_labels
from quality.aggregation.offline import aggregate_file
from quality.aggregation.voting import majority_vote


def write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_reads_any_column_order_extra_columns_bom_and_quoted_labels(tmp_path: Path) -> None:
    path = write(
        tmp_path / "a.csv",
        '\ufefflabel,ts,Worker ,task\n"cat, black",1,w1,t1\ndog,2,w2,t1\n\n"cat, black",3,w2,t2\n',
    )
    answers, codebook = read_answers(path)
    assert answers.n_answers == 3
    assert codebook.workers == ("w1", "w2")
    assert codebook.items == ("t1", "t2")
    assert codebook.classes == ("cat, black", "dog")
    assert answers.label_idx.tolist() == [0, 1, 0]


def test_extra_classes_get_codes(tmp_path: Path) -> None:
    path = write(tmp_path / "a.csv", "worker,task,label\nw,t,b\n")
    _, codebook = read_answers(path, extra_classes=["a"])
    assert codebook.classes == ("a", "b")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "empty file"),
        ("worker,task\nw,t\n", "missing column.s. label"),
        ("worker,task,label\n", "no answers"),
        ("worker,task,label\nw,t\n", "line 2: expected at least 3 fields"),
        ("worker,task,label\nw,t,a\nw,,a\n", "line 3: empty task"),
        (b"worker,task,label\nw,t,caf\xe9\n", "not UTF-8"),
        ('worker,task,label\nw,t,"a\n', "line"),
    ],
)
def test_bad_answer_files_give_one_line_errors(
    tmp_path: Path, content: str | bytes, message: str
) -> None:
    path = write(tmp_path / "a.csv", content)
    with pytest.raises(AggregationInputError, match=message) as caught:
        read_answers(path)
    assert "\n" not in str(caught.value)
    assert str(path) in str(caught.value)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(AggregationInputError, match="no such file"):
        read_answers(tmp_path / "nope.csv")
    with pytest.raises(AggregationInputError, match="directory"):
        read_answers(tmp_path)


def test_gold_with_conflicting_labels_is_rejected(tmp_path: Path) -> None:
    path = write(tmp_path / "g.csv", "task,label\nt1,a\nt1,a\nt2,b\n")
    assert read_gold(path) == {"t1": "a", "t2": "b"}
    write(path, "task,label\nt1,a\nt1,b\n")
    with pytest.raises(AggregationInputError, match="line 3: task 't1' has two labels"):
        read_gold(path)


def test_written_labels_round_trip(tmp_path: Path) -> None:
    source = write(tmp_path / "a.csv", "worker,task,label\nw1,t1,x\nw2,t1,x\nw1,t2,y\n")
    answers, codebook = read_answers(source)
    out = tmp_path / "labels.csv"
    assert write_labels(out, codebook=codebook, result=majority_vote(answers)) == 2
    with out.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert rows == [
        {"task": "t1", "label": "x", "confidence": "1.0"},
        {"task": "t2", "label": "y", "confidence": "1.0"},
    ]


def test_aggregate_file_scores_against_gold_and_leaves_anchors_out(tmp_path: Path) -> None:
    rows = ["worker,task,label"]
    for task in range(6):
        rows += [f"w{worker},t{task},{'yes' if task % 2 else 'no'}" for worker in range(3)]
    source = write(tmp_path / "a.csv", "\n".join(rows) + "\n")
    gold = write(tmp_path / "g.csv", "task,label\nt0,no\nt1,no\nt9,yes\n")
    anchor = write(tmp_path / "anchor.csv", "task,label\nt0,no\n")
    out = tmp_path / "out.csv"

    report = aggregate_file(answers_path=source, out_path=out, gold_path=gold)
    assert report.rows_written == 6
    assert report.score is not None
    assert (report.score.correct, report.score.total) == (1, 2)
    assert report.gold_without_answers == 1

    anchored = aggregate_file(
        answers_path=source,
        out_path=out,
        method="gold_dawid_skene",
        gold_path=gold,
        anchor_path=anchor,
    )
    assert anchored.anchored == 1
    assert anchored.score is not None
    assert anchored.score.total == 1

    with pytest.raises(AggregationInputError, match="needs --anchor"):
        aggregate_file(answers_path=source, out_path=out, method="gold_dawid_skene")
    with pytest.raises(AggregationInputError, match="unknown method"):
        aggregate_file(answers_path=source, out_path=out, method="nope")
