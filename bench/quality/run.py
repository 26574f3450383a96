"""Kyodo's aggregators against Crowd-Kit on real crowd data, and the 1M-answer speed test.

Run inside the benchmark environment (`bash bench/quality/setup.sh` makes it):

    bench/quality/.venv/bin/python bench/quality/run.py [--data DIR] [--out RESULTS.md]

Kyodo's aggregation package is pure numpy, so it is imported from the repository root and the
product itself is not installed here. Every method runs in a forked child with a time limit.
Accuracy counts the gold tasks that have answers; time is the aggregation alone (no parsing).
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path[:0] = [str(ROOT), str(HERE)]

import crowdkit  # noqa: E402
import pandas as pd  # noqa: E402
import sklearn  # noqa: E402
from crowdkit.aggregation import (  # noqa: E402
    GLAD,
    MACE,
    DawidSkene,
    MajorityVote,
    OneCoinDawidSkene,
    Wawa,
)
from measure import Measured, run_limited  # noqa: E402
from synthetic import make_crowd  # noqa: E402

from quality.aggregation import METHODS, Answers, Codebook, score  # noqa: E402
from quality.aggregation.io import read_answers, read_gold  # noqa: E402

DATASETS = ("bluebirds", "rte", "temp", "d_product", "s_rel")
KYODO_METHODS = ("majority_vote", "weighted_vote", "one_coin_dawid_skene", "dawid_skene")
CROWDKIT_METHODS: dict[str, Callable[[], object]] = {
    "MajorityVote": MajorityVote,
    "Wawa": Wawa,
    "DawidSkene": DawidSkene,
    "OneCoinDawidSkene": OneCoinDawidSkene,
    "GLAD": GLAD,
    "MACE": MACE,
}
ANCHOR_SHARE = 0.1  # gold-anchored runs fix this share of the gold tasks and score the rest


@dataclass
class Dataset:
    name: str
    answers: Answers
    gold_codes: dict[int, int]
    frame: pd.DataFrame  # the same answers for Crowd-Kit, as strings
    gold: pd.Series
    codebook: Codebook


@dataclass
class Cell:
    accuracy: float | None
    seconds: float
    note: str = ""


@dataclass
class Report:
    accuracy: dict[str, dict[str, Cell]] = field(default_factory=dict)  # method -> dataset -> cell
    anchored: dict[str, dict[str, Cell]] = field(default_factory=dict)
    speed: list[tuple[str, Measured, float | None, int | None]] = field(default_factory=list)


def default_data_dir() -> Path:
    beside = ROOT.parent / "shared" / "data" / "crowd"
    return beside if beside.is_dir() else Path("/work/shared/data/crowd")


def load(directory: Path, name: str) -> Dataset:
    gold = read_gold(directory / name / "gold.csv")
    answers, codebook = read_answers(directory / name / "answers.csv", extra_classes=gold.values())
    frame = pd.read_csv(directory / name / "answers.csv", dtype=str, keep_default_na=False)
    gold_series = pd.Series(gold, name="label")
    gold_series.index.name = "task"
    return Dataset(
        name=name,
        answers=answers,
        gold_codes=codebook.encode_gold(gold),
        frame=frame[["worker", "task", "label"]],
        gold=gold_series,
        codebook=codebook,
    )


def crowdkit_accuracy(labels: pd.Series, gold: pd.Series) -> float:
    common = gold.index.intersection(labels.index)
    return float((labels.loc[common].astype(str) == gold.loc[common]).mean())


def run_kyodo(data: Dataset, method: str, *, time_limit: float) -> Cell:
    def job() -> float:
        return score(METHODS[method](data.answers).labels, gold=data.gold_codes).accuracy

    return to_cell(run_limited(job, time_limit=time_limit))


def run_crowdkit(data: Dataset, method: str, *, time_limit: float) -> Cell:
    def job() -> float:
        labels = CROWDKIT_METHODS[method]().fit_predict(data.frame)  # type: ignore[attr-defined]
        return crowdkit_accuracy(labels, data.gold)

    return to_cell(run_limited(job, time_limit=time_limit))


def to_cell(measured: Measured) -> Cell:
    if measured.timed_out:
        return Cell(accuracy=None, seconds=measured.seconds, note=f"> {measured.seconds:.0f} s")
    if measured.error:
        return Cell(accuracy=None, seconds=measured.seconds, note=measured.error[:60])
    return Cell(accuracy=float(measured.value), seconds=measured.seconds)


def anchor_split(data: Dataset) -> tuple[dict[int, int], dict[int, int]]:
    """A fixed, seeded share of gold tasks to anchor on; the rest are scored."""
    items = np.array(sorted(data.gold_codes))
    rng = np.random.default_rng(7)
    chosen = set(rng.choice(items, size=max(1, round(ANCHOR_SHARE * items.size)), replace=False))
    anchors = {item: data.gold_codes[item] for item in chosen}
    rest = {item: label for item, label in data.gold_codes.items() if item not in chosen}
    return anchors, rest


def run_anchored(data: Dataset, *, time_limit: float) -> dict[str, Cell]:
    anchors, rest = anchor_split(data)
    anchored = data.answers.with_gold(anchors)
    cells = {}
    for method in ("dawid_skene", "gold_dawid_skene"):

        def job(method: str = method) -> float:
            source = data.answers if method == "dawid_skene" else anchored
            return score(METHODS[method](source).labels, gold=rest).accuracy

        cells[f"Kyodo {method}"] = to_cell(run_limited(job, time_limit=time_limit))
    # Crowd-Kit's DawidSkene takes the same anchors as `true_labels`.
    tasks = data.codebook.items
    anchor_tasks = pd.Series({tasks[item]: data.gold[tasks[item]] for item in anchors})
    rest_gold = data.gold.loc[[tasks[item] for item in rest]]

    def crowdkit_job() -> float:
        labels = DawidSkene().fit_predict(data.frame, true_labels=anchor_tasks)
        return crowdkit_accuracy(labels, rest_gold)

    cells["Crowd-Kit DawidSkene(true_labels)"] = to_cell(
        run_limited(crowdkit_job, time_limit=time_limit)
    )
    return cells


def run_speed(*, n_answers: int, time_limit: float, repeats: int, report: Report) -> None:
    items = n_answers // 10
    crowd = make_crowd(n_items=items, n_workers=max(items // 20, 10))
    answers = Answers(
        worker_idx=crowd.worker_idx,
        item_idx=crowd.item_idx,
        label_idx=crowd.label_idx,
        n_workers=crowd.n_workers,
        n_items=crowd.n_items,
        n_classes=crowd.n_classes,
    )
    frame = pd.DataFrame(
        {"worker": crowd.worker_idx, "task": crowd.item_idx, "label": crowd.label_idx}
    )

    def kyodo() -> tuple[float, int]:
        result = METHODS["dawid_skene"](answers)
        return float(np.mean(result.labels == crowd.truth)), result.iterations

    def crowdkit_ds() -> tuple[float, int]:
        # n_iter high enough that its own tolerance, not the cap, ends the run.
        model = DawidSkene(n_iter=1000)
        labels = model.fit_predict(frame).sort_index()
        correct = labels.to_numpy() == crowd.truth[labels.index.to_numpy()]
        return float(np.mean(correct)), len(model.loss_history_)

    def majority() -> tuple[float, int]:
        result = METHODS["majority_vote"](answers)
        return float(np.mean(result.labels == crowd.truth)), 0

    jobs = {
        "Kyodo majority_vote": majority,
        "Kyodo dawid_skene": kyodo,
        "Crowd-Kit DawidSkene": crowdkit_ds,
    }
    # Interleaved repeats, so that both libraries see the same mix of load from other jobs.
    runs: dict[str, list[Measured]] = {name: [] for name in jobs}
    for _ in range(repeats):
        for name, job in jobs.items():
            measured = run_limited(job, time_limit=time_limit)
            runs[name].append(measured)
            print(f"speed {name}: {measured.seconds:.1f} s, {measured.value}", flush=True)
    for name, measured_runs in runs.items():
        median = median_run(measured_runs)
        accuracy, iterations = median.value if median.value else (None, None)
        report.speed.append((name, median, accuracy, iterations))


def median_run(runs: list[Measured]) -> Measured:
    """Median wall and CPU time over the runs, the largest peak memory, the first run's value."""
    return Measured(
        value=runs[0].value,
        seconds=float(np.median([r.seconds for r in runs])),
        cpu_seconds=float(np.median([r.cpu_seconds for r in runs])),
        peak_mib=float(np.max([r.peak_mib for r in runs])),
        timed_out=any(r.timed_out for r in runs),
    )


