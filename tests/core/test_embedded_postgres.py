"""The embedded server's lifetime (core/embedded_postgres): the first holder starts it, a second
process joins it, the last holder to let go stops it, and a holder killed without letting go is
dropped. Real processes on a real server in a folder of the test's own."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import psycopg
import pytest

from core import embedded_postgres

ROOT = Path(__file__).resolve().parents[2]
# A holder: joins the server under argv[1], says so, then waits for a line on stdin (or EOF).
HOLDER = """
import sys
from pathlib import Path
from core import embedded_postgres
server = embedded_postgres.join(Path(sys.argv[1]))
print(server.url(), flush=True)
sys.stdin.readline()
"""

pytestmark = pytest.mark.slow


def _holder(var_dir: Path) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(var_dir)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    url = process.stdout.readline().strip()
    assert url, "the holder did not join the server"
    return process, url


def _let_go(process: subprocess.Popen[str]) -> None:
    assert process.stdin is not None
    process.stdin.close()
    assert process.wait(60) == 0


def _postmaster_gone(pid: int, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
            return True
        time.sleep(0.1)
    return False


@pytest.fixture
def var_dir(tmp_path: Path) -> Path:
    # Short: the socket's path must fit in sun_path (108 bytes), or the wheel moves it elsewhere.
    path = tmp_path / "v"
    path.mkdir()
    if os.geteuid() == 0:
        # As root the server runs as the wheel's system user, which must reach the folder.
        for parent in [path, *path.parents]:
            parent.chmod(parent.stat().st_mode | 0o011)
    return path


def test_last_holder_stops_the_server_and_a_second_process_joins(var_dir: Path) -> None:
    first, url = _holder(var_dir)
    pid = embedded_postgres.running_pid(var_dir)
    assert pid is not None
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == ("kyodo",)
        conn.execute("CREATE TABLE kept (n int)")

    second, second_url = _holder(var_dir)
    assert second_url == url
    assert embedded_postgres.running_pid(var_dir) == pid, "the second process started another"

    _let_go(first)
    assert embedded_postgres.running_pid(var_dir) == pid, "stopped while a holder was left"
    with psycopg.connect(url) as conn:
        conn.execute("SELECT 1 FROM kept")

    _let_go(second)
    assert _postmaster_gone(pid)
    assert embedded_postgres.running_pid(var_dir) is None


def test_a_killed_holder_does_not_keep_the_server_alive(var_dir: Path) -> None:
    killed, _ = _holder(var_dir)
    survivor, _ = _holder(var_dir)
    pid = embedded_postgres.running_pid(var_dir)
    assert pid is not None
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait(10)

    _let_go(survivor)
    assert _postmaster_gone(pid)
