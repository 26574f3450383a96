"""Import benchmark (issue 22, item 5): N text items into a campaign through the API, as deployed.

    .venv/bin/python -m bench.import_items --items 100000           # deployed run, then a profile
    .venv/bin/python -m bench.import_items --items 100000 --runs 3  # best and all of three runs
    .venv/bin/python -m bench.import_items --items 10000 --ipfs     # IpfsStore, a tools/ipfs node

What is timed (the deployed run): a requester's one upload of a JSONL of N distinct texts (one
`{"text": ...}` per line, 40-400 characters) to `POST /api/campaigns/{id}/imports/`, served by
gunicorn (config.wsgi, DEBUG off), and the import job that upload queues, run by the project's
Celery worker as compose.yaml deploys it (`worker-io`: `-Q ingest,export,chain --concurrency 2`,
on Redis), until `GET /api/imports/{id}/` answers `done`, which the job writes in the transaction
that opens the items. The clock starts before the first byte of the request and stops when that
poll (every 50 ms) is read. Making the file, the database and the campaign is not timed. Beat is
not started, so pins are made only by the `storage.ensure_pins` tasks the import itself queues.

Then the same import in-process, under cProfile: the upload through Django's test client (the
whole request stack, same view) and the job through the Celery task's own code
(`labeling.run_import.apply`, as a worker calls it). Its breakdown (parse, CID computation, blob
writes, DB inserts, pins, other) is wall time inside the job attributed by the functions on the
stack (see `CATEGORIES`); cProfile inflates the Python-heavy parts, so the shares are what counts.

Every run gets a fresh PostgreSQL database cloned from a migrated template (`--database-url`,
default `postgresql://postgres@127.0.0.1:5432/kyodo_import_bench`) and a fresh store under
`var/bench-import/`; afterwards it checks that the N items are open, every CID is Kubo's for its
text, the campaign counts N items, and every item has a pin row. Servers and workers are stopped
by their PIDs.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import http.client
import io
import json
import os
import platform
import pstats
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import psycopg
import redis

from bench import next_task
from bench.next_task import db_name, free_port, with_db

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/kyodo_import_bench"
DEFAULT_REDIS = "redis://127.0.0.1:6379/9"
_PHRASES = (
    "the quick brown fox jumps over lazy dog service delivery was great terrible slow fast",
    "product quality price support staff friendly rude order arrived late early broken",
    "perfect would recommend never again five stars one star refund battery screen sound",
)
WORDS = [word for phrase in _PHRASES for word in phrase.split()]


# --- setup (not timed) ----------------------------------------------------------------------


def prepare_template(url: str) -> str:
    template = db_name(url) + "_tpl"
    with psycopg.connect(with_db(url, "postgres"), autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [template]).fetchone():
            conn.execute(f'CREATE DATABASE "{template}"')
    subprocess.run(
        [str(BIN / "python"), "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=ROOT,
        env=django_env(with_db(url, template), ROOT / "var" / "bench-import"),
        check=True,
    )
    return template


def recreate_db(url: str, template: str) -> None:
    with psycopg.connect(with_db(url, "postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{db_name(url)}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{db_name(url)}" TEMPLATE "{template}"')


def django_env(
    database_url: str, var_dir: Path, extra: dict[str, str] | None = None
) -> dict[str, str]:
    """bench.next_task's environment, with the store under `var_dir`."""
    env = next_task.django_env(database_url, var_dir)
    env["KYODO_STORE_DIR"] = str(var_dir / "store")
    env.update(extra or {})
    return env


def write_jsonl(path: Path, n: int, seed: int = 22) -> int:
    """N distinct texts, 40-400 characters; returns the file's size in bytes."""
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as out:
        for i in range(n):
            words = [f"review {i}:"]
            target = rng.randint(40, 400)
            length = len(words[0])
            while length < target:
                word = rng.choice(WORDS)
                words.append(word)
                length += len(word) + 1
            out.write(json.dumps({"text": " ".join(words)[:400]}) + "\n")
    return path.stat().st_size


