"""Next-task benchmark (issue 2): simulated contributors doing next → submit against the server.

    .venv/bin/python -m bench.next_task                                  # 100,000 items, 32 x 30 s
    .venv/bin/python -m bench.next_task --items 10000 100000 1000000     # the size comparison

For each item count: a fresh PostgreSQL database (cloned from a migrated template), one text
campaign with that many items and max_labels 3 (seeded by bench.seed_items), C contributors with
API tokens, and the web server serving config.wsgi with DEBUG off (uWSGI with the production
config/uwsgi.ini by default; `--server gunicorn` for gunicorn's gthread workers). Then
`--concurrency` threads, each a simulated contributor with a keep-alive HTTP connection, loop
GET /api/campaigns/{id}/next/ → POST /api/items/{item}/annotations/ for `--duration` seconds
(the first `--warmup` seconds are not measured), rotating over their share of the contributors.
Afterwards the database is checked: no item over max_labels labels or slots, no contributor
twice on an item, no contributor with two live leases, slots = leases + labels, label counters =
rows, and every 201 the clients saw is a row.

By default the whole pipeline runs as deployed (`--quality worker`): the project's Celery workers
as compose.yaml starts them (one on `default,quality`, one process on `refit` at nice 10, one on
`ingest,export,chain`, and beat), on Redis (a database of the bench's own, emptied before and
after). Contributors answer like people: the item's true class (its id modulo the classes)
`--accuracy` of the time (0.8). Besides the web path it reports CPU per label of each process kind
(web, each worker, beat, PostgreSQL backends, Redis, the client, the machine), the queues' depths
over the run and the seconds they took to drain after it, and the lag from an item's last label to
its close and to its first ledger row (p50/p99, items whose last label came in the window).
`--quality closer` measures the web path alone: no worker; a thread closes each item once it has
its labels, as the quality engine would (the same UPDATE items_complete makes, every 200 ms);
`--quality none`: nothing closes items.

Latency is measured by the client, per call, from sending the request to reading the whole
response. Gunicorn is stopped by its PID at the end (its process group, which it leads).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import math
import os
import queue
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import redis

from bench import pyspy

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/kyodo_bench"


# --- database -------------------------------------------------------------------------------


def with_db(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


def db_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


def admin(url: str) -> psycopg.Connection[Any]:
    return psycopg.connect(with_db(url, "postgres"), autocommit=True)


def prepare_template(url: str) -> str:
    """A migrated database to clone per run (CREATE DATABASE … TEMPLATE is a file copy)."""
    template = db_name(url) + "_tpl"
    with admin(url) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [template]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{template}"')
    # Always: quick when up to date, and a template never lags the code.
    subprocess.run(
        [str(BIN / "python"), "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=ROOT,
        env=django_env(with_db(url, template)),
        check=True,
    )
    return template


def recreate_from(url: str, template: str) -> None:
    name = db_name(url)
    with admin(url) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')


def django_env(database_url: str, var_dir: Path | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DJANGO_SETTINGS_MODULE")}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings.local",
        DATABASE_URL=database_url,
        DJANGO_DEBUG="0",
        CELERY_TASK_ALWAYS_EAGER="0",
        LOG_LEVEL="ERROR",
        KYODO_VAR_DIR=str(var_dir or ROOT / "var" / "bench"),
    )
    return env


def seed(url: str, *, items: int, contributors: int, max_labels: int) -> dict[str, Any]:
    out = subprocess.run(
        [
            str(BIN / "python"), "-m", "bench.seed_items", "--items", str(items),
            "--contributors", str(contributors), "--max-labels", str(max_labels),
            "--min-labels", str(max_labels),
        ],
        cwd=ROOT, env=django_env(url), check=True, capture_output=True, text=True,
    )  # fmt: skip
    seeded: dict[str, Any] = json.loads(out.stdout)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    return seeded


# --- server ---------------------------------------------------------------------------------


def _flush_redis(url: str) -> None:
    redis.Redis.from_url(url).flushdb()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path


def start_server(
    url: str, *, workers: int, threads: int, var_dir: Path, env_extra: dict[str, str],
    access_log: Path | None, app_dir: Path = ROOT, kind: str = "gunicorn",
) -> Server:  # fmt: skip
    port = free_port()
    log = var_dir / f"{kind}.log"
    cmd = [
        str(BIN / "gunicorn"), "config.wsgi:application", "-b", f"127.0.0.1:{port}",
        "-w", str(workers), "--threads", str(threads), "--worker-class", "gthread",
        "--keep-alive", "30", "--log-level", "warning", "--error-logfile", str(log),
    ]  # fmt: skip
    if kind == "uwsgi":
        # uWSGI's own HTTP/1.1 parser in each worker (keep-alive), the same processes x threads.
        # The production settings (config/uwsgi.ini), this run's port, workers and threads.
        cmd = [
            str(BIN / "uwsgi"), "--ini", str(app_dir / "config" / "uwsgi.ini"),
            "--http11-socket", f"127.0.0.1:{port}", "--chdir", str(app_dir),
            "--pythonpath", str(app_dir), "--processes", str(workers), "--threads", str(threads),
            "--disable-logging", "--logto", str(log),
        ]  # fmt: skip
    if access_log is not None and kind == "gunicorn":
        # %(D)s: time in the worker, microseconds, from request parsed to response written.
        cmd += [
            "--access-logfile",
            str(access_log),
            "--access-logformat",
            "%(m)s %(U)s %(s)s %(D)s",
        ]
    env = django_env(url, var_dir) | env_extra
    proc = subprocess.Popen(cmd, cwd=app_dir, env=env, start_new_session=True)
    server = Server(proc=proc, port=port, log=log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{kind} exited with {proc.returncode}; see {log}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/api/campaigns/")
            conn.getresponse().read()
            conn.close()
            return server
        except OSError:
            time.sleep(0.2)
    stop_server(server)
    raise RuntimeError(f"{kind} did not answer within 60 s")


def stop_server(server: Server) -> None:
    """SIGTERM to the master by its PID (graceful), then its process group if anything is left."""
    proc = server.proc
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the group this master leads: its workers
            proc.wait(timeout=10)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, 0)
        os.killpg(proc.pid, signal.SIGKILL)  # a worker that outlived its master


# --- the quality engine ---------------------------------------------------------------------

# As compose.yaml deploys them: one worker for the per-label updates, one for refits and trainings
# (one process, at nice 10), one for the rest, and beat.
WORKERS = {
    "worker-quality": ["worker", "-Q", "default,quality"],
    "worker-refit": ["worker", "-Q", "refit"],
    "worker-io": ["worker", "-Q", "ingest,export,chain"],
    "beat": ["beat"],
}
QUEUES = ("default", "quality", "refit", "ingest", "export", "chain")
PENDING = "quality-pending-items"


def start_workers(
    url: str,
    *,
    var_dir: Path,
    env_extra: dict[str, str],
    app_dir: Path,
    concurrency: dict[str, int],
    kinds: tuple[str, ...] = tuple(WORKERS),
) -> dict[str, subprocess.Popen[bytes]]:
    """The project's Celery worker command per kind (compose.yaml), on this run's broker."""
    env = django_env(url, var_dir) | env_extra
    procs = {}
    for name, args in WORKERS.items():
        if name not in kinds:
            continue
        cmd = [str(BIN / "celery"), "-A", "config", *args, "-l", "info"]
        if name == "worker-refit":
            cmd = ["nice", "-n", "10", *cmd]
        if args[0] == "worker":
            cmd += ["--concurrency", str(concurrency[name]), "-n", f"{name}@%h"]
        else:
            cmd += ["--schedule", str(var_dir / "celerybeat-schedule")]
        log = (var_dir / f"{name}.log").open("wb")
        procs[name] = subprocess.Popen(
            cmd, cwd=app_dir, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    deadline = time.monotonic() + 60
    for name in ("worker-quality", "worker-refit", "worker-io"):
        if name not in kinds:
            continue
        while "ready." not in (var_dir / f"{name}.log").read_text(errors="replace"):
            if procs[name].poll() is not None or time.monotonic() > deadline:
                stop_workers(procs)
                raise RuntimeError(f"celery {name} did not start; see {var_dir / name}.log")
            time.sleep(0.2)
    return procs


def drain_backlog(
    url: str, args: argparse.Namespace, *, var_dir: Path, env_extra: dict[str, str]
) -> dict[str, Any]:
    """--backlog: the load ran with no quality worker (the others running), so every label's
    quality update waits. Start it now (the web idle) and time it through the backlog: its rate
    with --quality-concurrency processes, the scale-out measure (issue 22)."""
    client = redis.Redis.from_url(args.redis_url)
    decided = "SELECT coalesce(sum(n_labels), 0) FROM quality_itemconsensus"

    def one(sql: str) -> int:
        with psycopg.connect(url) as conn:
            row = conn.execute(sql).fetchone()
        return int(row[0]) if row else 0

    labels = one("SELECT count(*) FROM labeling_annotation")
    before = one(decided)
    pending = int(client.scard("kyodo:batch:quality.update_items:pending"))
    t0 = time.perf_counter()
    workers = start_workers(
        url, var_dir=var_dir, env_extra=env_extra, app_dir=args.app_dir,
        concurrency={"worker-quality": args.quality_concurrency}, kinds=("worker-quality",),
    )  # fmt: skip
    started = time.perf_counter() - t0
    leader = workers["worker-quality"].pid
    cpu0 = sum(_cpu_seconds(p) for p in [leader, *_children(leader)])
    busy0 = _busy_seconds()
    t1 = time.perf_counter()
    deadline = t1 + args.drain_timeout
    while time.perf_counter() < deadline:
        depths = queue_depths(client)
        if depths[PENDING] == 0 and depths["quality"] == 0:
            break
        time.sleep(0.05)
    seconds = time.perf_counter() - t1
    busy = _busy_seconds() - busy0
    cpu = sum(_cpu_seconds(p) for p in [leader, *_children(leader)]) - cpu0
    after = one(decided)
    return {
        "workers": workers,
        "quality_processes": args.quality_concurrency,
        "labels": labels,
        "items_pending": pending,
        "workers_started_s": round(started, 1),
        "quality_drained_s": round(seconds, 2),
        "items_per_s": round(pending / seconds, 1),
        "labels_per_s": round((after - before) / seconds, 1),
        "quality_worker_cores": round(cpu / seconds, 2),
        "machine_busy_cores": round(busy / seconds, 2),
    }


def _busy_seconds() -> float:
    """CPU seconds the whole machine has been busy (not idle or waiting on I/O), from boot."""
    ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def stop_workers(procs: dict[str, subprocess.Popen[bytes]]) -> None:
    """SIGTERM (a warm shutdown: the task at hand finishes), then the group if anything is left."""
    for proc in procs.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs.values():
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


def queue_depths(client: redis.Redis) -> dict[str, int]:
    """Messages waiting per queue (kombu keeps a queue's messages in a list of its name, and in
    one list per priority step beside it)."""
    depths = {}
    for name in QUEUES:
        keys = [name, *(f"{name}\x06\x16{step}" for step in (1, 2, 3, 4, 5, 6, 7, 8, 9))]
        with client.pipeline() as pipe:
            for key in keys:
                pipe.llen(key)
            depths[name] = sum(int(n) for n in pipe.execute())
    # Items whose labels wait for the quality worker's next batch (core.batches).
    depths[PENDING] = int(client.scard("kyodo:batch:quality.update_items:pending"))
    return depths


class QueueProbe(threading.Thread):
    """Samples the queues' depths once a second while the load runs."""

    def __init__(self, redis_url: str) -> None:
        super().__init__(daemon=True)
        self.client = redis.Redis.from_url(redis_url)
        self.stopping = threading.Event()
        self.samples: list[tuple[float, dict[str, int]]] = []

    def run(self) -> None:
        while not self.stopping.wait(1.0):
            self.samples.append((time.perf_counter(), queue_depths(self.client)))

    def drain(self, timeout: float) -> float | None:
        """Seconds until every queue is empty after the load (None: not within `timeout`)."""
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < timeout:
            if not any(queue_depths(self.client).values()):
                return round(time.perf_counter() - t0, 1)
            time.sleep(0.5)
        return None

    def report(self, *, t_from: float, t_to: float) -> dict[str, Any]:
        window = [depths for t, depths in self.samples if t_from <= t < t_to]
        if not window:
            return {}
        return {
            name: {"max": max(d[name] for d in window), "end": window[-1][name]}
            for name in (*QUEUES, PENDING)
        }


