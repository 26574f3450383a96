"""IPFS node fixtures.

``ipfs_node`` (session): the node named by ``KYODO_TEST_IPFS_API_URL`` or ``IPFS_API_URL`` when
set (an http URL or a multiaddr; CI starts one with ``tools/ipfs/start.sh``), else a
js-ipfs daemon from ``tools/ipfs`` on a free port in a temporary IPFS_PATH (when its npm install is
there), else the test is skipped (failed under KYODO_REQUIRE_SERVICES=1).

``own_ipfs_node`` (function): always a daemon of our own, for tests that kill and restart it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import need_service
from tools.ipfs import start as ipfs_start


@dataclass
class IpfsNode:
    api_url: str
    # Set when this test session started the daemon (and so may stop, kill and restart it).
    repo: Path | None = None
    port: int | None = None
    pid: int | None = None
    started: list[int] = field(default_factory=list)

    @property
    def own(self) -> bool:
        return self.repo is not None

    def start(self) -> None:
        assert self.repo is not None, "not our node"
        assert self.port is not None
        node = ipfs_start.start(self.repo, self.port)
        self.pid = node.pid
        self.started.append(node.pid)

    def kill(self) -> None:
        """Stop the daemon abruptly (SIGKILL by PID), as a crash would."""
        assert self.pid is not None, "not running"
        os.kill(self.pid, 9)
        ipfs_start.stop_pid(self.pid, timeout=5)
        self.pid = None

    def stop(self) -> None:
        if self.pid is not None:
            ipfs_start.stop_pid(self.pid)
            self.pid = None


def _start_own(repo: Path) -> IpfsNode:
    if not ipfs_start.is_installed():
        need_service(
            "ipfs", "set IPFS_API_URL, or install the node with `npm ci --prefix tools/ipfs`"
        )
    port = ipfs_start.free_port()
    node = IpfsNode(api_url=f"http://127.0.0.1:{port}", repo=repo, port=port)
    try:
        node.start()
    except ipfs_start.NodeError as exc:
        need_service("ipfs", f"the tools/ipfs daemon did not start: {exc}")
    return node


@pytest.fixture(scope="session")
def ipfs_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IpfsNode]:
    given = os.environ.get("KYODO_TEST_IPFS_API_URL") or os.environ.get("IPFS_API_URL", "")
    if given:
        url = ipfs_start.http_url(given)
        if not ipfs_start.api_answers(url, timeout=5):
            need_service("ipfs", f"the IPFS API at {given} does not answer")
        yield IpfsNode(api_url=url)
        return
    node = _start_own(tmp_path_factory.mktemp("ipfs") / "repo")
    yield node
    node.stop()


@pytest.fixture
def own_ipfs_node(tmp_path: Path) -> Iterator[IpfsNode]:
    node = _start_own(tmp_path / "ipfs-repo")
    yield node
    node.stop()
