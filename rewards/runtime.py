"""The configured chain: the JSON-RPC connection, the distributor's client, the signing account.

The chain is configured when ``ETH_RPC_URL`` is set (or a test installed a provider with
:func:`use_web3`) and a deployment is known: ``KYODO_DISTRIBUTOR_ADDRESS`` in the settings, else
the active ``ChainDeployment`` row for ``KYODO_CHAIN_ID``. Without one, the chain tasks do nothing
and the claims API answers 503 ``chain_not_configured``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache

from django.conf import settings
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress
from web3 import Web3

from core.errors import ApplicationError

from .chain import RewardDistributorClient
from .models import ChainDeployment

ANVIL_CHAIN_ID = 31337
# anvil's first dev account ("test test ... junk", m/44'/60'/0'/0/0): public knowledge, so it is
# only ever used on anvil's chain id.
ANVIL_DEV_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"


class ChainNotConfigured(ApplicationError):
    status_code = 503
    default_code = "chain_not_configured"


@dataclass(frozen=True)
class ChainSettings:
    chain_id: int
    distributor: ChecksumAddress
    token: str
    start_block: int
    confirmations: int


_override: list[Web3] = []


@contextmanager
def use_web3(w3: Web3) -> Iterator[Web3]:
    """Tests: use this connection (an in-process py-evm chain, say) instead of ``ETH_RPC_URL``."""
    _override.append(w3)
    try:
        yield w3
    finally:
        _override.remove(w3)


@lru_cache(maxsize=4)
def _http_web3(url: str) -> Web3:
    return Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 30}))


def web3_available() -> bool:
    return bool(_override) or bool(settings.ETH_RPC_URL)


def get_web3() -> Web3:
    if _override:
        return _override[-1]
    if not settings.ETH_RPC_URL:
        raise ChainNotConfigured("ETH_RPC_URL is not set")
    return _http_web3(settings.ETH_RPC_URL)


def chain_settings() -> ChainSettings | None:
    """The deployment in use, or None if the chain is not configured."""
    if not web3_available():
        return None
    confirmations = max(1, int(settings.KYODO_CHAIN_CONFIRMATIONS))
    if settings.KYODO_DISTRIBUTOR_ADDRESS:
        return ChainSettings(
            chain_id=int(settings.KYODO_CHAIN_ID),
            distributor=Web3.to_checksum_address(settings.KYODO_DISTRIBUTOR_ADDRESS),
            token=settings.KYODO_TOKEN_ADDRESS,
            start_block=int(settings.KYODO_CHAIN_START_BLOCK),
            confirmations=confirmations,
        )
    deployment = (
        ChainDeployment.objects.filter(chain_id=settings.KYODO_CHAIN_ID, active=True)
        .order_by("-id")
        .first()
    )
    if deployment is None:
        return None
    return ChainSettings(
        chain_id=deployment.chain_id,
        distributor=Web3.to_checksum_address(deployment.distributor),
        token=deployment.token,
        start_block=deployment.deploy_block,
        confirmations=confirmations,
    )


def require_chain() -> ChainSettings:
    """The deployment in use; ChainNotConfigured names the missing piece: the node's URL first
    (without it no deployment can be looked up), then the deployment."""
    if not web3_available():
        raise ChainNotConfigured(
            "no chain to reach: ETH_RPC_URL is not set (while `make demo` runs, a second shell in "
            "the same checkout gets the demo's anvil by itself; elsewhere set ETH_RPC_URL)"
        )
    config = chain_settings()
    if config is None:
        raise ChainNotConfigured(
            "no reward distributor is configured (set KYODO_DISTRIBUTOR_ADDRESS or run "
            "`manage.py chain_deploy`)"
        )
    return config


def distributor_client(config: ChainSettings | None = None) -> RewardDistributorClient:
    config = config or require_chain()
    return RewardDistributorClient(get_web3(), config.distributor)


def updater_account() -> LocalAccount:
    """The platform's signing key (``KYODO_UPDATER_KEY``); anvil's dev key on anvil only."""
    key = settings.KYODO_UPDATER_KEY
    if not key:
        if int(settings.KYODO_CHAIN_ID) != ANVIL_CHAIN_ID:
            raise ChainNotConfigured(
                "KYODO_UPDATER_KEY is not set (the anvil dev key is only used on chain 31337)"
            )
        key = ANVIL_DEV_KEY
    account: LocalAccount = Account.from_key(key)
    return account
