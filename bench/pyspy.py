"""py-spy profiles of the bench's processes over its measured window, summarised per process kind.

`bench.next_task --py-spy PATH` (PATH: a py-spy binary; py-spy is a profiling tool, not a project
dependency: `pip install py-spy==0.4.3` into any environment) samples every process of each kind
(the web server's workers, each Celery worker's pool) from the end of the warm-up to the end of
the load, 100 times a second, and reports for each kind the functions where its samples were
(self) and the project functions its samples passed through (inclusive), as shares of its
samples. Idle samples (a process waiting for work) are left out with `--idle` off, py-spy's
default, so the shares are of CPU time.
"""

from __future__ import annotations

import re
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

RATE = 100
ROOT = str(Path(__file__).resolve().parent.parent) + "/"
FRAME = re.compile(r"^(?P<name>.*) \((?P<file>[^:()]+)(?::\d+)?\)$")
PROJECT = ("core/", "labeling/", "quality/", "rewards/", "storage/", "datasets/", "accounts/")


class Recording:
    """py-spy record running against a set of processes until `seconds` have passed."""

    def __init__(self, binary: str, pids: dict[str, list[int]], seconds: float, out: Path) -> None:
        out.mkdir(parents=True, exist_ok=True)
        self.files: dict[str, list[Path]] = {}
        self.procs: list[subprocess.Popen[bytes]] = []
        for kind, kind_pids in pids.items():
            for pid in kind_pids:
                path = out / f"{kind}-{pid}.txt"
                self.files.setdefault(kind, []).append(path)
                self.procs.append(
                    subprocess.Popen(
                        [
                            binary,
                            "record",
                            "--pid",
                            str(pid),
                            "--duration",
                            str(int(seconds)),
                            "--rate",
                            str(RATE),
                            "--format",
                            "raw",
                            "--nonblocking",
                            "--output",
                            str(path),
                        ],
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                )

    def summary(self, top: int = 12) -> dict[str, Any]:
        for proc in self.procs:
            proc.wait(timeout=120)
        return {kind: summarize(paths, top=top) for kind, paths in self.files.items()}


def summarize(paths: list[Path], *, top: int) -> dict[str, Any]:
    """Self and inclusive shares (percent of samples) of the stacks in py-spy raw files."""
    own: Counter[str] = Counter()
    through: Counter[str] = Counter()
    total = 0
    for path in paths:
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack or not count.isdigit():
                continue
            n = int(count)
            frames = [_short(f) for f in stack.split(";")]
            total += n
            own[frames[-1]] += n
            for name in {f for f in frames if f.split(" ")[-1].startswith(PROJECT)}:
                through[name] += n
    if not total:
        return {"samples": 0}

    def share(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(name, round(100 * n / total, 1)) for name, n in counter.most_common(top)]

    return {"samples": total, "seconds": round(total / RATE, 1), "self": share(own),
            "inclusive_project": share(through)}  # fmt: skip


def _short(frame: str) -> str:
    """'function (path/to/module.py:12)' -> 'function module/path.py' relative to site-packages
    or the checkout, without the line."""
    match = FRAME.match(frame)
    if not match:
        return frame
    file = match["file"]
    for marker in ("site-packages/", ROOT, "/lib/python3."):
        if marker in file:
            file = file.split(marker, 1)[1]
            break
    return f"{match['name']} {file}"
