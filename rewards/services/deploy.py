"""Deployments and on-chain campaigns: where the contracts are, and registering campaigns."""

from __future__ import annotations

from django.db import transaction
from eth_account.signers.local import LocalAccount
from eth_utils import is_checksum_address
from web3.exceptions import InvalidAddress

from core.errors import Conflict

from ..chain import deploy_distributor, deploy_token
from ..models import (
    ChainCursor,
    ChainDeployment,
    ChainEvent,
    ChainSender,
    ChainTx,
    ChainTxKind,
    Epoch,
    EpochLeaf,
    RewardEntry,
    WalletClaim,
)
from ..runtime import ANVIL_CHAIN_ID, distributor_client, get_web3
from .outbox import chain_tx_ensure


@transaction.atomic
def chain_deployment_record(
    *, chain_id: int, token: str, distributor: str, deploy_block: int, timelock: int
) -> ChainDeployment:
    """Make this deployment the active one for its chain (the previous ones stay, inactive)."""
    ChainDeployment.objects.filter(chain_id=chain_id, active=True).update(active=False)
    return ChainDeployment.objects.create(
        chain_id=chain_id,
        token=token,
        distributor=distributor,
        deploy_block=deploy_block,
        timelock=timelock,
    )


def chain_deploy(
    *,
    deployer: LocalAccount,
    updater: str,
    timelock: int,
    guardian: str | None = None,
    token: str | None = None,
    initial_supply: int = 0,
) -> ChainDeployment:
    """Deploy the distributor (and a KyodoToken unless ``token`` is given) and make it active.

    ``deployer`` becomes the admin (and the guardian unless one is given); ``updater`` gets the
    root-updater and campaign-manager roles: it is the outbox's signing account.
    """
    w3 = get_web3()
    if token is None:
        token = deploy_token(
            w3,
            admin=deployer.address,
            initial_holder=deployer.address,
            initial_supply=initial_supply,
            sender=deployer,
        ).address
    # Events start after this block: the distributor is deployed in a later one.
    start_block = w3.eth.block_number
    distributor = deploy_distributor(
        w3,
        token=token,
        timelock=timelock,
        admin=deployer.address,
        updater=updater,
        guardian=guardian or deployer.address,
        manager=updater,
        sender=deployer,
    )
    return chain_deployment_record(
        chain_id=int(w3.eth.chain_id),
        token=token,
        distributor=distributor.address,
        deploy_block=start_block,
        timelock=timelock,
    )


def campaign_chain_register(*, campaign_id: int, owner: str) -> ChainTx:
    """Queue ``createCampaign(id, owner)``: the owner's wallet may then fund the campaign."""
    # The client re-cases any address into its checksum form, which would let a mistyped one
    # own (and refund) the campaign: only an EIP-55 address is taken, as web3 itself requires.
    if not is_checksum_address(owner):
        raise InvalidAddress(f"campaign owner {owner!r} is not an EIP-55 checksummed address")
    client = distributor_client()
    data = client.create_campaign.data(campaign_id, owner)
    return chain_tx_ensure(
        kind=ChainTxKind.CREATE_CAMPAIGN,
        key=f"create_campaign:{campaign_id}",
        to=client.address,
        data=data,
    )


@transaction.atomic
def chain_state_forget(*, chain_id: int) -> int:
    """Demo only (anvil lost its state): forget every epoch, transaction and event, and release
    every settled ledger entry for the next epoch on the new chain. Returns entries released."""
    if chain_id != ANVIL_CHAIN_ID:
        raise Conflict("only a local anvil chain may be forgotten", code="not_a_dev_chain")
    EpochLeaf.objects.all().delete()
    Epoch.objects.all().delete()
    for model in (ChainTx, ChainEvent, ChainCursor, ChainSender, WalletClaim):
        model.objects.all().delete()
    ChainDeployment.objects.filter(chain_id=chain_id).update(active=False)
    return RewardEntry.objects.filter(epoch__isnull=False).update(epoch=None, wallet="")
