"""Demo chain helpers: a local anvil (state under var/anvil/), the reward contracts, funded demo
campaigns, wallets for the demo users, and a first settled epoch.

``tools/demo.py`` calls two functions:

* :func:`demo_start` before the web and worker start: unless ``ETH_RPC_URL`` is set, starts anvil
  with ``--state var/anvil/state.json`` (the chain survives a restart), then runs
  ``python -m tools.chain setup``: deploys KyodoToken + RewardDistributor (timelock 0) if needed,
  gives the demo users anvil's dev wallets, registers and funds the demo campaigns on-chain.
* :func:`demo_settle` once the worker runs: waits until the seeded labels have become accepted
  ledger entries (paying rewards held while a worker was on probation, as the beat's
  ``rewards.resolve_pending`` would), then ``python -m tools.chain settle`` settles and accepts an
  epoch, so bob and carol (the seeded crowd, trusted on their gold answers) have a claimable
  balance; alice's labels follow in later epochs (the demo's beat opens one every
  ``KYODO_EPOCH_SECONDS``, 120 s by default).

The chaos test uses :func:`start_anvil` for a node of its own.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
ANVIL = ROOT / "node_modules" / ".bin" / "anvil"
STATE_DIR = Path(os.environ.get("KYODO_VAR_DIR", ROOT / "var")) / "anvil"
MNEMONIC = "test test test test test test test test test test test junk"  # anvil's dev accounts
TOKEN = 10**18
# Demo user → anvil dev account index (0 is the platform: deployer, updater, campaign manager).
DEMO_WALLETS = {
    "requester@kyodo.local": 1,
    "bob@kyodo.local": 2,
    "carol@kyodo.local": 3,
    "alice@kyodo.local": 4,
}
REQUESTER = "requester@kyodo.local"
DEFAULT_BUDGET = 100 * TOKEN
QUIET_SECONDS = 4  # the ledger stopped growing: the worker has accounted the seeded labels


@cache
def anvil_key(index: int) -> str:
    """Private key of anvil's dev account ``index`` (public test keys: never use elsewhere)."""
    from eth_account import Account

    Account.enable_unaudited_hdwallet_features()
    account = Account.from_mnemonic(MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")
    return "0x" + bytes(account.key).hex()


@dataclass
class Anvil:
    process: subprocess.Popen[bytes]
    url: str

    def stop(self) -> None:
        stop_process(self.process)


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group (anvil dumps its state on the way out), SIGKILL if it hangs."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def _rpc_ok(url: str) -> bool:
    import json
    import urllib.request

    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []})
    request = urllib.request.Request(  # noqa: S310 - our own loopback URL
        url, data=body.encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=2) as response:  # noqa: S310
            return bool(response.status == 200)
    except OSError:
        return False