def redis_server_pids() -> list[int]:
    pids = []
    for comm in Path("/proc").glob("[0-9]*/comm"):
        with contextlib.suppress(OSError):
            if comm.read_text().strip() == "redis-server":
                pids.append(int(comm.parent.name))
    return pids


# Lag of the pipeline after a submit, per item whose last label came in the measured window: to
# the item's close (`completed_at`, set by the quality update or a refit that decided it: what
# next-task waits on) and to its first ledger row. Milliseconds. (Not to the consensus row's
# `updated_at`: every refit rewrites the rows it re-decides.)
LAG_SQL = {
    "close": """
        SELECT EXTRACT(EPOCH FROM i.completed_at - max(a.created_at)) * 1000
        FROM labeling_annotation a JOIN labeling_item i ON i.id = a.item_id
        WHERE i.campaign_id = %(c)s AND i.status = 'complete'
        GROUP BY a.item_id, i.completed_at HAVING max(a.created_at) BETWEEN %(t0)s AND %(t1)s""",
    "ledger": """
        SELECT EXTRACT(EPOCH FROM min(r.created_at) - max(a.created_at)) * 1000
        FROM labeling_annotation a JOIN labeling_item i ON i.id = a.item_id
        JOIN rewards_rewardentry r ON r.item_id = a.item_id
        WHERE i.campaign_id = %(c)s AND i.status = 'complete'
        GROUP BY a.item_id HAVING max(a.created_at) BETWEEN %(t0)s AND %(t1)s""",
}


