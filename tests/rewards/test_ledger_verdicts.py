"""The ledger follows the quality engine's verdict on each annotation."""

from __future__ import annotations

import pytest

from accounts.models import User
from labeling.models import Annotation, Campaign, Item, ItemStatus
from quality.models import CampaignQuality, WorkerSkill
from rewards.models import RewardEntry, RewardStatus
from rewards.services import rewards_account_item, rewards_resolve_pending

from ..accounts.factories import UserFactory
from ..labeling.factories import AnnotationFactory, ItemFactory
from ..quality.factories import ItemConsensusFactory

pytestmark = pytest.mark.django_db


def label(item: Item, worker: User, value: str) -> Annotation:
    return AnnotationFactory.create(item=item, worker=worker, label=value)


def closed_item(campaign: Campaign, labels: dict[User, str], decided: str) -> Item:
    item = ItemFactory.create(campaign=campaign, status=ItemStatus.COMPLETE)
    for worker, value in labels.items():
        label(item, worker, value)
    ItemConsensusFactory.create(
        item=item,
        label=decided,
        confidence=0.97,
        n_labels=len(labels),
        method="test",
        is_complete=True,
    )
    return item


def entries(item: Item) -> dict[int, tuple[str, str]]:
    return {e.worker_id: (e.status, e.reason) for e in RewardEntry.objects.filter(item_id=item.pk)}


def test_agreeing_labels_paid_disagreeing_rejected_once(campaign: Campaign) -> None:
    a, b, c = (UserFactory.create() for _ in range(3))
    item = closed_item(campaign, {a: "cat", b: "cat", c: "dog"}, decided="cat")
    assert rewards_account_item(item_id=item.pk) == 3
    assert entries(item) == {
        a.pk: ("accepted", "agrees"),
        b.pk: ("accepted", "agrees"),
        c.pk: ("rejected", "disagrees"),
    }
    assert rewards_account_item(item_id=item.pk) == 0  # exactly once
    assert {e.amount for e in RewardEntry.objects.all()} == {campaign.reward_per_label}


def test_open_items_write_nothing_but_gold_items_are_judged_at_once(campaign: Campaign) -> None:
    a, b = UserFactory.create(), UserFactory.create()
    open_item = ItemFactory.create(campaign=campaign)
    label(open_item, a, "cat")
    ItemConsensusFactory.create(
        item=open_item,
        label="cat",
        confidence=0.5,
        n_labels=1,
        method="test",
    )
    assert rewards_account_item(item_id=open_item.pk) == 0
    gold = ItemFactory.create(campaign=campaign, gold_label="dog")
    label(gold, a, "dog")
    label(gold, b, "bird")
    ItemConsensusFactory.create(
        item=gold,
        label="dog",
        confidence=1.0,
        n_labels=2,
        method="gold",
    )
    assert rewards_account_item(item_id=gold.pk) == 2
    assert entries(gold) == {
        a.pk: ("accepted", "agrees_gold"),
        b.pk: ("rejected", "disagrees_gold"),
    }


def test_unproven_workers_wait_then_trusted_paid_and_spammers_rejected(campaign: Campaign) -> None:
    honest, spammer, suspended = (UserFactory.create() for _ in range(3))
    CampaignQuality.objects.create(campaign_id=campaign.pk, calibrated=True)
    WorkerSkill.objects.create(worker=suspended, campaign_id=campaign.pk, status="suspended")
    item = closed_item(campaign, {honest: "cat", spammer: "cat", suspended: "cat"}, decided="cat")
    rewards_account_item(item_id=item.pk)
    assert entries(item) == {
        honest.pk: ("pending", "worker_unproven"),
        spammer.pk: ("pending", "worker_unproven"),
        suspended.pk: ("rejected", "worker_suspended"),
    }
    WorkerSkill.objects.create(worker=honest, campaign_id=campaign.pk, status="trusted")
    WorkerSkill.objects.create(worker=spammer, campaign_id=campaign.pk, status="suspended")
    assert rewards_resolve_pending(campaign_id=campaign.pk) == (1, 1)
    assert entries(item) == {
        honest.pk: ("accepted", "agrees"),
        spammer.pk: ("rejected", "worker_suspended"),
        suspended.pk: ("rejected", "worker_suspended"),
    }
    assert RewardEntry.objects.filter(status=RewardStatus.PENDING).count() == 0


def test_later_suspension_rejects_unsettled_accepted_rewards_never_settled_ones(
    campaign: Campaign,
) -> None:
    worker, honest = UserFactory.create(), UserFactory.create()
    # Not calibrated yet: agreeing labels are accepted on agreement alone.
    first = closed_item(campaign, {worker: "cat", honest: "cat"}, decided="cat")
    second = closed_item(campaign, {worker: "dog", honest: "dog"}, decided="dog")
    rewards_account_item(item_id=first.pk)
    rewards_account_item(item_id=second.pk)
    assert entries(first)[worker.pk] == ("accepted", "agrees")
    # The first item's rewards went into a settled epoch: committed to a payout root.
    RewardEntry.objects.filter(item_id=first.pk).update(epoch=1, wallet="0x" + "1" * 40)
    WorkerSkill.objects.create(worker=worker, campaign_id=campaign.pk, status="suspended")
    assert rewards_resolve_pending(campaign_id=campaign.pk) == (0, 1)
    assert entries(second) == {
        worker.pk: ("rejected", "worker_suspended"),
        honest.pk: ("accepted", "agrees"),
    }
    assert entries(first)[worker.pk] == ("accepted", "agrees")  # settled: never revisited
    assert rewards_resolve_pending(campaign_id=campaign.pk) == (0, 0)  # idempotent


def test_resolve_all_pending_reaches_campaigns_with_only_accepted_rewards(
    campaign: Campaign,
) -> None:
    from rewards.services import rewards_resolve_all_pending

    worker = UserFactory.create()
    item = closed_item(campaign, {worker: "cat"}, decided="cat")
    rewards_account_item(item_id=item.pk)
    WorkerSkill.objects.create(worker=worker, campaign_id=campaign.pk, status="suspended")
    assert rewards_resolve_all_pending() == (0, 1)
    assert entries(item) == {worker.pk: ("rejected", "worker_suspended")}


def test_accounting_an_item_reads_its_annotations_once_in_the_ledger(campaign: Campaign) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    a, b = UserFactory.create(), UserFactory.create()
    item = closed_item(campaign, {a: "cat", b: "dog"}, decided="cat")
    with CaptureQueriesContext(connection) as queries:
        assert rewards_account_item(item_id=item.pk) == 2
    reads = [q["sql"] for q in queries if 'FROM "labeling_annotation"' in q["sql"]]
    # The ledger's one read of the annotations to account, and annotation_verdicts' own.
    assert len(reads) <= 2, reads
