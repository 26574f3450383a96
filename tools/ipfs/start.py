"""Start (or stop) a local offline IPFS node for Kyodo: js-ipfs 0.66.1, from this folder's npm.

    python -m tools.ipfs.start --repo var/ipfs --port 5001      # prints the daemon's PID
    python -m tools.ipfs.start --repo var/ipfs --stop            # stops it (by the PID it recorded)

Then point Kyodo at it: ``IPFS_API_URL=http://127.0.0.1:5001``.

The repo (``IPFS_PATH``) is initialised on first start and reused after that, so a node stopped and
started again on the same repo still has its blocks and pins. It listens on nothing but the RPC API
on 127.0.0.1: no swarm, no gateway, no gRPC, no bootstrap, no preload (see DESIGN.md, "Facts
checked on this kind of machine"). A real Kubo node needs none of this: it has the same RPC API.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
JSIPFS = HERE / "node_modules" / ".bin" / "jsipfs"
PID_FILE = "kyodo-daemon.pid"
LOG_FILE = "kyodo-daemon.log"


class NodeError(RuntimeError):
    pass


@dataclass(frozen=True)
class Node:
    pid: int
    api_url: str
    repo: Path


def is_installed() -> bool:
    return JSIPFS.exists()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env(repo: Path) -> dict[str, str]:
    return {**os.environ, "IPFS_PATH": str(repo)}


def init_repo(repo: Path, port: int) -> None:
    """Create the repo if absent, then (always) pin its addresses: API on ``port``, nothing else."""
    repo = repo.resolve()
    if not (repo / "config").exists():
        repo.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [str(JSIPFS), "init", "--empty-repo", "--algorithm", "ed25519"],
            env=_env(repo),
            check=True,
            capture_output=True,
            timeout=120,
        )
    config_path = repo / "config"
    config = json.loads(config_path.read_text())
    addresses = config.setdefault("Addresses", {})
    addresses.update(
        {
            "Swarm": [],
            "Announce": [],
            "API": f"/ip4/127.0.0.1/tcp/{port}",
            "Gateway": [],
            "RPC": "",  # falsy: no gRPC server (an empty list is truthy in JS and breaks it)
            "Delegates": [],
        }
    )
    config["Bootstrap"] = []
    discovery = config.setdefault("Discovery", {})
    discovery["MDNS"] = {"Enabled": False, "Interval": 10}
    discovery["webRTCStar"] = {"Enabled": False}
    tmp = config_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(config, indent=2))
    tmp.replace(config_path)


def http_url(api: str) -> str:
    """``/ip4/127.0.0.1/tcp/5001/http`` (or an http(s) URL) as ``http://127.0.0.1:5001``."""
    if not api.startswith("/"):
        return api.rstrip("/")
    parts = api.strip("/").split("/")
    if len(parts) < 4 or parts[0] not in ("ip4", "ip6", "dns", "dns4", "dns6") or parts[2] != "tcp":
        raise ValueError(f"unsupported IPFS API multiaddr: {api}")
    scheme = parts[4] if len(parts) > 4 else "http"
    host = f"[{parts[1]}]" if parts[0] == "ip6" else parts[1]
    return f"{scheme}://{host}:{parts[3]}"


def api_answers(api_url: str, timeout: float = 2.0) -> bool:
    if not api_url.startswith(("http://", "https://")):
        raise ValueError(f"not an http URL: {api_url}")
    request = urllib.request.Request(f"{api_url}/api/v0/version", method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (our own child, killed, not yet reaped) is not a running node.
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


def _clear_stale_state(repo: Path) -> None:
    """A crashed (kill -9) js-ipfs leaves its lock and api files: remove them if no daemon runs."""
    pid_file = repo / PID_FILE
    if pid_file.exists():
        with contextlib.suppress(ValueError):
            pid = int(pid_file.read_text().strip())
            if pid_alive(pid):
                raise NodeError(f"a daemon (PID {pid}) already runs on {repo}")
        pid_file.unlink()
    for stale in ("repo.lock", "api"):
        path = repo / stale
        if path.is_dir():
            for child in path.iterdir():
                child.unlink()
            path.rmdir()
        elif path.exists():
            path.unlink()


def start(repo: Path, port: int | None = None, *, timeout: float = 90.0) -> Node:
    """Start the daemon on ``repo`` with its API on ``port`` (a free one if None); wait for it."""
    if not is_installed():
        raise NodeError(f"{JSIPFS} missing: run `npm ci --prefix {HERE}` first")
    repo = repo.resolve()
    port = port or free_port()
    if api_answers(f"http://127.0.0.1:{port}", timeout=1.0):
        # Another node holds the port: ours would fail to bind while that one answered for it.
        raise NodeError(f"port {port} already has an IPFS API answering; stop that node first")
    init_repo(repo, port)
    _clear_stale_state(repo)
    api_url = f"http://127.0.0.1:{port}"
    log = (repo / LOG_FILE).open("ab")
    process = subprocess.Popen(
        [str(JSIPFS), "daemon", "--offline", "--enable-preload=false"],
        env=_env(repo),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: a Ctrl-C in the caller does not hit it
    )
    log.close()
    (repo / PID_FILE).write_text(str(process.pid))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise NodeError(
                f"jsipfs daemon exited with {process.returncode}; see {repo / LOG_FILE}:\n"
                + _tail(repo / LOG_FILE)
            )
        if api_answers(api_url):
            return Node(pid=process.pid, api_url=api_url, repo=repo)
        time.sleep(0.2)
    stop_pid(process.pid)
    raise NodeError(
        f"IPFS API at {api_url} did not answer within {timeout:.0f}s:\n" + _tail(repo / LOG_FILE)
    )


def stop_pid(pid: int, *, timeout: float = 15.0) -> None:
    """SIGTERM the daemon (it flushes and releases its repo lock), SIGKILL if it hangs."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(pid)
        if not pid_alive(pid):
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    _reap(pid)


def stop(repo: Path) -> None:
    pid_file = repo.resolve() / PID_FILE
    if not pid_file.exists():
        return
    stop_pid(int(pid_file.read_text().strip()))
    pid_file.unlink(missing_ok=True)


def _reap(pid: int) -> None:
    # Only our own child can be reaped; for a daemon started by another process this is a no-op.
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", type=Path, required=True, help="IPFS_PATH of the node")
    parser.add_argument("--port", type=int, default=5001, help="RPC API port on 127.0.0.1")
    parser.add_argument("--timeout", type=float, default=90.0, help="seconds to wait for the API")
    parser.add_argument("--stop", action="store_true", help="stop the daemon running on --repo")
    args = parser.parse_args(argv)
    try:
        if args.stop:
            stop(args.repo)
            return 0
        node = start(args.repo, args.port, timeout=args.timeout)
    except (NodeError, subprocess.CalledProcessError) as exc:
        print(f"ipfs: {exc}", file=sys.stderr)
        return 1
    print(f"IPFS node on {node.api_url} (IPFS_PATH={node.repo})", file=sys.stderr)
    print(node.pid)
    return 0


if __name__ == "__main__":
    sys.exit(main())