def start_anvil(
    *,
    port: int = 8545,
    state: Path | None = None,
    block_time: float | None = None,
    log: IO[bytes] | None = None,
    timeout: float = 30.0,
) -> Anvil:
    """Start anvil (own process group) and wait for its JSON-RPC; raise RuntimeError if it fails."""
    if shutil.which("node") is None or not ANVIL.exists():
        raise RuntimeError(f"{ANVIL} or node is missing (run `make install`)")
    args = [str(ANVIL), "--port", str(port), "--chain-id", "31337", "--silent"]
    if state is not None:
        state.parent.mkdir(parents=True, exist_ok=True)
        # Loaded at start, dumped at exit and every 10 s (so even a killed demo keeps its chain).
        args += ["--state", str(state), "--state-interval", "10"]
    if block_time is not None:
        args += ["--block-time", str(block_time)]
    process = subprocess.Popen(
        args,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=log if log is not None else subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while not _rpc_ok(url):
        if process.poll() is not None or time.monotonic() > deadline:
            stop_process(process)
            raise RuntimeError(f"anvil did not answer on {url}")
        time.sleep(0.1)
    return Anvil(process, url)


# ------------------------------------------------------------------ called by tools/demo.py


def demo_start(env: dict[str, str]) -> subprocess.Popen[bytes] | None:
    """Anvil (unless ``ETH_RPC_URL`` is set) and the on-chain demo set-up; updates ``env``.

    Returns the anvil process for the demo to stop with its other children, or None.
    """
    env.setdefault("KYODO_EPOCH_SECONDS", "120")
    env.setdefault("KYODO_CHAIN_POLL_SECONDS", "5")
    anvil = None
    if not env.get("ETH_RPC_URL"):
        port = int(env.get("KYODO_ANVIL_PORT", "8545"))
        try:
            anvil = start_anvil(port=port, state=STATE_DIR / "state.json")
        except RuntimeError as exc:
            print(f"rewards: no local chain ({exc}); running without on-chain rewards")
            return None
        env["ETH_RPC_URL"] = anvil.url
    os.environ.update(env)
    print(f"Kyodo demo: reward contracts on {env['ETH_RPC_URL']} …", flush=True)
    try:
        subprocess.run(
            [sys.executable, "-m", "tools.chain", "setup"], cwd=ROOT, env=env, check=True
        )
    except subprocess.CalledProcessError:
        print("rewards: on-chain set-up failed; see the output above", file=sys.stderr)
    return anvil.process if anvil else None


def demo_settle(env: dict[str, str]) -> None:
    """Settle and accept the first epoch once the seeded labels are in the ledger."""
    if not env.get("ETH_RPC_URL"):
        return
    print("Kyodo demo: settling the first reward epoch …", flush=True)
    result = subprocess.run([sys.executable, "-m", "tools.chain", "settle"], cwd=ROOT, env=env)
    if result.returncode != 0:
        print("rewards: the first epoch did not settle; see var/demo-worker.log", file=sys.stderr)


# ------------------------------------------------------------------ python -m tools.chain ...


def _django() -> None:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    django.setup()


def setup() -> None:
    """Deploy (or reuse) the contracts, link demo wallets, register and fund demo campaigns."""
    _django()
    from eth_account import Account

    from rewards.runtime import chain_settings, get_web3

    w3 = get_web3()
    platform = Account.from_key(anvil_key(0))
    config = chain_settings()
    if config is None or not w3.eth.get_code(config.distributor):
        _deploy(w3, platform, reset=config is not None)
    _link_wallets()
    _fund_campaigns(w3)


def _deploy(w3: Any, platform: Any, *, reset: bool) -> None:
    from rewards.runtime import ANVIL_CHAIN_ID
    from rewards.services import chain_deploy, chain_state_forget

    if reset:  # var/anvil/state.json was deleted: the old epochs are on no chain any more
        released = chain_state_forget(chain_id=ANVIL_CHAIN_ID)
        print(f"rewards: the local chain was reset; {released} ledger entries will be re-settled")
    deployment = chain_deploy(
        deployer=platform, updater=platform.address, timelock=0, initial_supply=10**9 * TOKEN
    )
    print(f"rewards: distributor {deployment.distributor}, token {deployment.token}")


def _link_wallets() -> None:
    from eth_account import Account

    from accounts.models import User
    from accounts.services import wallet_link
    from core.errors import ApplicationError

    for email, index in DEMO_WALLETS.items():
        user = User.objects.filter(email=email).first()
        if user is None or user.wallet_address:
            continue
        try:
            wallet_link(user=user, address=Account.from_key(anvil_key(index)).address)
        except ApplicationError as exc:
            print(f"rewards: no demo wallet for {email}: {exc.message}")


def _fund_campaigns(w3: Any) -> None:
    from eth_account import Account

    from labeling.models import Campaign
    from rewards.chain import TokenClient
    from rewards.runtime import distributor_client, require_chain
    from rewards.services import campaign_chain_register, chain_tx_wait

    config = require_chain()
    distributor = distributor_client(config)
    token = TokenClient(w3, config.token or distributor.token())
    platform = Account.from_key(anvil_key(0))
    requester = Account.from_key(anvil_key(DEMO_WALLETS[REQUESTER]))
    for campaign in Campaign.objects.filter(owner__email=REQUESTER).order_by("id"):
        info = distributor.campaign(campaign.pk)
        if info is None:
            tx = chain_tx_wait(
                tx=campaign_chain_register(campaign_id=campaign.pk, owner=requester.address)
            )
            if tx.status != "confirmed":
                print(f"rewards: campaign {campaign.pk} not created: {tx.last_error}")
                continue
            info = distributor.campaign(campaign.pk)
        budget = int(campaign.budget or DEFAULT_BUDGET)
        missing = budget - (info.deposited if info else 0)
        if missing <= 0:
            continue
        if token.balance_of(requester.address) < missing:
            token.transfer(requester.address, missing, sender=platform)
        token.approve(distributor.address, missing, sender=requester)
        distributor.fund(campaign.pk, missing, sender=requester)
        print(f"rewards: campaign {campaign.pk} ({campaign.title}) funded with {budget / TOKEN:g}")


def settle(timeout: float = 120.0) -> int:
    """Wait for accepted entries with wallets, then settle and accept an epoch; print balances."""
    _django()
    from accounts.models import User
    from core.errors import ApplicationError
    from rewards.management.commands.settle_epoch import drive
    from rewards.models import EpochStatus, RewardEntry, RewardStatus
    from rewards.selectors import epoch_last_accepted, reward_summary
    from rewards.services import (
        epoch_settle_now,
        rewards_account_completed,
        rewards_resolve_all_pending,
    )

    deadline = time.monotonic() + timeout
    epoch = None
    seen, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        rewards_account_completed()  # items the worker closed: their ledger entries, now
        # Rewards held while their worker was on probation: the beat's `rewards.resolve_pending`
        # (every 300 s) pays them once the worker is trusted; the same service, now.
        rewards_resolve_all_pending()
        ready = (
            RewardEntry.objects.filter(status=RewardStatus.ACCEPTED, epoch__isnull=True)
            .exclude(worker__wallet_address="")
            .count()
        )
        if ready != seen:  # the worker is still working through the seeded labels
            seen, since = ready, time.monotonic()
        if ready and time.monotonic() - since >= QUIET_SECONDS:
            try:
                epoch = epoch_settle_now()
            except ApplicationError as exc:  # the worker's beat opened one meanwhile
                print(f"rewards: {exc.message}; retrying")
                time.sleep(1)
                continue
            if epoch is not None:
                epoch = drive(epoch, target={EpochStatus.ACCEPTED}, timeout=60)
            break
        if not ready and epoch_last_accepted() is not None:
            break  # settled already (a restarted demo)
        time.sleep(1)
    if epoch is not None:
        print(f"rewards: epoch {epoch.number} {epoch.status}, root {epoch.merkle_root}")
        print(f"         payout table {epoch.payout_table_cid}")
    for email in DEMO_WALLETS:
        user = User.objects.filter(email=email).first()
        if user is not None and user.wallet_address:
            summary = reward_summary(user=user)
            print(f"         {email:24} claimable {summary.claimable / TOKEN:g} KYO")
    return 0 if epoch is None or epoch.status == EpochStatus.ACCEPTED else 1


def main(argv: list[str]) -> int:
    if argv[:1] == ["setup"]:
        setup()
        return 0
    if argv[:1] == ["settle"]:
        return settle()
    print("usage: python -m tools.chain setup|settle", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
