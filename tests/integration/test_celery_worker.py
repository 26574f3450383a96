"""Submissions through the API reach a real Celery worker on Redis: consensus and ledger appear."""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from accounts.models import Role
from labeling.models import Item, ItemStatus
from labeling.services import items_upload
from quality.models import ItemConsensus
from quality.services import consensus_sweep_lagging
from rewards.models import RewardEntry, RewardStatus

from ..accounts.factories import UserFactory
from ..conftest import client_for
from ..labeling.factories import CampaignFactory, png_bytes

pytestmark = [pytest.mark.services, pytest.mark.slow]


def wait_for(predicate: Any, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def test_worker_decides_consensus_and_writes_ledger(celery_worker_process: Any) -> None:
    requester = UserFactory.create(role=Role.REQUESTER)
    campaign = CampaignFactory.create(
        owner=requester, min_labels=2, max_labels=3, reward_per_label=7
    )
    items_upload(
        campaign=campaign, files=[SimpleUploadedFile(f"{i}.png", png_bytes(i)) for i in range(3)]
    )
    workers = [UserFactory.create() for _ in range(3)]
    # Worker 0 and 1 agree on every item (closes at 2 labels); worker 2 never gets to label.
    for worker in workers[:2]:
        client = client_for(worker)
        for _ in range(3):
            task = client.get(f"/api/campaigns/{campaign.pk}/next/").json()
            response = client.post(
                f"/api/items/{task['item_id']}/annotations/", {"label": "dog"}, format="json"
            )
            assert response.status_code == 201

    assert wait_for(lambda: RewardEntry.objects.filter(campaign_id=campaign.pk).count() == 6), (
        f"ledger rows: {RewardEntry.objects.filter(campaign_id=campaign.pk).count()}"
    )
    assert (
        ItemConsensus.objects.filter(campaign_id=campaign.pk, is_complete=True, label="dog").count()
        == 3
    )
    assert Item.objects.filter(campaign=campaign, status=ItemStatus.COMPLETE).count() == 3
    assert set(RewardEntry.objects.values_list("status", "amount").distinct()) == {
        (RewardStatus.ACCEPTED, 7)
    }
    assert client_for(workers[2]).get(f"/api/campaigns/{campaign.pk}/next/").status_code == 204


def test_a_lost_update_message_is_sent_again_by_the_sweep(
    celery_worker_process: Any, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.KYODO_QUALITY_SWEEP_GRACE_SECONDS = 0
    campaign = CampaignFactory.create(min_labels=1, max_labels=1, reward_per_label=5)
    items_upload(
        campaign=campaign, files=[SimpleUploadedFile(f"{i}.png", png_bytes(i)) for i in range(2)]
    )
    # The web process dies after each commit, before it publishes the update.
    lost: list[tuple[Any, ...]] = []
    monkeypatch.setattr(
        "labeling.services.annotations.enqueue_batched_on_commit_or_log", lambda *a: lost.append(a)
    )
    client = client_for(UserFactory.create())
    labeled = []
    for _ in range(2):
        task = client.get(f"/api/campaigns/{campaign.pk}/next/").json()
        response = client.post(
            f"/api/items/{task['item_id']}/annotations/", {"label": "cat"}, format="json"
        )
        assert response.status_code == 201
        labeled.append(task["item_id"])
    assert sorted(lost) == sorted(("quality.update_items", pk) for pk in labeled)
    assert not ItemConsensus.objects.filter(campaign_id=campaign.pk).exists()

    assert sorted(consensus_sweep_lagging()) == sorted(labeled)
    assert wait_for(
        lambda: ItemConsensus.objects.filter(campaign_id=campaign.pk, is_complete=True).count() == 2
    )
    assert wait_for(lambda: RewardEntry.objects.filter(campaign_id=campaign.pk).count() == 2)
    assert consensus_sweep_lagging() == []  # every label is checked once
