"""Run one aggregation in a forked child: wall time, peak memory, and a time limit.

Forking (not spawning) keeps the loaded data and imports shared, so a child starts at once. The
child reports its peak resident set size *above* its size right after the fork, i.e. the memory
the aggregation itself needed on top of the loaded input.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

_PAGE = os.sysconf("SC_PAGE_SIZE")


def _rss_bytes() -> int:
    with open("/proc/self/statm", encoding="ascii") as handle:
        return int(handle.read().split()[1]) * _PAGE


@dataclass(frozen=True)
class Measured:
    value: Any  # what the function returned; None when it timed out or failed
    seconds: float
    peak_mib: float
    cpu_seconds: float = float("nan")  # user + system time of the child: robust to a busy machine
    timed_out: bool = False
    error: str = ""


def _child(fn: Callable[[], Any], conn: Any) -> None:
    baseline = _rss_bytes()
    cpu_started = time.process_time()
    started = time.perf_counter()
    try:
        value = fn()
        error = ""
    except Exception as exc:  # reported to the parent, which prints it in the table
        value, error = None, f"{type(exc).__name__}: {exc}"
    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu_started
    # ru_maxrss is in KiB on Linux; the fork resets the high-water mark to the current size.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    conn.send((value, seconds, max(peak - baseline, 0) / 2**20, error, cpu_seconds))
    conn.close()


def run_limited(fn: Callable[[], Any], *, time_limit: float) -> Measured:
    """Run `fn()` in a forked child; kill it (by its own pid) after `time_limit` seconds."""
    context = mp.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_child, args=(fn, sender))
    started = time.perf_counter()
    process.start()
    sender.close()
    if receiver.poll(time_limit):
        value, seconds, peak, error, cpu_seconds = receiver.recv()
        process.join()
        return Measured(
            value=value, seconds=seconds, peak_mib=peak, error=error, cpu_seconds=cpu_seconds
        )
    process.kill()
    process.join()
    return Measured(
        value=None, seconds=time.perf_counter() - started, peak_mib=float("nan"), timed_out=True
    )