def setup_django(env: dict[str, str]) -> None:
    os.environ.update(env)
    import django

    django.setup()


def make_campaign() -> tuple[int, str]:
    """A requester with an API token and an active text campaign: (campaign id, token)."""
    from django.contrib.auth.hashers import make_password
    from rest_framework.authtoken.models import Token

    from accounts.models import Role, User
    from labeling.models import Campaign, CampaignStatus, TaskType
    from labeling.schema import normalize_schema

    owner = User.objects.create(
        email=f"bench-import-{uuid.uuid4().hex[:8]}@example.com",
        role=Role.REQUESTER,
        password=make_password(None),
    )
    token = Token.objects.create(key=Token.generate_key(), user=owner)
    task_type = TaskType.TEXT_CLASSIFICATION
    campaign = Campaign.objects.create(
        owner=owner,
        title="Bench import",
        task_type=task_type,
        label_schema=normalize_schema(["positive", "negative", "neutral"], task_type=task_type),
        status=CampaignStatus.ACTIVE,
    )
    return campaign.pk, token.key


def verify(campaign_id: int, jsonl: Path, n: int) -> dict[str, Any]:
    """The import's end state: N open items, Kubo's CID of each text, a pin row per item."""
    from labeling.models import Campaign, Item, ItemStatus
    from storage.models import Pin
    from storage.unixfs import cid_of_bytes

    items = Item.objects.filter(campaign_id=campaign_id)
    by_text = dict(items.values_list("text", "cid"))
    wrong = 0
    with jsonl.open(encoding="utf-8") as fp:
        for line in fp:
            text = json.loads(line)["text"]
            if by_text.get(text) != cid_of_bytes(text.encode("utf-8")):
                wrong += 1
    cids = list(by_text.values())
    pinned_rows = sum(
        Pin.objects.filter(cid__in=cids[i : i + 10_000]).count()
        for i in range(0, len(cids), 10_000)
    )
    out = {
        "items": items.count(),
        "open": items.filter(status=ItemStatus.OPEN).count(),
        "item_count": Campaign.objects.get(pk=campaign_id).item_count,
        "wrong_or_missing_cids": wrong,
        "pin_rows": pinned_rows,
    }
    out["ok"] = (
        out["items"] == out["open"] == out["item_count"] == out["pin_rows"] == n and wrong == 0
    )
    return out


# --- the deployed run -----------------------------------------------------------------------


def start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    out = log.open("wb")
    return subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
    )


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM (warm shutdown), then the process group it leads: bench.next_task's way."""
    next_task.stop_workers({"process": proc})