def fmt_accuracy(cell: Cell | None) -> str:
    if cell is None:
        return "-"
    return f"{100 * cell.accuracy:.2f}" if cell.accuracy is not None else cell.note


def mean_accuracy(cells: dict[str, Cell], names: Iterable[str]) -> float | None:
    values = [cells[n].accuracy for n in names if n in cells]
    if not values or any(v is None for v in values):
        return None
    return 100 * float(np.mean([v for v in values if v is not None]))


def render(report: Report, *, names: list[str], started: float, args: argparse.Namespace) -> str:
    lines = [
        "# Quality benchmark: Kyodo aggregation vs Crowd-Kit",
        "",
        f"Made by `bench/quality/run.py` on {time.strftime('%Y-%m-%d %H:%M')} in "
        f"{time.time() - started:.0f} s; {platform.machine()}, {_cpus()} CPUs (shared with other "
        f"jobs, so times are noisy); Python {platform.python_version()}, numpy {np.__version__}, "
        f"pandas {pd.__version__}, scikit-learn {sklearn.__version__}, "
        f"crowd-kit {crowdkit.__version__}. Time limit per run: {args.time_limit:.0f} s.",
        "",
        "## Accuracy against expert gold (%)",
        "",
        "| method | " + " | ".join(names) + " | mean |",
        "|---|" + "---:|" * (len(names) + 1),
    ]
    for method, cells in report.accuracy.items():
        mean = mean_accuracy(cells, names)
        row = [fmt_accuracy(cells.get(n)) for n in names]
        lines.append(
            f"| {method} | " + " | ".join(row) + f" | {'-' if mean is None else f'{mean:.2f}'} |"
        )
    lines += ["", *targets(report, names), "", "## Wall time (s, aggregation only)", ""]
    lines += ["| method | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for method, cells in report.accuracy.items():
        row = [f"{cells[n].seconds:.2f}" if n in cells else "-" for n in names]
        lines.append(f"| {method} | " + " | ".join(row) + " |")
    if report.anchored:
        lines += [
            "",
            f"## Gold-anchored ({100 * ANCHOR_SHARE:.0f}% of gold tasks fixed, accuracy on the "
            "other gold tasks, %)",
            "",
        ]
        methods = list(next(iter(report.anchored.values())))
        lines += ["| method | " + " | ".join(report.anchored) + " |"]
        lines += ["|---|" + "---:|" * len(report.anchored)]
        for method in methods:
            row = [fmt_accuracy(report.anchored[n][method]) for n in report.anchored]
            lines.append(f"| {method} | " + " | ".join(row) + " |")
    if report.speed:
        lines += speed_table(report, args)
    return "\n".join(lines) + "\n"


def targets(report: Report, names: list[str]) -> list[str]:
    kyodo = {m: c for m, c in report.accuracy.items() if m.startswith("Kyodo")}
    crowdkit_cells = {m: c for m, c in report.accuracy.items() if m.startswith("Crowd-Kit")}
    best_kyodo = max(kyodo, key=lambda m: mean_accuracy(kyodo[m], names) or -1.0)
    best_crowdkit = max(
        crowdkit_cells, key=lambda m: mean_accuracy(crowdkit_cells[m], names) or -1.0
    )
    ours, theirs = (
        mean_accuracy(kyodo[best_kyodo], names),
        mean_accuracy(crowdkit_cells[best_crowdkit], names),
    )
    lines = [
        f"- Best Kyodo method: {best_kyodo}, mean {ours:.2f}; best Crowd-Kit method: "
        f"{best_crowdkit}, mean {theirs:.2f} (target: Kyodo at least Crowd-Kit)."
        if ours is not None and theirs is not None
        else "- Means unavailable (a run failed or timed out)."
    ]
    reference = crowdkit_cells.get("Crowd-Kit DawidSkene", {})
    gaps = []
    for name in names:
        mine, ref = kyodo[best_kyodo].get(name), reference.get(name)
        if mine and ref and mine.accuracy is not None and ref.accuracy is not None:
            gaps.append(f"{name} {100 * (mine.accuracy - ref.accuracy):+.2f}")
    lines.append(
        f"- {best_kyodo} minus Crowd-Kit DawidSkene, points: "
        + ", ".join(gaps)
        + " (target: none below -0.50)."
    )
    return lines


def speed_table(report: Report, args: argparse.Namespace) -> list[str]:
    n = args.speed_answers
    lines = [
        "",
        f"## Speed: {n:,} synthetic answers ({n // 10:,} items, {max(n // 200, 10):,} workers, "
        f"5 classes, 20% uniform spammers), to convergence; median of {args.speed_repeats} "
        "interleaved runs",
        "",
        "| run | wall time (s) | CPU time (s) | iterations | accuracy (%) "
        "| peak memory above input (MiB) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, measured, accuracy, iterations in report.speed:
        acc = f"{100 * accuracy:.2f}" if accuracy is not None else "-"
        seconds = f"{measured.seconds:.1f}" + (" (limit)" if measured.timed_out else "")
        lines.append(
            f"| {name} | {seconds} | {measured.cpu_seconds:.1f} "
            f"| {iterations if iterations is not None else '-'} | {acc} | "
            f"{measured.peak_mib:.0f} |"
        )
    times = {name: measured for name, measured, _, _ in report.speed}
    ours, theirs = times.get("Kyodo dawid_skene"), times.get("Crowd-Kit DawidSkene")
    if ours and theirs and not ours.timed_out:
        bound = "at least " if theirs.timed_out else ""
        cpu_ratio = theirs.cpu_seconds / ours.cpu_seconds
        lines += [
            "",
            f"Kyodo dawid_skene is {bound}{theirs.seconds / ours.seconds:.1f}x faster than "
            f"Crowd-Kit DawidSkene in wall time and {bound}{cpu_ratio:.1f}x in CPU time, on the "
            "same answers in the same run (target: at least 10x).",
        ]
    return lines


def progress(dataset: str, method: str, cell: Cell) -> None:
    print(f"{dataset} {method}: {fmt_accuracy(cell)} in {cell.seconds:.2f} s", flush=True)


def _cpus() -> int:
    import os

    return os.cpu_count() or 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=default_data_dir())
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument("--time-limit", type=float, default=300.0, help="seconds per run")
    parser.add_argument("--speed-answers", type=int, default=1_000_000)
    parser.add_argument("--speed-time-limit", type=float, default=1800.0)
    parser.add_argument("--speed-repeats", type=int, default=3, help="median of this many runs")
    parser.add_argument("--skip-speed", action="store_true")
    args = parser.parse_args()

    started = time.time()
    names = [n for n in args.datasets.split(",") if n]
    report = Report()
    for name in names:
        data = load(args.data, name)
        for method in KYODO_METHODS:
            cell = run_kyodo(data, method, time_limit=args.time_limit)
            report.accuracy.setdefault(f"Kyodo {method}", {})[name] = cell
            progress(name, f"Kyodo {method}", cell)
        for method in CROWDKIT_METHODS:
            cell = run_crowdkit(data, method, time_limit=args.time_limit)
            report.accuracy.setdefault(f"Crowd-Kit {method}", {})[name] = cell
            progress(name, f"Crowd-Kit {method}", cell)
        report.anchored[name] = run_anchored(data, time_limit=args.time_limit)
        for method, cell in report.anchored[name].items():
            progress(name, f"anchored {method}", cell)
    if not args.skip_speed:
        run_speed(
            n_answers=args.speed_answers,
            time_limit=args.speed_time_limit,
            repeats=args.speed_repeats,
            report=report,
        )
    args.out.write_text(render(report, names=names, started=started, args=args), encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
