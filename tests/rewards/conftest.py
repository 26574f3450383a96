"""Fixtures for the rewards backend: a deployed distributor wired into Django's settings.

``pyevm_rewards`` (fast unit tier) and ``anvil_rewards`` (a real node) both give a
:class:`RewardsChain`: the contracts of ``tests/chain_fixtures.py`` plus a local signing key with
ETH and the root-updater and campaign-manager roles, which the outbox uses as its sender. The
chain is snapshotted per test like ``pyevm_chain`` / ``anvil_chain``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from web3.types import Wei

from accounts.models import User
from rewards.chain import Role
from rewards.models import RewardEntry, RewardStatus
from rewards.runtime import use_web3
from rewards.services import outbox_process, settle_tick
from tests.accounts.factories import UserFactory
from tests.chain_fixtures import Chain, RewardContracts, deploy_reward_contracts
from tests.rewards.factories import TOKEN, RewardEntryFactory

UPDATER_KEY = keccak(text="kyodo-test-updater")


@dataclass
class RewardsChain:
    chain: Chain
    contracts: RewardContracts
    updater: LocalAccount
    start_block: int

    @property
    def distributor(self) -> Any:
        return self.contracts.distributor

    def open_campaign(self, campaign_id: int, budget: int) -> None:
        """Create (by the manager role) and fund (by the owner) a campaign directly on-chain."""
        c = self.contracts
        c.distributor.create_campaign(campaign_id, c.owner, sender=c.manager)
        if budget:
            self.fund(campaign_id, budget)

    def fund(self, campaign_id: int, amount: int) -> None:
        c = self.contracts
        c.token.approve(c.distributor.address, amount, sender=c.owner)
        c.distributor.fund(campaign_id, amount, sender=c.owner)

    def pass_timelock(self) -> None:
        self.chain.increase_time(self.contracts.timelock + 1)

    def settle(self, *, rounds: int = 8) -> Any:
        """Run the beat's steps until the epoch stops moving (time travel is the caller's)."""
        epoch = None
        for _ in range(rounds):
            outbox_process()
            epoch = settle_tick() or epoch
            outbox_process()
        return epoch


def _deploy(chain: Chain) -> tuple[RewardContracts, LocalAccount, int]:
    start_block = chain.w3.eth.block_number
    contracts = deploy_reward_contracts(chain)
    updater: LocalAccount = Account.from_key(UPDATER_KEY)
    tx = chain.w3.eth.send_transaction(
        {"from": contracts.admin, "to": updater.address, "value": Wei(100 * TOKEN)}
    )
    chain.w3.eth.wait_for_transaction_receipt(tx)
    contracts.distributor.grant_role(Role.ROOT_UPDATER, updater.address, sender=contracts.admin)
    contracts.distributor.grant_role(Role.CAMPAIGN_MANAGER, updater.address, sender=contracts.admin)
    return contracts, updater, start_block


def _session_deployment(chain: Chain) -> tuple[RewardContracts, LocalAccount, int]:
    deployment = chain.cache.get("kyodo_rewards")
    if deployment is None:
        deployment = _deploy(chain)
        chain.cache["kyodo_rewards"] = deployment
    return deployment


@pytest.fixture(scope="session")
def pyevm_rewards_deployment(pyevm_session_chain: Chain) -> Any:
    return _session_deployment(pyevm_session_chain)


@pytest.fixture(scope="session")
def anvil_rewards_deployment(anvil_session_chain: Chain) -> Any:
    return _session_deployment(anvil_session_chain)


def _wired(chain: Chain, deployment: Any, settings: Any) -> Iterator[RewardsChain]:
    contracts, updater, start_block = deployment
    settings.KYODO_CHAIN_ID = chain.w3.eth.chain_id
    settings.KYODO_DISTRIBUTOR_ADDRESS = contracts.distributor.address
    settings.KYODO_TOKEN_ADDRESS = contracts.token.address
    settings.KYODO_CHAIN_START_BLOCK = start_block
    settings.KYODO_UPDATER_KEY = "0x" + bytes(updater.key).hex()
    settings.KYODO_CHAIN_CONFIRMATIONS = 1
    settings.KYODO_EPOCH_SECONDS = 0
    with use_web3(chain.w3):
        yield RewardsChain(chain, contracts, updater, start_block)


@pytest.fixture
def pyevm_rewards(
    pyevm_rewards_deployment: Any, pyevm_chain: Chain, settings: Any, db: Any
) -> Iterator[RewardsChain]:
    yield from _wired(pyevm_chain, pyevm_rewards_deployment, settings)


@pytest.fixture
def anvil_rewards(
    anvil_rewards_deployment: Any, anvil_chain: Chain, settings: Any, db: Any
) -> Iterator[RewardsChain]:
    yield from _wired(anvil_chain, anvil_rewards_deployment, settings)


def wallet_user(seed: int, **kwargs: Any) -> User:
    """A contributor with a deterministic wallet (holds no ETH: claims are relayed)."""
    kwargs.setdefault("wallet_address", wallet_of(seed))
    return UserFactory.create(**kwargs)


def wallet_of(seed: int) -> str:
    return str(Account.from_key((seed + 7000).to_bytes(32, "big")).address)


def add_entries(
    worker: User,
    campaign_id: int,
    count: int,
    amount: int,
    status: str = RewardStatus.ACCEPTED,
) -> list[RewardEntry]:
    return RewardEntry.objects.bulk_create(
        RewardEntryFactory.build_batch(
            count, worker=worker, campaign_id=campaign_id, amount=amount, status=status
        )
    )