def pipeline_lag(url: str, campaign_id: int, t0: float, t1: float) -> dict[str, Any]:
    """p50/p99 of each lag (LAG_SQL) for items whose last label came between t0 and t1 (epoch s)."""
    params = {
        "c": campaign_id,
        "t0": datetime.fromtimestamp(t0, tz=UTC),
        "t1": datetime.fromtimestamp(t1, tz=UTC),
    }
    out: dict[str, Any] = {}
    with psycopg.connect(url, autocommit=True) as conn:
        for name, sql in LAG_SQL.items():
            ms = sorted(float(r[0]) for r in conn.execute(sql, params).fetchall())
            out[name] = {
                "items": len(ms),
                "p50_ms": round(percentile(ms, 50), 1),
                "p99_ms": round(percentile(ms, 99), 1),
            }
    return out


# --- load -----------------------------------------------------------------------------------


@dataclass
class Sample:
    start: float
    kind: str  # "next" or "submit"
    seconds: float
    status: int


class Connection:
    """One keep-alive HTTP/1.1 connection, reopened if the server closed it."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def call(
        self, method: str, path: str, token: str, body: bytes | None = None
    ) -> tuple[int, bytes]:
        headers = {"Authorization": f"Token {token}", "Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        for attempt in (1, 2):
            try:
                self.conn.request(method, path, body=body, headers=headers)
                response = self.conn.getresponse()
                return response.status, response.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")


@dataclass
class LoadResult:
    samples: list[Sample] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    submitted: int = 0  # every 201, warm-up included: must equal the annotation rows
    started: float = 0.0


def _cpu_seconds(pid: int) -> float:
    """utime + stime of one process, in seconds (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(stat.parent.name))
    return out


