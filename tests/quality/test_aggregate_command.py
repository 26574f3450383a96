"""`manage.py aggregate` through Django's call_command."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from quality.aggregation import METHODS
from quality.management.commands.aggregate import Command


@pytest.fixture
def answers_csv(tmp_path: Path) -> Path:
    rows = ["worker,task,label"]
    for task in range(20):
        truth = "pos" if task % 3 else "neg"
        wrong = "neg" if truth == "pos" else "pos"
        rows += [f"good{w},item{task},{truth}" for w in range(3)]
        rows.append(f"spam,item{task},{wrong}")
    path = tmp_path / "answers.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_writes_a_label_for_every_task_and_prints_accuracy(
    answers_csv: Path, tmp_path: Path
) -> None:
    gold = tmp_path / "gold.csv"
    gold.write_text("task,label\nitem0,neg\nitem1,pos\nitem2,neg\n", encoding="utf-8")
    out = tmp_path / "labels.csv"
    stdout = StringIO()
    call_command(
        "aggregate", str(answers_csv), "--out", str(out), "--gold", str(gold), stdout=stdout
    )

    with out.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 20
    assert {row["task"] for row in rows} == {f"item{task}" for task in range(20)}
    assert all(0.5 <= float(row["confidence"]) <= 1.0 for row in rows)
    text = stdout.getvalue()
    assert "dawid_skene" in text
    assert "accuracy 0.6667 (2/3 gold tasks)" in text


@pytest.mark.parametrize("method", sorted(set(METHODS) - {"gold_dawid_skene"}))
def test_every_method_by_name(answers_csv: Path, tmp_path: Path, method: str) -> None:
    out = tmp_path / "labels.csv"
    call_command(
        "aggregate", str(answers_csv), "--out", str(out), "--method", method, stdout=StringIO()
    )
    assert out.read_text(encoding="utf-8").startswith("task,label,confidence\n")


def test_gold_anchored_method_takes_anchors(answers_csv: Path, tmp_path: Path) -> None:
    anchor = tmp_path / "anchor.csv"
    anchor.write_text("task,label\nitem0,neg\n", encoding="utf-8")
    stdout = StringIO()
    call_command(
        "aggregate",
        str(answers_csv),
        "--out",
        str(tmp_path / "labels.csv"),
        "--method",
        "gold_dawid_skene",
        "--anchor",
        str(anchor),
        stdout=stdout,
    )
    assert "anchored 1 tasks" in stdout.getvalue()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty file"),
        (b"worker,label\nw,a\n", "missing column"),
        (b"worker,task,label\nw,t,\xff\n", "not UTF-8"),
    ],
)
def test_bad_files_raise_one_line_command_errors(
    tmp_path: Path, content: bytes, message: str
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_bytes(content)
    with pytest.raises(CommandError, match=message) as caught:
        call_command("aggregate", str(bad), "--out", str(tmp_path / "o.csv"), stdout=StringIO())
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "o.csv").exists()


def test_missing_file_and_missing_anchor(answers_csv: Path, tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="no such file"):
        call_command("aggregate", str(tmp_path / "none.csv"), "--out", str(tmp_path / "o.csv"))
    with pytest.raises(CommandError, match="needs --anchor"):
        call_command(
            "aggregate",
            str(answers_csv),
            "--out",
            str(tmp_path / "o.csv"),
            "--method",
            "gold_dawid_skene",
        )


def test_help_lists_every_method() -> None:
    help_text = Command().create_parser("manage.py", "aggregate").format_help()
    for method in METHODS:
        assert method in help_text


def test_manage_py_prints_one_line_on_stderr_and_exits_non_zero(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"worker,task,label\nw,t,\xff\n")
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test"}
    done = subprocess.run(
        [sys.executable, "manage.py", "aggregate", str(bad), "--out", str(tmp_path / "o.csv")],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.strip().count("\n") == 0
    assert "not UTF-8" in done.stderr


def test_unwritable_output_is_a_command_error(answers_csv: Path, tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="cannot write"):
        call_command("aggregate", str(answers_csv), "--out", str(tmp_path / "no" / "dir" / "o.csv"))
