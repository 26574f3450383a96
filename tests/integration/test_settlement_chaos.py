"""Chaos: epoch settlement and relayed claims (batched into claimMany transactions), with the
Celery worker SIGKILLed at random points.

A real worker process (Redis broker, the PostgreSQL test database) runs ``rewards.tick`` against
anvil (a block a second, two confirmations, a 2-second timelock), while this test adds ledger
entries, asks for claims, and kills the worker with SIGKILL ``KYODO_CHAOS_KILLS`` times (default
22): after a random delay, right after a transaction was signed, or right after an epoch moved.
Then one last worker finishes the work. Afterwards:

* on-chain, the current root commits exactly the ledger's accepted total, and every wallet's leaf
  is exactly the sum of its accepted entries (nothing lost);
* every wallet received exactly what the distributor says it claimed, and that is its leaf after
  the final claims; each payment appears once in the Claimed events (nothing paid twice);
* every root on-chain verifies against its payout table and the ledger; no epoch failed;
* every claim request ended confirmed, or failed only because the contract refused to pay twice
  (``NothingToClaim``) or because a newer root replaced its proof (then renewed, ``superseded``).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from django.conf import settings as django_settings
from django.db import transaction
from eth_account import Account
from web3 import Web3

from core.errors import ApplicationError
from rewards.chain import RewardDistributorClient, TokenClient, deploy_distributor, deploy_token
from rewards.models import (
    ChainTx,
    ChainTxKind,
    ChainTxStatus,
    ClaimRequest,
    ClaimRequestStatus,
    Epoch,
    EpochStatus,
    RewardEntry,
    RewardStatus,
)
from rewards.payout import parse_table
from rewards.selectors import epoch_unfinished, ledger_problems
from rewards.services import claim_request
from rewards.services import outbox as outbox_module
from rewards.verify import verify_roots
from storage.services import get_store
from tools.chain import anvil_key, start_anvil

from ..accounts.factories import UserFactory
from ..conftest import database_url_for_children, need_service

pytestmark = [pytest.mark.services, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
KILLS = int(os.environ.get("KYODO_CHAOS_KILLS", "22"))
TOKEN = 10**18
CAMPAIGNS = (1, 2, 3)
WORKERS = 30
TIMELOCK = 2
# A Redis database of its own: other suites' workers must not take these messages, nor this
# worker theirs.
CHAOS_REDIS_DB = 11


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Worker:
    """A restartable ``celery worker`` process: started, SIGKILLed, started again."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        marker = f"chaos-{os.getpid()}-{self.starts}@%h"
        with self.log.open("ab") as out:
            out.write(f"\n===== start {self.starts}\n".encode())
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "--pool",
                "solo",
                "-l",
                "info",
                "-Q",
                "chain,ingest",
                "-n",
                marker,
                "--without-mingle",
                "--without-gossip",
                "--without-heartbeat",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while True:
            text = self.log.read_text(errors="replace")
            if text.rfind("ready.") > text.rfind(f"===== start {self.starts}\n"):
                return
            if self.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"celery worker did not start:\n{text[-3000:]}")
            time.sleep(0.1)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


class Beat:
    """Plays celery beat: sends ``rewards.tick`` whenever the chain queue is empty."""

    def __init__(self, broker_url: str) -> None:
        import redis

        self.app = Celery("chaos", broker=broker_url)
        self.redis = redis.Redis.from_url(broker_url)

    def tick(self) -> None:
        if self.redis.llen("chain") == 0:
            self.app.send_task("rewards.tick", queue="chain")

    def send(self, name: str) -> None:
        self.app.send_task(name, queue="chain")

    def run_for(self, seconds: float, until: Callable[[], bool] | None = None) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.tick()
            if until is not None and until():
                return True
            time.sleep(0.15)
        return False


@pytest.fixture
def chaos_services(transactional_db: Any, tmp_path: Path) -> Iterator[dict[str, str]]:
    redis_url = os.environ.get("REDIS_URL", "")
    if not redis_url:
        need_service("redis", "REDIS_URL is not set")
    import redis

    broker = redis_url.rsplit("/", 1)[0] + f"/{CHAOS_REDIS_DB}"
    try:
        redis.Redis.from_url(broker, socket_connect_timeout=2).flushdb()
    except Exception as exc:
        need_service("redis", str(exc))
    try:
        anvil = start_anvil(port=_free_port(), log=(tmp_path / "anvil.log").open("wb"))
    except RuntimeError as exc:
        need_service("anvil", str(exc))
    try:
        yield {
            "broker": broker,
            "rpc": anvil.url,
            "database": database_url_for_children(),
        }
    finally:
        anvil.stop()
        redis.Redis.from_url(broker).flushdb()