class CpuProbe:
    """CPU time spent over the measured window by the web server (master and workers), by each
    Celery process kind (its master and pool), by the PostgreSQL backends serving the bench
    database, by Redis, by this client, and by the whole machine."""

    def __init__(self, url: str, server_pid: int, others: dict[str, int] | None = None) -> None:
        self.url, self.server_pid = url, server_pid
        self.others = others or {}  # kind -> the PID leading its processes
        self.marks: list[dict[str, float]] = []

    def _machine(self) -> tuple[float, float]:
        parts = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
        ticks = [int(x) for x in parts]
        idle = ticks[3] + ticks[4]
        return (sum(ticks) - idle) / os.sysconf("SC_CLK_TCK"), time.perf_counter()

    def mark(self) -> None:
        with psycopg.connect(with_db(self.url, "postgres"), autocommit=True) as conn:
            backends = [
                r[0]
                for r in conn.execute(
                    "SELECT pid FROM pg_stat_activity WHERE datname = %s", [db_name(self.url)]
                ).fetchall()
            ]
        busy, now = self._machine()
        self.marks.append(
            {
                "server": sum(
                    _cpu_seconds(p) for p in [self.server_pid, *_children(self.server_pid)]
                ),
                "postgres": sum(_cpu_seconds(p) for p in backends),
                **{
                    kind: sum(_cpu_seconds(p) for p in [pid, *_children(pid)])
                    for kind, pid in self.others.items()
                },
                "redis": sum(_cpu_seconds(p) for p in redis_server_pids()),
                "client": time.process_time(),
                "machine": busy,
                "wall": now,
                "unix": time.time(),
                "loadavg": os.getloadavg()[0],
            }
        )

    def report(self, cycles: int) -> dict[str, Any]:
        if len(self.marks) < 2 or not cycles:
            return {}
        a, b = self.marks[0], self.marks[1]
        wall = b["wall"] - a["wall"]
        kinds = ("server", *self.others, "postgres", "redis", "client", "machine")
        out: dict[str, Any] = {
            f"{k}_ms_per_cycle": round((b[k] - a[k]) * 1000 / cycles, 2) for k in kinds
        }
        out["machine_busy_cores"] = round((b["machine"] - a["machine"]) / wall, 2)
        out["loadavg_1m"] = [round(a["loadavg"], 2), round(b["loadavg"], 2)]
        return out


class Closer(threading.Thread):
    """Stands in for the quality worker: closes items that have their max_labels labels."""

    def __init__(self, url: str, campaign_id: int, max_labels: int) -> None:
        super().__init__(daemon=True)
        self.url, self.campaign_id, self.max_labels = url, campaign_id, max_labels
        self.inbox: queue.SimpleQueue[int] = queue.SimpleQueue()
        self.stopping = threading.Event()
        self.closed = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with psycopg.connect(self.url) as conn:
                while not self.stopping.is_set() or not self.inbox.empty():
                    time.sleep(0.2)
                    batch = set()
                    while not self.inbox.empty():
                        batch.add(self.inbox.get())
                    if batch:
                        self.close(conn, sorted(batch))
        except BaseException as exc:
            self.error = exc

    def close(self, conn: psycopg.Connection[Any], item_ids: list[int]) -> None:
        # As labeling.services.items_complete: the item rows (in id order), then the campaign.
        with conn.transaction():
            rows = conn.execute(
                "SELECT id FROM labeling_item WHERE id = ANY(%s) AND status = 'open' "
                "AND label_count >= %s ORDER BY id FOR UPDATE",
                [item_ids, self.max_labels],
            ).fetchall()
            ids = [r[0] for r in rows]
            if not ids:
                return
            conn.execute(
                "UPDATE labeling_item SET status = 'complete', completed_at = now() "
                "WHERE id = ANY(%s)",
                [ids],
            )
            conn.execute(
                "UPDATE labeling_campaign SET completed_count = completed_count + %s WHERE id = %s",
                [len(ids), self.campaign_id],
            )
        self.closed += len(ids)


def run_load(
    *, port: int, seeded: dict[str, Any], concurrency: int, duration: float, warmup: float,
    closer: Closer | None, probe: CpuProbe, accuracy: float,
    on_window: Callable[[], None] | None = None,
) -> LoadResult:  # fmt: skip
    """The closed-loop load; `on_window` runs when the measured window starts."""
    result = LoadResult()
    lock = threading.Lock()
    stop = threading.Event()
    campaign_id = seeded["campaign_id"]
    classes = seeded["classes"]
    tokens: list[str] = seeded["tokens"]
    barrier = threading.Barrier(concurrency + 1)

    def answer(item_id: int, rng: random.Random) -> str:
        """The item's true class (its id modulo the classes) with probability `accuracy`, else
        another class at random: a contributor like a person (accuracy 1/k: a spammer)."""
        true = classes[item_id % len(classes)]
        if rng.random() < accuracy:
            return true
        return rng.choice([c for c in classes if c != true])

    def contributor(index: int) -> None:
        mine = tokens[index::concurrency]
        done: set[int] = set()
        samples: list[Sample] = []
        submitted = 0
        conn = Connection(port)
        rng = random.Random(index)
        turn = 0
        try:
            barrier.wait()
            while not stop.is_set() and len(done) < len(mine):
                turn = (turn + 1) % len(mine)
                if turn in done:
                    continue
                token = mine[turn]
                t0 = time.perf_counter()
                status, body = conn.call("GET", f"/api/campaigns/{campaign_id}/next/", token)
                t1 = time.perf_counter()
                samples.append(Sample(t0, "next", t1 - t0, status))
                if status == 204:
                    done.add(turn)
                    continue
                if status != 200:
                    raise RuntimeError(f"next: {status} {body[:300]!r}")
                item_id = json.loads(body)["item_id"]
                payload = json.dumps({"label": answer(item_id, rng)}).encode()
                t2 = time.perf_counter()
                status, body = conn.call(
                    "POST", f"/api/items/{item_id}/annotations/", token, payload
                )
                t3 = time.perf_counter()
                samples.append(Sample(t2, "submit", t3 - t2, status))
                if status != 201:
                    raise RuntimeError(f"submit: {status} {body[:300]!r}")
                submitted += 1
                if closer is not None:
                    closer.inbox.put(item_id)
        except BaseException as exc:
            with lock:
                result.errors.append(f"contributor {index}: {type(exc).__name__}: {exc}")
        finally:
            with lock:
                result.samples.extend(samples)
                result.submitted += submitted

    threads = [
        threading.Thread(target=contributor, args=(i,), daemon=True) for i in range(concurrency)
    ]
    for thread in threads:
        thread.start()
    barrier.wait()
    result.started = time.perf_counter()
    time.sleep(warmup)
    probe.mark()
    if on_window is not None:
        on_window()
    time.sleep(duration - warmup)
    probe.mark()
    stop.set()  # each finishes its cycle: no lease is left dangling
    for thread in threads:
        thread.join(timeout=60)
    if any(t.is_alive() for t in threads):
        result.errors.append("a contributor thread did not finish")
    return result


