"""tools/demo.stop: each child's whole process group is stopped, also when the child itself has
died already (issue 15, item 7: a dead Celery worker left its beat running)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from tools.demo import stop


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purpose: it runs nothing.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(")")[-1].split()[0] != "Z"


def test_a_dead_leaders_group_is_stopped_too(tmp_path: Path) -> None:
    pid_file = tmp_path / "orphan.pid"
    # The leader starts a long-lived child in its own group, writes its pid, and dies.
    script = (
        "import subprocess, sys\n"
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\n"
        f"open({str(pid_file)!r}, 'w').write(str(p.pid))\n"
    )
    leader = subprocess.Popen([sys.executable, "-c", script], start_new_session=True)
    leader.wait(timeout=30)
    deadline = time.monotonic() + 10
    while not pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    orphan = int(pid_file.read_text())
    assert alive(orphan)
    stop([leader])
    deadline = time.monotonic() + 15
    while alive(orphan) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(orphan)