def _deploy(w3: Web3) -> tuple[RewardDistributorClient, TokenClient, Any, Any, int]:
    platform = Account.from_key(anvil_key(0))
    updater = Account.from_key(anvil_key(1))
    owner = Account.from_key(anvil_key(2))
    token = deploy_token(w3, admin=platform.address, initial_supply=10**9 * TOKEN, sender=platform)
    start_block = w3.eth.block_number
    distributor = deploy_distributor(
        w3,
        token=token.address,
        timelock=TIMELOCK,
        admin=platform.address,
        updater=updater.address,
        guardian=platform.address,
        manager=platform.address,
        sender=platform,
    )
    token.transfer(owner.address, 10**6 * TOKEN, sender=platform)
    token.approve(distributor.address, 10**6 * TOKEN, sender=owner)
    for campaign_id in CAMPAIGNS:
        distributor.create_campaign(campaign_id, owner.address, sender=platform)
        distributor.fund(campaign_id, 10_000 * TOKEN, sender=owner)
    return distributor, token, updater, owner, start_block


def _wallet(i: int) -> str:
    return str(Account.from_key((i + 9000).to_bytes(32, "big")).address)


_annotations = iter(range(10_000_000, 20_000_000))


def _add_entries(users: list[Any], rng: random.Random, count: int) -> None:
    RewardEntry.objects.bulk_create(
        [
            RewardEntry(
                worker=rng.choice(users),
                campaign_id=rng.choice(CAMPAIGNS),
                item_id=next(_annotations),
                annotation_id=next(_annotations),
                amount=rng.choice([TOKEN // 100, TOKEN // 200, 3 * TOKEN // 100]),
                status=rng.choice([RewardStatus.ACCEPTED] * 4 + [RewardStatus.REJECTED]),
            )
            for _ in range(count)
        ]
    )


def _request_claims(users: list[Any], rng: random.Random, share: float) -> int:
    asked = 0
    for user in users:
        if rng.random() > share:
            continue
        try:
            with transaction.atomic():
                claim_request(user=user)
            asked += 1
        except ApplicationError:
            pass  # nothing to claim yet, or already paid
    return asked


def _state() -> str:
    epoch = Epoch.objects.order_by("-number").first()
    txs = Counter(ChainTx.objects.values_list("status", flat=True))
    where = f"epoch {epoch.number} {epoch.status}" if epoch else "no epoch"
    return f"{where}; txs {dict(sorted(txs.items()))}"


def _newly_sent() -> Callable[[], bool]:
    before = set(ChainTx.objects.filter(status="sent").values_list("id", flat=True))
    return lambda: ChainTx.objects.filter(status="sent").exclude(id__in=before).exists()


def _state_changed() -> Callable[[], bool]:
    before = _state()
    return lambda: _state() != before


def _all_settled() -> bool:
    open_txs = ChainTx.objects.filter(status__in=[ChainTxStatus.PENDING, ChainTxStatus.SENT])
    unsettled = RewardEntry.objects.filter(
        status=RewardStatus.ACCEPTED, epoch__isnull=True
    ).exclude(worker__wallet_address="")
    open_claims = ClaimRequest.objects.filter(
        status__in=[ClaimRequestStatus.QUEUED, ClaimRequestStatus.BATCHED]
    )
    return (
        not open_txs.exists()
        and not unsettled.exists()
        and not open_claims.exists()
        and epoch_unfinished() is None
    )


def test_settlement_survives_sigkill_at_random_points(
    chaos_services: dict[str, str],
    settings: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = random.Random(int(os.environ.get("KYODO_CHAOS_SEED", "20261128")))
    w3 = Web3(Web3.HTTPProvider(chaos_services["rpc"], request_kwargs={"timeout": 30}))
    distributor, token, updater, _, start_block = _deploy(w3)
    w3.provider.make_request("evm_setIntervalMining", [1])  # type: ignore[arg-type]

    chain_env = {
        "ETH_RPC_URL": chaos_services["rpc"],
        "KYODO_CHAIN_ID": "31337",
        "KYODO_DISTRIBUTOR_ADDRESS": distributor.address,
        "KYODO_TOKEN_ADDRESS": token.address,
        "KYODO_CHAIN_START_BLOCK": str(start_block),
        "KYODO_UPDATER_KEY": "0x" + bytes(updater.key).hex(),
        "KYODO_CHAIN_CONFIRMATIONS": "2",
        "KYODO_EPOCH_SECONDS": "0",
        "KYODO_CHAIN_RESEND_SECONDS": "20",
    }
    for name, value in chain_env.items():
        setattr(settings, name, int(value) if value.isdigit() else value)
    beat = Beat(chaos_services["broker"])
    # Claims asked for here are sent by the worker: hand its queue the work instead of running it
    # eagerly in this process.
    monkeypatch.setattr(
        outbox_module,
        "enqueue_on_commit",
        lambda name, *args: transaction.on_commit(lambda: beat.send(name)),
    )
    worker = Worker(
        {
            **os.environ,
            **chain_env,
            "DJANGO_SETTINGS_MODULE": "config.settings.test",
            "DATABASE_URL": chaos_services["database"],
            "REDIS_URL": chaos_services["broker"],
            "CELERY_TASK_ALWAYS_EAGER": "0",
            "KYODO_STORE_DIR": str(django_settings.KYODO_STORE_DIR),
        },
        tmp_path / "worker.log",
    )

    users = [UserFactory.create(wallet_address=_wallet(i)) for i in range(WORKERS)]
    users.append(UserFactory.create(wallet_address=""))  # earns, but waits for a wallet
    _add_entries(users, rng, 300)

    kills: list[str] = []
    started = time.monotonic()
    try:
        for i in range(KILLS):
            if i % 3 == 0:
                _add_entries(users, rng, rng.randint(20, 120))
            if i % 4 == 2:
                _request_claims(users, rng, share=0.4)
            worker.start()
            strategy = i % 3
            if strategy == 0:  # anywhere
                beat.run_for(rng.uniform(0.2, 3.0))
            elif strategy == 1:  # just after a transaction was signed and (maybe) broadcast
                beat.run_for(8, until=_newly_sent())
                time.sleep(rng.uniform(0, 0.3))
            else:  # just after an epoch moved on (mid-way through the next step, often)
                beat.run_for(8, until=_state_changed())
                time.sleep(rng.uniform(0, 0.2))
            kills.append(f"kill {i + 1}: {_state()}")
            worker.kill()

        # One last worker finishes the work; then everyone claims everything.
        worker.start()
        assert beat.run_for(90, until=_all_settled), f"not settled: {_state()}"
        users[-1].wallet_address = _wallet(WORKERS)
        users[-1].save()
        assert beat.run_for(60, until=_all_settled), f"not settled: {_state()}"
        for _ in range(3):
            _request_claims(users, rng, share=1.0)
            assert beat.run_for(60, until=_all_settled), f"claims not done: {_state()}"
    finally:
        worker.stop()
    elapsed = time.monotonic() - started
    failed_claims = Counter(
        ClaimRequest.objects.exclude(status=ClaimRequestStatus.CONFIRMED).values_list(
            "status", "error_code"
        )
    )
    batches = ChainTx.objects.filter(kind=ChainTxKind.CLAIM_MANY)
    sys.stdout.write(
        "\n".join(kills)
        + f"\n{KILLS} kills, {elapsed:.0f} s, {Epoch.objects.count()} epochs, "
        + f"{ChainTx.objects.count()} transactions ({batches.count()} claimMany batches for "
        + f"{ClaimRequest.objects.count()} claim requests), claims not confirmed: "
        + f"{dict(failed_claims)}\n"
    )

    # Nothing lost: the current root commits exactly the ledger, wallet by wallet.
    accepted = RewardEntry.objects.filter(status=RewardStatus.ACCEPTED)
    ledger: Counter[str] = Counter()
    for worker_id, amount in accepted.values_list("worker_id", "amount"):
        ledger[next(u.wallet_address for u in users if u.pk == worker_id)] += int(amount or 0)
    assert accepted.filter(epoch__isnull=True).count() == 0
    totals = distributor.totals()
    current = distributor.current_root()
    assert current is not None
    assert totals.committed == sum(ledger.values())
    table = parse_table(get_store().read_bytes(current.payout_table_cid))
    assert {leaf.account: leaf.cumulative for leaf in table.leaves} == dict(ledger)

    # Nothing paid twice: each wallet holds what it claimed, once, and that is its whole leaf.
    paid: Counter[str] = Counter()
    for event in distributor.fetch_events(start_block):
        if event.name == "Claimed":
            paid[event.args["account"]] += event.args["amount"]
    for wallet, amount in ledger.items():
        assert distributor.claimed(wallet) == amount
        assert token.balance_of(wallet) == amount
        assert paid[wallet] == amount
    assert totals.claimed == sum(ledger.values())
    assert totals.outstanding == 0

    # Every root verifies; no epoch failed; one submitRoot per epoch on-chain.
    reports = verify_roots(distributor, get_store().read_bytes)
    assert all(r.ok for r in reports), [r.problems for r in reports]
    for report in reports:
        assert report.table is not None
        assert ledger_problems(table=report.table) == []
    epochs = Epoch.objects.order_by("number")
    assert set(epochs.values_list("status", flat=True)) == {EpochStatus.ACCEPTED}
    assert [e.root_id for e in epochs] == [r.root_id for r in reports]
    assert len(kills) == KILLS
    failed = ChainTx.objects.filter(status=ChainTxStatus.FAILED)
    assert not failed.exclude(kind=ChainTxKind.CLAIM_MANY).exists()
    # A batch fails only when the contract names an entry (ClaimRejected: paid already, or a
    # proof of a root replaced meanwhile; its other entries went into a later batch), or when it
    # was mined in the block that accepted a newer root, after acceptRoot: its replay on the
    # parent block succeeds, so the reason is unknown, and its requests are renewed.
    assert set(failed.values_list("error_code", flat=True)) <= {"ClaimRejected", "UnknownRevert"}
    unpaid = ClaimRequest.objects.exclude(status=ClaimRequestStatus.CONFIRMED)
    assert set(unpaid.values_list("status", "error_code")) <= {
        (ClaimRequestStatus.FAILED, "NothingToClaim"),
        (ClaimRequestStatus.SUPERSEDED, "InvalidProof"),
        (ClaimRequestStatus.SUPERSEDED, ""),
    }
    assert batches.filter(status=ChainTxStatus.CONFIRMED).exists()
