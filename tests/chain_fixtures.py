"""Pytest fixtures for an EVM chain: in-process py-evm (fast unit tier) and a real anvil.

Import the fixtures into a conftest (``from tests.chain_fixtures import *``) or a test module.

- ``pyevm_session_chain`` / ``anvil_session_chain`` (session): one chain each per test session;
  anvil is ``node_modules/.bin/anvil`` on a free port, stopped by its process-group id. If it cannot
  start, dependent tests skip, or fail when ``KYODO_REQUIRE_SERVICES=1``.
- ``anvil_rpc_url`` (session): the URL of that anvil.
- ``pyevm_chain`` / ``anvil_chain`` (function): the session chain, snapshotted before the test and
  reverted after it, so tests never see each other's state.
- ``chain`` (function): the same, parametrized over ``pyevm`` and ``anvil`` (the anvil half carries
  the ``services`` marker).
- ``reward_contracts`` (function): KyodoToken + RewardDistributor deployed once per session chain
  (before the per-test snapshot), with distinct accounts per role; see :class:`RewardContracts`.

Every :class:`Chain` offers the same time control on both backends: ``increase_time``, ``mine``,
``now``; and ``snapshot``/``revert``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any, NoReturn

import pytest
from eth_typing import ChecksumAddress
from web3 import EthereumTesterProvider, Web3

from rewards.chain import RewardDistributorClient, TokenClient, deploy_distributor, deploy_token
from tools.chain import ANVIL, ROOT, stop_process

TIMELOCK = 86_400  # one day, as in production; tests travel in time instead of shortening it
INITIAL_SUPPLY = 10**9 * 10**18


class Chain:
    """A test chain with unlocked, funded ``accounts`` and uniform time control."""

    kind: str

    def __init__(self, w3: Web3) -> None:
        self.w3 = w3
        self.accounts: list[ChecksumAddress] = [
            Web3.to_checksum_address(a) for a in w3.eth.accounts
        ]
        self.cache: dict[str, Any] = {}

    def now(self) -> int:
        """Timestamp of the latest block."""
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def increase_time(self, seconds: int) -> None:
        """Mine a block ``seconds`` (or, on anvil, a little more) after the latest one."""
        raise NotImplementedError

    def mine(self) -> None:
        raise NotImplementedError

    def snapshot(self) -> Any:
        raise NotImplementedError

    def revert(self, snapshot: Any) -> None:
        raise NotImplementedError


def _one_pass_gas_estimate(state: Any, transaction: Any) -> int:
    """Gas estimate from a single execution at the block gas limit, plus a margin.

    py-evm's default estimator binary-searches with ~8 executions per transaction, which makes
    it the bulk of the unit tier's run time. Reverts surface exactly as before; the margin covers
    the 63/64 rule for nested calls. Receipts still report the gas actually used.
    """
    from eth.vm.spoof import SpoofTransaction

    snapshot = state.snapshot()
    try:
        computation = state.apply_transaction(
            SpoofTransaction(transaction, gas=state.gas_limit, gas_price=0)
        )
        if computation.is_error:
            raise computation.error
        used = state.gas_limit - computation.get_gas_remaining()
    finally:
        state.revert(snapshot)
    return int(min(state.gas_limit, used * 5 // 4 + 50_000))


class PyEvmChain(Chain):
    kind = "pyevm"

    def __init__(self) -> None:
        from eth_tester import EthereumTester, PyEVMBackend

        self.tester = EthereumTester(PyEVMBackend())
        chain = self.tester.backend.chain
        type(chain).gas_estimator = staticmethod(_one_pass_gas_estimate)
        chain.gas_estimator = _one_pass_gas_estimate
        super().__init__(Web3(EthereumTesterProvider(self.tester)))

    def increase_time(self, seconds: int) -> None:
        # time_travel(t) mines a block at t - 1 and makes t the next block's timestamp.
        self.tester.time_travel(self.now() + seconds + 1)

    def mine(self) -> None:
        self.tester.mine_blocks(1)

    def snapshot(self) -> Any:
        return self.tester.take_snapshot()

    def revert(self, snapshot: Any) -> None:
        self.tester.revert_to_snapshot(snapshot)


class AnvilChain(Chain):
    kind = "anvil"

    def __init__(self, url: str) -> None:
        super().__init__(Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 60})))
        self.url = url

    def _rpc(self, method: str, params: list[Any]) -> Any:
        response = self.w3.provider.make_request(method, params)  # type: ignore[arg-type]
        if "error" in response:
            raise RuntimeError(f"{method}: {response['error']}")
        return response["result"]

    def increase_time(self, seconds: int) -> None:
        self._rpc("evm_increaseTime", [seconds])
        self._rpc("evm_mine", [])

    def mine(self) -> None:
        self._rpc("evm_mine", [])

    def snapshot(self) -> Any:
        return self._rpc("evm_snapshot", [])

    def revert(self, snapshot: Any) -> None:
        if not self._rpc("evm_revert", [snapshot]):
            raise RuntimeError(f"anvil could not revert to snapshot {snapshot}")


@dataclass
class RewardContracts:
    """Deployed contracts and who plays which role (all unlocked node accounts)."""

    chain: Chain
    token: TokenClient
    distributor: RewardDistributorClient
    admin: ChecksumAddress  # deployer, DEFAULT_ADMIN_ROLE, token minter, holds the supply
    updater: ChecksumAddress  # ROOT_UPDATER_ROLE
    guardian: ChecksumAddress  # GUARDIAN_ROLE
    manager: ChecksumAddress  # CAMPAIGN_MANAGER_ROLE
    owner: ChecksumAddress  # a requester: owns campaigns, holds tokens
    relayer: ChecksumAddress  # pays gas for claims, holds no role
    others: list[ChecksumAddress] = field(default_factory=list)  # no role, no tokens
    timelock: int = TIMELOCK


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("KYODO_REQUIRE_SERVICES") == "1":
        pytest.fail(f"anvil is required (KYODO_REQUIRE_SERVICES=1) but {reason}")
    pytest.skip(f"anvil unavailable: {reason}")


def _wait_for_rpc(process: subprocess.Popen[bytes], url: str, log: IO[bytes]) -> None:
    w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 2}))
    deadline = time.monotonic() + 20
    while True:
        if process.poll() is not None:
            log.seek(0)
            err = log.read().decode(errors="replace").strip()[:500]
            _unavailable(f"anvil exited with {process.returncode}: {err}")
        try:
            w3.eth.chain_id  # noqa: B018 - a probe
            return
        except Exception:
            if time.monotonic() > deadline:
                _unavailable("no JSON-RPC answer within 20 s")
            time.sleep(0.1)


@pytest.fixture(scope="session")
def anvil_rpc_url() -> Iterator[str]:
    node = shutil.which("node")
    if node is None or not ANVIL.exists():
        _unavailable(f"node or {ANVIL} is missing (run `make install`)")
    port = _free_port()
    # stderr goes to a file, not a pipe: a full pipe that nobody reads would block anvil.
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            [str(ANVIL), "--port", str(port), "--silent"],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=log,
            start_new_session=True,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_for_rpc(process, url, log)
            yield url
        finally:
            # The npm wrapper (node) spawns the real binary; both share the process group.
            stop_process(process)


@pytest.fixture(scope="session")
def pyevm_session_chain() -> PyEvmChain:
    return PyEvmChain()


@pytest.fixture(scope="session")
def anvil_session_chain(anvil_rpc_url: str) -> AnvilChain:
    return AnvilChain(anvil_rpc_url)


@pytest.fixture(
    scope="session", params=["pyevm", pytest.param("anvil", marks=pytest.mark.services)]
)
def session_chain(request: pytest.FixtureRequest) -> Chain:
    chain: Chain = request.getfixturevalue(f"{request.param}_session_chain")
    return chain


def _isolated(chain: Chain) -> Iterator[Chain]:
    snapshot = chain.snapshot()
    try:
        yield chain
    finally:
        chain.revert(snapshot)


@pytest.fixture
def chain(session_chain: Chain) -> Iterator[Chain]:
    yield from _isolated(session_chain)


@pytest.fixture
def pyevm_chain(pyevm_session_chain: PyEvmChain) -> Iterator[PyEvmChain]:
    yield from _isolated(pyevm_session_chain)  # type: ignore[misc]


@pytest.fixture
def anvil_chain(anvil_session_chain: AnvilChain) -> Iterator[AnvilChain]:
    yield from _isolated(anvil_session_chain)  # type: ignore[misc]


def deploy_reward_contracts(chain: Chain, *, timelock: int = TIMELOCK) -> RewardContracts:
    """Deploy KyodoToken + RewardDistributor with one account per role (accounts 0-5)."""
    a = chain.accounts
    admin, updater, guardian, manager, owner, relayer = a[:6]
    token = deploy_token(
        chain.w3, admin=admin, initial_holder=admin, initial_supply=INITIAL_SUPPLY, sender=admin
    )
    distributor = deploy_distributor(
        chain.w3,
        token=token.address,
        timelock=timelock,
        admin=admin,
        updater=updater,
        guardian=guardian,
        manager=manager,
        sender=admin,
    )
    token.transfer(owner, INITIAL_SUPPLY // 2, sender=admin)
    return RewardContracts(
        chain=chain,
        token=token,
        distributor=distributor,
        admin=admin,
        updater=updater,
        guardian=guardian,
        manager=manager,
        owner=owner,
        relayer=relayer,
        others=list(a[6:]),
        timelock=timelock,
    )


@pytest.fixture(scope="session")
def session_reward_contracts(session_chain: Chain) -> RewardContracts:
    contracts = session_chain.cache.get("reward_contracts")
    if contracts is None:
        contracts = deploy_reward_contracts(session_chain)
        session_chain.cache["reward_contracts"] = contracts
    return contracts


@pytest.fixture
def reward_contracts(session_reward_contracts: RewardContracts, chain: Chain) -> RewardContracts:
    # Session fixtures are set up first, so the deployment precedes `chain`'s snapshot.
    assert session_reward_contracts.chain is chain
    return session_reward_contracts


__all__ = [
    "AnvilChain",
    "Chain",
    "PyEvmChain",
    "RewardContracts",
    "anvil_chain",
    "anvil_rpc_url",
    "anvil_session_chain",
    "chain",
    "deploy_reward_contracts",
    "pyevm_chain",
    "pyevm_session_chain",
    "reward_contracts",
    "session_chain",
    "session_reward_contracts",
]