def wait_for(check: Any, what: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while not check():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start; see {log}")
        time.sleep(0.2)


def http_ok(port: int) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        conn.request("GET", "/api/campaigns/")
        conn.getresponse().read()
        conn.close()
        return True
    except OSError:
        return False


def multipart_upload(
    port: int, path: str, token: str, file: Path, name: str
) -> tuple[int, dict[str, Any]]:
    """POST one file as multipart/form-data field `file`, streamed from disk."""
    boundary = uuid.uuid4().hex
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
        "Content-Type: application/x-ndjson\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    length = len(head) + file.stat().st_size + len(tail)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    conn.putrequest("POST", path)
    conn.putheader("Authorization", f"Token {token}")
    conn.putheader("Content-Type", f"multipart/form-data; boundary={boundary}")
    conn.putheader("Content-Length", str(length))
    conn.putheader("Accept", "application/json")
    conn.endheaders()
    conn.send(head)
    with file.open("rb") as fp:
        while chunk := fp.read(1 << 20):
            conn.send(chunk)
    conn.send(tail)
    response = conn.getresponse()
    body = json.loads(response.read() or b"{}")
    conn.close()
    return response.status, body


def get_json(conn: http.client.HTTPConnection, path: str, token: str) -> dict[str, Any]:
    conn.request("GET", path, headers={"Authorization": f"Token {token}"})
    response = conn.getresponse()
    data: dict[str, Any] = json.loads(response.read())
    return data


def deployed_run(
    args: argparse.Namespace, template: str, jsonl: Path, var_dir: Path, extra: dict[str, str]
) -> dict[str, Any]:
    from django.db import connections

    connections.close_all()
    recreate_db(args.database_url, template)
    shutil.rmtree(var_dir / "store", ignore_errors=True)
    redis.Redis.from_url(args.redis_url).flushdb()
    campaign_id, token = make_campaign()
    connections.close_all()
    env = django_env(args.database_url, var_dir, {"REDIS_URL": args.redis_url, **extra})
    port = free_port()
    web_log, worker_log = var_dir / "gunicorn.log", var_dir / "worker-io.log"
    web = start(
        [
            str(BIN / "gunicorn"), "config.wsgi:application", "-b", f"127.0.0.1:{port}",
            "-w", "2", "--threads", "4", "--worker-class", "gthread", "--timeout", "600",
            "--log-level", "warning",
        ],
        env,
        web_log,
    )  # fmt: skip
    worker = start(
        [
            str(BIN / "celery"), "-A", "config", "worker", "-Q", "ingest,export,chain",
            "-l", "info", "--concurrency", "2", "-n", f"bench-io-{port}@%h",
        ],
        env,
        worker_log,
    )  # fmt: skip
    try:
        wait_for(lambda: http_ok(port), "gunicorn", web, web_log)
        wait_for(
            lambda: "ready." in worker_log.read_text(errors="replace"), "celery", worker, worker_log
        )
        time.sleep(1.0)  # the worker's pool processes settle
        quiet = wait_quiet(args.wait_quiet) if args.wait_quiet else {}
        load_before = os.getloadavg()[0]
        meter = CpuMeter(args.database_url, {"gunicorn": web.pid, "worker": worker.pid})
        meter.sample(baseline=True)
        cpu0 = machine_cpu()
        t0 = time.perf_counter()
        status, job = multipart_upload(
            port, f"/api/campaigns/{campaign_id}/imports/", token, jsonl, jsonl.name
        )
        t_upload = time.perf_counter() - t0
        if status != 202:
            raise RuntimeError(f"upload answered {status}: {job}")
        poll = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        polls = 0
        while True:
            job = get_json(poll, f"/api/imports/{job['id']}/", token)
            polls += 1
            if polls % 10 == 0:
                meter.sample()
            if job["status"] in ("done", "failed"):
                break
            if time.perf_counter() - t0 > args.timeout:
                raise RuntimeError(f"the import did not finish in {args.timeout} s: {job}")
            time.sleep(0.05)
        t_total = time.perf_counter() - t0
        cpu1 = machine_cpu()
        meter.sample()
        poll.close()
    finally:
        stop(web)
        pins = pin_states()
        stop(worker)
    if job["status"] != "done":
        raise RuntimeError(f"the import failed: {job}")
    result = {
        "items": args.items,
        "upload_s": round(t_upload, 3),
        "job_s": round(t_total - t_upload, 3),
        "total_s": round(t_total, 3),
        "items_per_s": round(args.items / t_total, 1),
        "job": {
            k: job[k] for k in ("total", "processed", "created", "duplicates", "rejected_count")
        },
        "job_db_seconds": job_seconds(job["id"]),
        "polls": polls,
        # Other work on the machine shows here: this import alone keeps at most ~2 cores busy
        # (the worker, PostgreSQL, briefly gunicorn); a 1-minute load above ~1 before it starts
        # means someone else was running.
        "load_1min_before": round(load_before, 2),
        **quiet,
        "machine_busy_cores": round(
            (cpu1[0] - cpu0[0]) / (cpu1[1] - cpu0[1]) * (os.cpu_count() or 1), 2
        ),
        "pins_when_done": pins,
        # CPU seconds over the timed window, by process kind (the pin worker's share included).
        "cpu_s": meter.totals(),
        "check": verify(campaign_id, jsonl, args.items),
    }
    return result


class CpuMeter:
    """CPU seconds of the processes doing the import, by kind: gunicorn (master and workers), the
    Celery worker (and its pool), and the PostgreSQL backends of this run's database. Less
    sensitive than wall time to another session's load on the same cores. Sampled while the
    import runs, so a process that ends early still counts up to its last sample."""

    def __init__(self, database_url: str, roots: dict[str, int]) -> None:
        self.roots = roots
        self.conn = psycopg.connect(with_db(database_url, "postgres"), autocommit=True)
        self.database = db_name(database_url)
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.kind: dict[int, str] = {}

    def _pids(self) -> dict[int, str]:
        pids: dict[int, str] = {}
        for kind, root in self.roots.items():
            with contextlib.suppress(psutil.Error):
                proc = psutil.Process(root)
                for p in [proc, *proc.children(recursive=True)]:
                    pids[p.pid] = kind
        rows = self.conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            [self.database],
        ).fetchall()
        pids.update({pid: "postgres" for (pid,) in rows})
        return pids

    def sample(self, *, baseline: bool = False) -> None:
        for pid, kind in self._pids().items():
            with contextlib.suppress(psutil.Error):
                times = psutil.Process(pid).cpu_times()
                used = times.user + times.system
                self.kind[pid] = kind
                self.last[pid] = used
                if baseline:
                    self.first[pid] = used

    def totals(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for pid, used in self.last.items():
            kind = self.kind[pid]
            out[kind] = out.get(kind, 0.0) + used - self.first.get(pid, 0.0)
        self.conn.close()
        return {k: round(v, 2) for k, v in sorted(out.items())}


def machine_cpu() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def wait_quiet(limit: float, busy_below: float = 0.3) -> dict[str, float]:
    """Wait (up to ``limit`` seconds) until the machine is idle: under ``busy_below`` cores busy
    over 5 s. Other sessions' benchmarks share this machine; a run beside one measures both."""
    started = time.monotonic()
    while True:
        a = machine_cpu()
        time.sleep(5)
        b = machine_cpu()
        busy = (b[0] - a[0]) / max(b[1] - a[1], 1) * (os.cpu_count() or 1)
        waited = time.monotonic() - started
        if busy < busy_below or waited >= limit:
            return {"busy_cores_before": round(busy, 2), "waited_s": round(waited, 1)}


def pin_states() -> dict[str, int]:
    from django.db.models import Count

    from storage.models import Pin

    return dict(
        Pin.objects.values_list("status").annotate(n=Count("id")).values_list("status", "n")
    )


def job_seconds(job_id: int) -> float | None:
    from labeling.models import ImportJob

    job = ImportJob.objects.get(pk=job_id)
    if job.finished_at is None:
        return None
    return round((job.finished_at - job.created_at).total_seconds(), 3)


# --- the profiled run -----------------------------------------------------------------------

# Where the job's time goes, from the profile's cumulative times of these functions. They do not
# nest, but for two cases taken out by subtraction: a block written from inside the CID importer
# (its sink) counts as a blob write, not CID work; a pin row's INSERT, made inside the batch
# commit, counts as pins, not as a DB insert. The names cover the code before issue 22 (a CID and
# a blob per item) and after it (CIDs and blobs per batch); a name that is absent counts 0.
CATEGORIES: dict[str, list[tuple[str, str]]] = {
    "parse": [
        ("storage/validation.py", "iter_text_rows"),
        ("labeling/services/imports.py", "_count_lines"),
    ],
    "cid": [
        ("storage/unixfs.py", "write"),
        ("storage/unixfs.py", "finish"),
        ("storage/cid.py", "cid_of_raw_block"),
    ],
    "blob_writes": [
        ("storage/blockstore.py", "put"),
        ("storage/blockstore.py", "put_many"),
        ("storage/blockstore.py", "_sync_filesystem"),
    ],
    "pins": [
        ("storage/pins.py", "pins_ensure_many"),
        ("storage/pins.py", "pins_wake"),
    ],
    "db_inserts": [
        ("labeling/services/imports.py", "_commit_batch"),
        ("labeling/services/imports.py", "_finish"),
        ("labeling/services/imports.py", "_set_total"),
    ],
    "read_source": [
        ("labeling/services/imports.py", "_copy_source"),
    ],
    # After issue 22: the job's thread waiting for the store thread to finish the next batch.
    "store_thread_wait": [
        ("concurrent/futures/_base.py", "result"),
    ],
}


def _cum(stats: pstats.Stats, file_suffix: str, func: str) -> float:
    total = 0.0
    for (filename, _line, name), row in stats.stats.items():  # type: ignore[attr-defined]
        if name == func and filename.endswith(file_suffix):
            total += row[3]
    return total


def breakdown(stats: pstats.Stats, wall: float) -> dict[str, float]:
    """Seconds per category (see CATEGORIES), and the rest as `other`."""
    out = {cat: sum(_cum(stats, f, n) for f, n in fns) for cat, fns in CATEGORIES.items()}
    # The importer's sink writes blocks (before issue 22, every text was written that way).
    out["cid"] = max(out["cid"] - _cum(stats, "storage/blockstore.py", "put"), 0.0)
    out["db_inserts"] -= _cum(stats, "storage/pins.py", "pins_ensure_many")
    out["other"] = wall - sum(out.values())
    return {k: round(v, 3) for k, v in out.items()}


def top(stats: pstats.Stats, key: str, n: int) -> list[str]:
    buf = io.StringIO()
    stats.stream = buf  # type: ignore[attr-defined]
    stats.sort_stats(key).print_stats(n)
    lines = buf.getvalue().splitlines()
    start = next(i for i, line in enumerate(lines) if line.lstrip().startswith("ncalls"))
    return [line.replace(str(ROOT) + "/", "") for line in lines[start : start + n + 1]]


def profiled_run(
    args: argparse.Namespace, template: str, jsonl: Path, var_dir: Path
) -> dict[str, Any]:
    from django.db import connections
    from django.test import Client

    from labeling.models import ImportJob
    from labeling.tasks import run_import
    from storage.services import get_store

    connections.close_all()
    recreate_db(args.database_url, template)
    shutil.rmtree(var_dir / "store", ignore_errors=True)
    get_store.cache_clear()
    campaign_id, token = make_campaign()
    client = Client(HTTP_AUTHORIZATION=f"Token {token}", HTTP_HOST="127.0.0.1")
    # The upload queues the job on Redis as deployed; no worker runs now, so it is run below, in
    # this process, through the task's own code.
    request_profile = cProfile.Profile()
    t0 = time.perf_counter()
    with jsonl.open("rb") as fp:
        request_profile.enable()
        response = client.post(f"/api/campaigns/{campaign_id}/imports/", {"file": fp})
        request_profile.disable()
    t_upload = time.perf_counter() - t0
    if response.status_code != 202:
        raise RuntimeError(f"upload answered {response.status_code}: {response.content[:300]!r}")
    job_id = response.json()["id"]
    job_profile = cProfile.Profile()
    store_profile, restore = profile_store_thread()
    t1 = time.perf_counter()
    job_profile.enable()
    try:
        run_import.apply(args=(job_id,), throw=True)
    finally:
        job_profile.disable()
        restore()
    t_job = time.perf_counter() - t1
    job = ImportJob.objects.get(pk=job_id)
    if job.status != "done":
        raise RuntimeError(f"the import failed: {job.error}")
    job_stats = pstats.Stats(job_profile)
    request_stats = pstats.Stats(request_profile)
    profile_path = var_dir / "import_job.prof"
    job_stats.dump_stats(profile_path)
    out: dict[str, Any] = {
        "upload_s_profiled": round(t_upload, 3),
        "job_s_profiled": round(t_job, 3),
        "job_breakdown_s": breakdown(job_stats, t_job),
    }
    if store_profile.calls:
        # Texts are stored by a second thread (after issue 22): its own profile, its own wall time.
        store_stats = pstats.Stats(store_profile.profile)
        store_stats.dump_stats(var_dir / "import_store_thread.prof")
        out["store_thread_s_profiled"] = round(store_profile.seconds, 3)
        out["store_thread_breakdown_s"] = breakdown(store_stats, store_profile.seconds)
        out["store_thread_top_cumulative"] = top(store_stats, "cumulative", 15)
    out |= {
        "upload_top_cumulative": top(request_stats, "cumulative", 12),
        "job_top_cumulative": top(job_stats, "cumulative", 30),
        "job_top_tottime": top(job_stats, "tottime", 20),
        "profile_file": str(profile_path),
        "check": verify(campaign_id, jsonl, args.items),
    }
    return out


class ThreadProfile:
    """A profile of every call of one function, made in whatever thread runs it."""

    def __init__(self) -> None:
        self.profile = cProfile.Profile()
        self.calls = 0
        self.seconds = 0.0


def profile_store_thread() -> tuple[ThreadProfile, Any]:
    """Profile `_store_texts_durably`, which the import runs in its store thread (cProfile only
    sees the thread it is enabled in); absent before issue 22, when texts were stored inline."""
    from labeling.services import imports

    recorded = ThreadProfile()
    original = getattr(imports, "_store_texts_durably", None)
    if original is None:
        return recorded, lambda: None

    def profiled(units: Any) -> Any:
        started = time.perf_counter()
        recorded.profile.enable()
        try:
            return original(units)
        finally:
            recorded.profile.disable()
            recorded.calls += 1
            recorded.seconds += time.perf_counter() - started

    imports._store_texts_durably = profiled

    def restore() -> None:
        imports._store_texts_durably = original

    return recorded, restore


# --- main -----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=1, help="deployed runs (the profile runs once)")
    parser.add_argument("--no-profile", action="store_true", help="skip the in-process profile")
    parser.add_argument("--profile-only", action="store_true")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--redis-url", default=DEFAULT_REDIS)
    parser.add_argument("--ipfs", action="store_true", help="IpfsStore on a tools/ipfs node")
    parser.add_argument("--timeout", type=float, default=3600.0)
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="before each run, wait up to this long for the machine to be idle (other sessions)",
    )
    parser.add_argument("--label", default="", help="a name for this run in the output")
    parser.add_argument("--json", type=Path, help="also write the result here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    var_dir = ROOT / "var" / "bench-import"
    var_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="kyodo-bench-import-"))
    jsonl = work / f"texts-{args.items}.jsonl"
    size = write_jsonl(jsonl, args.items)
    node = None
    extra: dict[str, str] = {}
    try:
        if args.ipfs:
            from tools.ipfs import start as ipfs_start

            node = ipfs_start.start(work / "ipfs-repo")
            extra["IPFS_API_URL"] = node.api_url
        template = prepare_template(args.database_url)
        setup_django(django_env(args.database_url, var_dir, {"REDIS_URL": args.redis_url, **extra}))
        result: dict[str, Any] = {
            "label": args.label,
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "commit": subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
            ).stdout.strip(),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
            "store": "IpfsStore (js-ipfs 0.66.1)" if args.ipfs else "LocalStore (fsync on)",
            "items": args.items,
            "file_bytes": size,
            "command": "python -m bench.import_items " + " ".join(argv or sys.argv[1:]),
        }
        if not args.profile_only:
            runs = []
            for i in range(args.runs):
                run = deployed_run(args, template, jsonl, var_dir, extra)
                print(
                    f"deployed run {i + 1}: {run['items_per_s']:,.0f} items/s "
                    f"(upload {run['upload_s']} s + job {run['job_s']} s = {run['total_s']} s), "
                    f"check {'ok' if run['check']['ok'] else 'FAILED ' + str(run['check'])}",
                    file=sys.stderr,
                )
                runs.append(run)
            result["deployed"] = runs
            result["best_items_per_s"] = max(r["items_per_s"] for r in runs)
        if not args.no_profile:
            result["profile"] = profiled_run(args, template, jsonl, var_dir)
            print("job breakdown (s):", result["profile"]["job_breakdown_s"], file=sys.stderr)
    finally:
        if node is not None:
            from tools.ipfs import start as ipfs_start

            ipfs_start.stop_pid(node.pid)
        shutil.rmtree(work, ignore_errors=True)
        with contextlib.suppress(Exception):
            redis.Redis.from_url(args.redis_url).flushdb()
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