# --- results --------------------------------------------------------------------------------


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def summarize(result: LoadResult, *, t_from: float, t_to: float) -> dict[str, Any]:
    window = [s for s in result.samples if t_from <= s.start < t_to]
    out: dict[str, Any] = {"seconds": round(t_to - t_from, 1)}
    for kind in ("next", "submit"):
        ms = sorted(s.seconds * 1000 for s in window if s.kind == kind)
        out[kind] = {
            "calls": len(ms),
            "per_s": round(len(ms) / (t_to - t_from), 1),
            "mean": round(sum(ms) / len(ms), 2) if ms else math.nan,
            **{f"p{p}": round(percentile(ms, p), 2) for p in (50, 95, 99)},
            "max": round(ms[-1], 2) if ms else math.nan,
        }
    cycles = sum(1 for s in window if s.kind == "submit" and s.status == 201)
    out["cycles_per_s"] = round(cycles / (t_to - t_from), 1)
    out["status"] = dict(Counter(f"{s.kind} {s.status}" for s in result.samples))
    return out


def server_times(access_log: Path) -> dict[str, dict[str, float]]:
    """Per-call time inside gunicorn (the %(D)s field), for comparison with the client's view."""
    per: dict[str, list[float]] = {"next": [], "submit": []}
    for line in access_log.read_text().splitlines():
        method, path, _status, micros = line.split()
        per["next" if method == "GET" and path.endswith("/next/") else "submit"].append(
            int(micros) / 1000
        )
    out = {}
    for kind, values in per.items():
        values.sort()
        out[kind] = {f"p{p}": round(percentile(values, p), 2) for p in (50, 95, 99)}
    return out


CHECKS = {
    "items over max_labels labels": """
        SELECT count(*) FROM (SELECT a.item_id FROM labeling_annotation a
          JOIN labeling_item i ON i.id = a.item_id WHERE i.campaign_id = %(c)s
          GROUP BY a.item_id HAVING count(*) > %(max)s) x""",
    "items over max_labels slots": """
        SELECT count(*) FROM labeling_item WHERE campaign_id = %(c)s AND slots_taken > %(max)s""",
    "contributors twice on an item (labels)": """
        SELECT count(*) FROM (SELECT a.item_id, a.worker_id FROM labeling_annotation a
          JOIN labeling_item i ON i.id = a.item_id WHERE i.campaign_id = %(c)s
          GROUP BY 1, 2 HAVING count(*) > 1) x""",
    "contributors twice on an item (leases)": """
        SELECT count(*) FROM (SELECT item_id, worker_id FROM labeling_assignment
          WHERE campaign_id = %(c)s GROUP BY 1, 2 HAVING count(*) > 1) x""",
    "contributors with two live leases": """
        SELECT count(*) FROM (SELECT worker_id FROM labeling_assignment
          WHERE campaign_id = %(c)s AND status = 'leased' GROUP BY 1 HAVING count(*) > 1) x""",
    "items whose slots != leases + labels": """
        SELECT count(*) FROM labeling_item i LEFT JOIN (
            SELECT item_id, count(*) FILTER (WHERE status IN ('leased', 'submitted')) AS n
            FROM labeling_assignment WHERE campaign_id = %(c)s GROUP BY item_id) a
          ON a.item_id = i.id
        WHERE i.campaign_id = %(c)s AND i.slots_taken <> coalesce(a.n, 0)""",
    "items whose label_count != labels": """
        SELECT count(*) FROM labeling_item i LEFT JOIN (
            SELECT item_id, count(*) AS n FROM labeling_annotation GROUP BY item_id) a
          ON a.item_id = i.id
        WHERE i.campaign_id = %(c)s AND i.label_count <> coalesce(a.n, 0)""",
    "campaign label tally minus labels": """
        SELECT abs(
            (SELECT coalesce(sum(labels), 0) FROM labeling_campaignlabeltally
              WHERE campaign_id = %(c)s)
          - (SELECT count(*) FROM labeling_annotation a JOIN labeling_item i ON i.id = a.item_id
              WHERE i.campaign_id = %(c)s))""",
}


def verify(url: str, seeded: dict[str, Any], result: LoadResult) -> dict[str, int]:
    params = {"c": seeded["campaign_id"], "max": seeded["max_labels"]}
    with psycopg.connect(url, autocommit=True) as conn:
        found = {name: int(conn.execute(sql, params).fetchone()[0]) for name, sql in CHECKS.items()}  # type: ignore[index]
        rows = conn.execute(
            "SELECT count(*) FROM labeling_annotation a JOIN labeling_item i ON i.id = a.item_id "
            "WHERE i.campaign_id = %(c)s",
            params,
        ).fetchone()
        labels = int(rows[0]) if rows else 0
        found["201s without a row, or rows without a 201"] = abs(labels - result.submitted)
        found["labels stored"] = labels
    return found


