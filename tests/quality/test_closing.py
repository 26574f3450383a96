"""Closing an item and queueing its reward: one function (quality/services/closing.py), used by
the per-label update, its box variant and a refit."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from labeling.models import Assignment, AssignmentStatus, Campaign, Item, ItemStatus
from quality.services import closing

from ..accounts.factories import UserFactory
from ..labeling.factories import CampaignFactory

pytestmark = pytest.mark.django_db


def _queued(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    sent: list[tuple[str, int]] = []
    monkeypatch.setattr(closing, "enqueue_on_commit", lambda name, arg: sent.append((name, arg)))
    return sent


def test_it_closes_the_item_releases_its_leases_and_queues_the_reward(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sent = _queued(monkeypatch)
    campaign = CampaignFactory.create(budget=1000, reward_per_label=10, labels_reserved=1)
    item = Item.objects.create(
        campaign=campaign, cid="bafkreiclose", media_type="image/png", slots_taken=1
    )
    lease = Assignment.objects.create(
        item=item,
        worker=UserFactory.create(),
        campaign=campaign,
        leased_until=timezone.now() + timedelta(minutes=5),
    )

    assert closing.items_close_and_queue_reward(item_ids=[item.pk]) == [item.pk]

    item.refresh_from_db()
    assert item.status == ItemStatus.COMPLETE
    assert item.slots_taken == 0
    assert Assignment.objects.get(pk=lease.pk).status == AssignmentStatus.EXPIRED
    fresh = Campaign.objects.get(pk=campaign.pk)
    assert fresh.completed_count == 1
    assert fresh.labels_reserved == 0
    assert sent == [("rewards.account_items", [item.pk])]


def test_a_closed_item_stays_closed_and_its_reward_is_queued_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A late label on a closed item: its reward is accounted too (idempotent per annotation)."""
    sent = _queued(monkeypatch)
    campaign = CampaignFactory.create()
    item = Item.objects.create(campaign=campaign, cid="bafkreiclosed", media_type="image/png")
    assert closing.items_close_and_queue_reward(item_ids=[item.pk]) == [item.pk]
    assert closing.items_close_and_queue_reward(item_ids=[item.pk]) == []
    assert Campaign.objects.get(pk=campaign.pk).completed_count == 1
    assert sent == [("rewards.account_items", [item.pk])] * 2


def test_a_gold_label_queues_the_reward_without_closing(monkeypatch: pytest.MonkeyPatch) -> None:
    sent = _queued(monkeypatch)
    item = Item.objects.create(
        campaign=CampaignFactory.create(), cid="bafkreigold", media_type="image/png"
    )
    closing.items_queue_reward(item_ids=[item.pk])
    assert Item.objects.get(pk=item.pk).status == ItemStatus.OPEN
    assert sent == [("rewards.account_items", [item.pk])]
