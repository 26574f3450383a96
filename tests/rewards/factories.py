"""Factories for the rewards app: the ledger, epochs and their leaves, the chain outbox, watcher and
relayed claims. Amounts are integers in token base units; addresses are EIP-55 checksummed."""

from __future__ import annotations

import factory

from rewards.models import (
    ChainCursor,
    ChainDeployment,
    ChainEvent,
    ChainSender,
    ChainTx,
    ChainTxKind,
    ClaimRequest,
    Epoch,
    EpochLeaf,
    RewardEntry,
    RewardStatus,
    WalletClaim,
)

from ..accounts.factories import UserFactory, eth_address

TOKEN = 10**18  # one token, in base units
CHAIN_ID = 31337  # anvil's, which the tests' chains use too


def tx_hash(n: int) -> str:
    return f"0x{n + 1:064x}"


class RewardEntryFactory(factory.django.DjangoModelFactory[RewardEntry]):
    """An accepted ledger entry. Its item and annotation ids are made up, far above any real row's
    (the ledger names them by id only); `campaign_id` is the distributor's, 1 unless given."""

    class Meta:
        model = RewardEntry

    worker = factory.SubFactory(UserFactory, with_wallet=True)
    campaign_id = 1
    item_id = factory.Sequence(lambda n: 1_000_000 + n)
    annotation_id = factory.Sequence(lambda n: 1_000_000 + n)
    amount = TOKEN
    status = RewardStatus.ACCEPTED


class ChainDeploymentFactory(factory.django.DjangoModelFactory[ChainDeployment]):
    class Meta:
        model = ChainDeployment

    chain_id = CHAIN_ID
    token = factory.Sequence(lambda n: eth_address(2 * n + 10_000))
    distributor = factory.Sequence(lambda n: eth_address(2 * n + 10_001))


class EpochFactory(factory.django.DjangoModelFactory[Epoch]):
    """An epoch being built (the first status of every epoch)."""

    class Meta:
        model = Epoch

    number = factory.Sequence(lambda n: n + 1)
    chain_id = CHAIN_ID
    distributor = eth_address(10_001)


class EpochLeafFactory(factory.django.DjangoModelFactory[EpochLeaf]):
    class Meta:
        model = EpochLeaf

    epoch = factory.SubFactory(EpochFactory)
    account = factory.Sequence(lambda n: eth_address(60_000 + n))
    cumulative = TOKEN
    proof = bytes(32)  # one sibling: a two-leaf tree


class ChainTxFactory(factory.django.DjangoModelFactory[ChainTx]):
    """A pending (unsigned) acceptRoot with a unique business key."""

    class Meta:
        model = ChainTx

    kind = ChainTxKind.ACCEPT_ROOT
    idempotency_key = factory.Sequence(lambda n: f"accept_root:factory-{n}")
    chain_id = CHAIN_ID
    sender = eth_address(20_000)
    to = eth_address(10_001)
    data = "0x"


class ChainSenderFactory(factory.django.DjangoModelFactory[ChainSender]):
    class Meta:
        model = ChainSender

    chain_id = CHAIN_ID
    address = factory.Sequence(lambda n: eth_address(20_000 + n))


class ChainCursorFactory(factory.django.DjangoModelFactory[ChainCursor]):
    class Meta:
        model = ChainCursor

    chain_id = CHAIN_ID
    contract = factory.Sequence(lambda n: eth_address(30_000 + n))


class ChainEventFactory(factory.django.DjangoModelFactory[ChainEvent]):
    class Meta:
        model = ChainEvent

    chain_id = CHAIN_ID
    contract = eth_address(10_001)
    name = "Claimed"
    block_number = factory.Sequence(lambda n: n + 1)
    block_hash = factory.Sequence(lambda n: tx_hash(1_000_000 + n))
    tx_hash = factory.Sequence(tx_hash)
    log_index = 0
    # As the watcher stores them: integers as decimal strings.
    args = factory.Sequence(
        lambda n: {"account": eth_address(70_000 + n), "cumulativeAmount": str(TOKEN)}
    )


class WalletClaimFactory(factory.django.DjangoModelFactory[WalletClaim]):
    class Meta:
        model = WalletClaim

    wallet = factory.Sequence(lambda n: eth_address(50_000 + n))


class ClaimRequestFactory(factory.django.DjangoModelFactory[ClaimRequest]):
    """A queued relayed claim of one leaf."""

    class Meta:
        model = ClaimRequest

    account = factory.Sequence(lambda n: eth_address(40_000 + n))
    cumulative = TOKEN
    amount = factory.SelfAttribute("cumulative")
    epoch = 1
    requested_by = factory.SubFactory(
        UserFactory, wallet_address=factory.SelfAttribute("..account")
    )
