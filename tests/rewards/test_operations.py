"""Operating the rewards backend: deployment, the beat's epoch period, the ledger sweep."""

from __future__ import annotations

import io
from datetime import timedelta
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.utils import timezone
from web3 import Web3

from labeling.services import annotation_submit, items_upload, task_lease_next
from rewards.models import ChainDeployment, Epoch, RewardEntry
from rewards.runtime import chain_settings
from rewards.services import rewards_account_completed, settle_tick
from tests.accounts.factories import UserFactory
from tests.labeling.factories import CampaignFactory, png_bytes

from .conftest import TOKEN, RewardsChain, add_entries, wallet_user

pytestmark = pytest.mark.django_db


def test_chain_deploy_records_the_deployment_the_app_then_uses(
    pyevm_rewards: RewardsChain, settings: Any
) -> None:
    settings.KYODO_DISTRIBUTOR_ADDRESS = ""  # no address in the settings: the row decides
    key = settings.KYODO_UPDATER_KEY
    out = io.StringIO()
    call_command("chain_deploy", "--timelock", "60", "--deployer-key", key, stdout=out)
    deployment = ChainDeployment.objects.get(active=True)
    assert f"distributor {deployment.distributor}" in out.getvalue()
    config = chain_settings()
    assert config is not None
    assert config.distributor == deployment.distributor
    assert config.start_block == deployment.deploy_block
    w3 = pyevm_rewards.chain.w3
    assert w3.eth.get_code(Web3.to_checksum_address(deployment.distributor))
    # A second deployment replaces the first as the active one.
    call_command("chain_deploy", "--deployer-key", key, "--token", deployment.token, stdout=out)
    assert ChainDeployment.objects.filter(active=True).count() == 1
    assert ChainDeployment.objects.get(active=True).token == deployment.token


def test_the_beat_opens_an_epoch_once_per_period(
    pyevm_rewards: RewardsChain, settings: Any
) -> None:
    rc = pyevm_rewards
    settings.KYODO_EPOCH_SECONDS = 3600
    rc.open_campaign(1, 100 * TOKEN)
    alice = wallet_user(1)
    add_entries(alice, 1, 1, TOKEN)
    rc.settle()
    rc.pass_timelock()
    assert rc.settle().status == "accepted"
    add_entries(alice, 1, 1, TOKEN)
    assert settle_tick() is None  # the period has not passed
    assert Epoch.objects.count() == 1
    Epoch.objects.update(created_at=timezone.now() - timedelta(seconds=3601))
    epoch = settle_tick()
    assert epoch is not None
    assert epoch.number == 2


def test_the_ledger_sweep_accounts_items_whose_task_was_lost(
    db: Any, django_capture_on_commit_callbacks: Any
) -> None:
    campaign = CampaignFactory.create(min_labels=2, max_labels=2, reward_per_label=5)
    items_upload(
        campaign=campaign, files=[SimpleUploadedFile(f"{i}.png", png_bytes(i)) for i in range(2)]
    )
    workers = [UserFactory.create() for _ in range(2)]
    for worker in workers:
        for _ in range(2):
            assignment = task_lease_next(campaign=campaign, worker=worker)
            assert assignment is not None
            with django_capture_on_commit_callbacks(execute=True):
                annotation_submit(
                    worker=worker, item_id=assignment.item_id, label="cat", duration_ms=100
                )
    assert RewardEntry.objects.count() == 4
    RewardEntry.objects.all().delete()  # as if the rewards.account_item messages were lost
    assert rewards_account_completed() == 4
    assert rewards_account_completed() == 0
    assert set(RewardEntry.objects.values_list("amount", "status")) == {(5, "accepted")}
