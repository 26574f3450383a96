"""`manage.py aggregate ANSWERS.csv --out LABELS.csv`: aggregate anyone's crowd answers offline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from quality.aggregation import DEFAULT_METHOD, METHOD_SUMMARIES, METHODS
from quality.aggregation.io import AggregationInputError
from quality.aggregation.offline import OfflineReport, aggregate_file


class Command(BaseCommand):
    help = (
        "Aggregate crowd answers (CSV with a worker,task,label header; any label strings) into "
        "one label per task, written as task,label,confidence."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        methods = "; ".join(f"{name}: {METHOD_SUMMARIES[name]}" for name in METHODS)
        parser.add_argument("answers", type=Path, help="worker,task,label CSV")
        parser.add_argument("--out", type=Path, required=True, help="where to write the labels")
        parser.add_argument(
            "--method",
            choices=list(METHODS),
            default=DEFAULT_METHOD,
            help=f"aggregation method (default {DEFAULT_METHOD}). {methods}",
        )
        parser.add_argument(
            "--gold", type=Path, help="task,label CSV of true labels: prints accuracy against it"
        )
        parser.add_argument(
            "--anchor",
            type=Path,
            help="task,label CSV of known answers fixed during aggregation (gold_dawid_skene)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            report = aggregate_file(
                answers_path=options["answers"],
                out_path=options["out"],
                method=options["method"],
                gold_path=options["gold"],
                anchor_path=options["anchor"],
            )
        except AggregationInputError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(_summary(report, out=options["out"]))


def _summary(report: OfflineReport, *, out: Path) -> str:
    lines = [
        f"{report.method}: {report.n_answers} answers, {report.n_workers} workers, "
        f"{report.n_tasks} tasks, {report.n_classes} classes; "
        f"{report.iterations} iterations, {report.seconds:.2f} s",
        f"wrote {report.rows_written} labels to {out}",
    ]
    if report.anchored:
        lines.append(f"anchored {report.anchored} tasks to their known label")
    if report.score is not None:
        unanswered = report.gold_without_answers
        note = f"; {unanswered} gold tasks had no answers" if unanswered else ""
        lines.append(
            f"accuracy {report.score.accuracy:.4f} "
            f"({report.score.correct}/{report.score.total} gold tasks{note})"
        )
    return "\n".join(lines)