def explain(url: str, seeded: dict[str, Any]) -> str:
    """EXPLAIN ANALYZE of the lease statement as the app runs it (bench/explain_lease.py)."""
    out = subprocess.run(
        [str(BIN / "python"), "-m", "bench.explain_lease", str(seeded["campaign_id"])],
        cwd=ROOT, env=django_env(url), capture_output=True, text=True, check=False,
    )  # fmt: skip
    return out.stdout if out.returncode == 0 else f"explain failed: {out.stderr[-2000:]}"


# The statements of one cycle as the web path sends them on PostgreSQL (labeling/fast_lane.py,
# labeling/services/hot_sql.py and the lease function of migration labeling 0007; prepared,
# -M prepared; each in autocommit, its own transaction): next-task (token, campaign and block,
# the lease), the submit of a class label (token, lease and class checked by its write). Without
# Django: what PostgreSQL alone can do on this machine. One pgbench client = one contributor; the
# item is closed once full, as the closer does.
PGBENCH_CYCLE = """
\\set w :first_worker + :client_id
WITH r AS (
  SELECT u.id AS w, c.id AS c, c.label_schema, c.max_labels,
         u.is_active AND c.status = 'active' AND b.id IS NULL AS go
  FROM authtoken_token t JOIN accounts_user u ON u.id = t.user_id
  LEFT JOIN labeling_campaign c ON c.id = :c
  LEFT JOIN labeling_workerblock b ON b.campaign_id = c.id AND b.worker_id = u.id
  WHERE t.user_id = :w
)
SELECT l.lease_id AS lease, l.lease_item_id AS item FROM r LEFT JOIN (
  SELECT l.* FROM r AS g CROSS JOIN LATERAL labeling_lease_next(
    1264144196, g.w, g.c, false, now(), now() + interval '5 minutes', g.max_labels,
    NULL::numeric) AS l
  WHERE g.go
) AS l ON true \\gset
WITH target AS (
  SELECT a.id, a.campaign_id, a.worker_id
  FROM authtoken_token t JOIN accounts_user u ON u.id = t.user_id
  JOIN labeling_assignment a ON a.worker_id = u.id AND a.item_id = :item
  JOIN labeling_campaign c ON c.id = a.campaign_id
  WHERE t.user_id = :w AND u.is_active AND a.status = 'leased'
    AND c.task_type IN ('image_classification', 'text_classification')
    AND c.label_schema -> 'classes' @> '[{"name": "positive"}]'::jsonb
), locked AS (
  SELECT id FROM labeling_item WHERE id = :item AND EXISTS (SELECT 1 FROM target) FOR UPDATE
), lease AS (
  UPDATE labeling_assignment a SET status = 'submitted' FROM target
  WHERE a.id = target.id AND a.status = 'leased' AND EXISTS (SELECT 1 FROM locked)
  RETURNING a.id, a.campaign_id, a.worker_id
), ann AS (
  INSERT INTO labeling_annotation (item_id, worker_id, assignment_id, value, label, created_at)
  SELECT :item, lease.worker_id, lease.id, '{"label": "positive"}', 'positive', now()
  FROM lease RETURNING id
), item AS (
  UPDATE labeling_item SET label_count = label_count + 1
  WHERE id = :item AND EXISTS (SELECT 1 FROM lease)
), tally AS (
  INSERT INTO labeling_campaignlabeltally (campaign_id, shard, labels)
  SELECT lease.campaign_id, mod(lease.worker_id, 16), 1 FROM lease
  ON CONFLICT (campaign_id, shard) DO UPDATE SET labels = labeling_campaignlabeltally.labels + 1
)
SELECT id FROM ann;
UPDATE labeling_item SET status = 'complete', completed_at = now() WHERE id = :item
  AND label_count >= 3;
"""


def pgbench_cycle(
    url: str, seeded: dict[str, Any], *, clients: int, seconds: float
) -> dict[str, Any]:
    """PGBENCH_CYCLE through pgbench: cycles/s and mean latency per cycle (both transactions)."""
    pgbench = shutil.which("pgbench") or "/usr/lib/postgresql/15/bin/pgbench"
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT min(user_id) FROM authtoken_token t JOIN accounts_user u ON u.id = t.user_id "
            "WHERE u.email LIKE %s",
            [f"bench-c{seeded['campaign_id']}-%"],
        ).fetchone()
    first = int(row[0]) if row and row[0] is not None else 0
    script = ROOT / "var" / "bench" / "next_task" / "cycle.pgbench"
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(PGBENCH_CYCLE)
    out = subprocess.run(
        [
            pgbench, "-n", "-M", "prepared", "-c", str(clients), "-j", "2",
            "-T", str(int(seconds)), "-r",
            "-D", f"first_worker={first}", "-D", f"c={seeded['campaign_id']}",
            "-f", str(script), url,
        ],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    result: dict[str, Any] = {"returncode": out.returncode}
    for line in out.stdout.splitlines():
        if line.startswith("tps = "):
            result["cycles_per_s"] = float(line.split()[2])
        elif line.startswith("latency average"):
            result["cycle_ms_mean"] = float(line.split()[3])
    if out.returncode:
        result["stderr"] = out.stderr[-2000:]
    return result


def markdown_table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| items | cycles/s | next p50 | next p95 | next p99 | submit p50 | submit p95 | "
        "submit p99 | close lag p50 / p99 ms | quality worker ms/label | drained | invariants |"
        "\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"
    )
    lines = [head]
    for r in rows:
        s = r["summary"]
        ok = "all passed" if r["invariants_ok"] else "FAILED"
        lag = s.get("lag", {}).get("close")
        lag_text = f"{lag['p50_ms']} / {lag['p99_ms']}" if lag else "-"
        worker_ms = s.get("cpu", {}).get("worker-quality_ms_per_cycle", "-")
        drained = s.get("drained_after_s", "-")
        drained_text = "no" if "drained_after_s" in s and drained is None else f"{drained} s"
        lines.append(
            f"| {r['items']:,} | {s['cycles_per_s']} | {s['next']['p50']} | {s['next']['p95']} | "
            f"{s['next']['p99']} | {s['submit']['p50']} | {s['submit']['p95']} | "
            f"{s['submit']['p99']} | {lag_text} | {worker_ms} | {drained_text} | {ok} |"
        )
    return "\n".join(lines)


# --- main -----------------------------------------------------------------------------------


def bench_one(args: argparse.Namespace, template: str, items: int) -> dict[str, Any]:
    url = args.database_url
    var_dir = ROOT / "var" / "bench" / "next_task"
    shutil.rmtree(var_dir, ignore_errors=True)
    var_dir.mkdir(parents=True)
    print(f"\n== {items:,} items: fresh database {db_name(url)}", flush=True)
    recreate_from(url, template)
    t = time.perf_counter()
    seeded = seed(url, items=items, contributors=args.contributors, max_labels=args.max_labels)
    took = time.perf_counter() - t
    print(f"   seeded {items:,} items and {args.contributors:,} contributors in {took:.1f} s")
    env_extra = {"DATABASE_CONN_MAX_AGE": str(args.conn_max_age)}
    if args.broker == "memory":
        env_extra["REDIS_URL"] = "memory://"  # settings take the broker URL from REDIS_URL
    elif args.broker == "redis":
        # The production broker; a database of its own, emptied before and after the run.
        env_extra["REDIS_URL"] = args.redis_url
        _flush_redis(args.redis_url)
    access_log = var_dir / "access.log" if args.server_timing else None
    server = start_server(
        url, workers=args.workers, threads=args.threads, var_dir=var_dir, env_extra=env_extra,
        access_log=access_log, app_dir=args.app_dir, kind=args.server,
    )  # fmt: skip
    closer = (
        Closer(url, seeded["campaign_id"], seeded["max_labels"])
        if args.quality == "closer"
        else None
    )
    workers: dict[str, subprocess.Popen[bytes]] = {}
    queues: QueueProbe | None = None
    drained: float | None = None
    backlog: dict[str, Any] | None = None
    try:
        if args.quality == "worker":
            # --backlog: all but the quality worker now; it starts after the load.
            kinds = tuple(k for k in WORKERS if not (args.backlog and k == "worker-quality"))
            workers = start_workers(
                url, var_dir=var_dir, env_extra=env_extra, app_dir=args.app_dir,
                concurrency={"worker-quality": args.quality_concurrency,
                             "worker-refit": 1, "worker-io": args.io_concurrency},
                kinds=kinds,
            )  # fmt: skip
            queues = QueueProbe(args.redis_url)
            queues.start()
        if closer is not None:
            closer.start()
        print(
            f"   {args.server} pid {server.proc.pid} on :{server.port} ({args.workers} workers x "
            f"{args.threads} threads); quality: {args.quality}; {args.concurrency} contributors "
            f"({args.accuracy:.0%} right) for {args.duration:.0f} s",
            flush=True,
        )
        probe = CpuProbe(url, server.proc.pid, {k: p.pid for k, p in workers.items()})
        recordings: list[pyspy.Recording] = []

        def profile() -> None:
            if args.py_spy:
                leaders = {"server": server.proc.pid, **{k: p.pid for k, p in workers.items()}}
                pids = {kind: [pid, *_children(pid)] for kind, pid in leaders.items()}
                recordings.append(pyspy.Recording(
                    args.py_spy, pids, args.duration - args.warmup, var_dir / "py-spy"
                ))  # fmt: skip

        result = run_load(
            port=server.port, seeded=seeded, concurrency=args.concurrency,
            duration=args.duration, warmup=args.warmup, closer=closer, probe=probe,
            accuracy=args.accuracy, on_window=profile,
        )  # fmt: skip
        profiles = recordings[0].summary() if recordings else None
        if args.backlog:
            backlog = drain_backlog(url, args, var_dir=var_dir, env_extra=env_extra)
            workers |= backlog.pop("workers")
        if queues is not None:
            drained = queues.drain(args.drain_timeout)
    finally:
        if closer is not None:
            closer.stopping.set()
            closer.join(timeout=30)
        if queues is not None:
            queues.stopping.set()
        stop_workers(workers)
        stop_server(server)
        if args.broker == "redis":
            _flush_redis(args.redis_url)
    if len(probe.marks) < 2:
        raise RuntimeError(f"the load did not run: {result.errors[:3]}")
    summary = summarize(result, t_from=probe.marks[0]["wall"], t_to=probe.marks[1]["wall"])
    if queues is not None:
        summary["queues"] = queues.report(
            t_from=probe.marks[0]["wall"], t_to=probe.marks[1]["wall"]
        )
        summary["drained_after_s"] = drained
        window = (probe.marks[0]["unix"], probe.marks[1]["unix"])
        summary["lag"] = pipeline_lag(url, seeded["campaign_id"], *window)
    summary["cpu"] = probe.report(
        sum(1 for x in result.samples if x.kind == "submit" and x.status == 201
            and probe.marks[0]["wall"] <= x.start < probe.marks[1]["wall"])
    )  # fmt: skip
    checks = verify(url, seeded, result)
    invariants_ok = not result.errors and all(
        v == 0 for k, v in checks.items() if k != "labels stored"
    )
    row: dict[str, Any] = {
        "items": items,
        "summary": summary,
        "checks": checks,
        "errors": result.errors[:10],
        "invariants_ok": invariants_ok,
        "closed_by_closer": closer.closed if closer else None,
    }
    if profiles is not None:
        row["py_spy"] = profiles
    if backlog is not None:
        row["backlog"] = backlog
    if access_log is not None:
        row["server_ms"] = server_times(access_log)
    if args.explain:
        row["explain"] = explain(url, seeded)
    if args.pgbench:
        # 10 s: PostgreSQL alone runs ~1,300 cycles/s, which would use up the open slots of a
        # 10,000-item campaign in a longer run (pgbench then stops with "expected one row").
        row["pgbench"] = pgbench_cycle(
            url, seeded, clients=args.concurrency, seconds=min(10.0, args.duration - args.warmup)
        )
    print(json.dumps({k: v for k, v in row.items() if k != "explain"}, indent=1))
    if args.explain:
        print(row["explain"])
    return row


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n", 1)[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--items", type=int, nargs="+", default=[100_000])
    parser.add_argument("--contributors", type=int, default=1_000)
    parser.add_argument(
        "--concurrency", type=int, default=32, help="simulated contributors at once"
    )
    parser.add_argument(
        "--duration", type=float, default=30.0, help="seconds of load, warm-up included"
    )
    parser.add_argument("--warmup", type=float, default=5.0, help="first seconds not measured")
    parser.add_argument(
        "--server", choices=["uwsgi", "gunicorn"], default="uwsgi",
        help="the WSGI server: uwsgi as in production (config/uwsgi.ini), or gunicorn gthread",
    )  # fmt: skip
    parser.add_argument("--workers", type=int, default=4, help="server worker processes")
    parser.add_argument("--threads", type=int, default=8, help="threads per server worker")
    parser.add_argument("--max-labels", type=int, default=3)
    parser.add_argument("--conn-max-age", type=int, default=600, help="DATABASE_CONN_MAX_AGE")
    parser.add_argument(
        "--quality", choices=["worker", "closer", "none"], default="worker",
        help="worker: the real quality engine as deployed (Celery workers and beat on Redis); "
        "closer: a thread that only closes full items (the web path alone); none: nothing closes",
    )  # fmt: skip
    parser.add_argument(
        "--accuracy", type=float, default=0.8,
        help="how often a contributor gives the item's true class (1/classes: a spammer)",
    )  # fmt: skip
    parser.add_argument(
        "--backlog", action="store_true",
        help="--quality worker: run the load with no worker, then time the workers through the "
        "backlog (the quality worker's own rate; scale-out with --quality-concurrency)",
    )  # fmt: skip
    parser.add_argument(
        "--py-spy", default="", metavar="PATH",
        help="a py-spy binary: profile each process kind in the measured window (bench/pyspy.py)",
    )  # fmt: skip
    parser.add_argument("--quality-concurrency", type=int, default=4, help="as compose.yaml")
    parser.add_argument("--io-concurrency", type=int, default=2, help="as compose.yaml")
    parser.add_argument(
        "--drain-timeout", type=float, default=300.0,
        help="--quality worker: how long to wait after the load for the queues to empty",
    )  # fmt: skip
    parser.add_argument(
        "--broker", choices=["redis", "filesystem", "memory"], default="redis",
        help="where the quality task goes on each submit (redis: as in production)",
    )  # fmt: skip
    parser.add_argument(
        "--redis-url", default="redis://127.0.0.1:6379/14",
        help="--broker redis: a Redis database the bench may empty",
    )  # fmt: skip
    parser.add_argument(
        "--server-timing", action="store_true", help="gunicorn access log with %%(D)s"
    )
    parser.add_argument("--explain", action="store_true", help="EXPLAIN ANALYZE the candidate scan")
    parser.add_argument(
        "--pgbench", action="store_true",
        help="afterwards, the same SQL per cycle through pgbench, without Django (DB-only ceiling)",
    )  # fmt: skip
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument(
        "--app-dir", type=Path, default=ROOT,
        help="serve this checkout instead (A/B a change; same venv, same migrations)",
    )  # fmt: skip
    parser.add_argument("--keep", action="store_true", help="keep the bench database afterwards")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.quality == "worker" and args.broker != "redis":
        raise SystemExit("--quality worker runs Celery workers as deployed: on --broker redis")
    if db_name(args.database_url) in ("postgres", "template0", "template1"):
        raise SystemExit("give the benchmark a database of its own: it drops and recreates it")
    print(f"== template: migrating {db_name(args.database_url)}_tpl", flush=True)
    template = prepare_template(args.database_url)
    rows = [bench_one(args, template, n) for n in args.items]
    if not args.keep:
        with admin(args.database_url) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db_name(args.database_url)}" WITH (FORCE)')
    print()
    print(markdown_table(rows))
    if args.json:
        meta = {
            "argv": sys.argv[1:],
            "cpus": os.cpu_count(),
            "when": time.strftime("%Y-%m-%d %H:%M"),
        }
        args.json.write_text(json.dumps({"meta": meta, "runs": rows}, indent=1) + "\n")
    return 0 if all(r["invariants_ok"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
