"""The quality engine on the database: per-submission updates, full refits, workers, verdicts."""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO
from typing import Any

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from core.errors import PermissionDenied
from labeling.models import Campaign, Item, ItemStatus
from quality import selectors, services
from quality.models import CampaignQuality, ItemConsensus, WorkerSkill, WorkerStatus
from quality.services.params import ensure_campaign_quality, work_pause
from quality.tasks import refit_due
from tests.labeling.factories import set_label_count

from .helpers import add_items, answer, simulated_crowd, text_campaign, workers

pytestmark = pytest.mark.django_db


def consensus(item: Item) -> ItemConsensus:
    return ItemConsensus.objects.get(item_id=item.pk)


def status(item: Item) -> str:
    return Item.objects.get(pk=item.pk).status


def test_cold_start_two_agreeing_labels_close_before_max_labels() -> None:
    _, (item,) = text_campaign(n_items=1, min_labels=1, max_labels=5)
    alice, bob = workers(2)
    answer(item, alice, "yes")
    services.item_consensus_update(item_id=item.pk)
    first = consensus(item)
    assert first.confidence == pytest.approx(0.85)
    assert not first.is_complete
    assert first.method == "cold_start"
    # In progress: ahead of untouched items (priority 0), the least certain first.
    assert Item.objects.get(pk=item.pk).priority == first.priority == 850 - 2000
    answer(item, bob, "yes")
    services.item_consensus_update(item_id=item.pk)
    second = consensus(item)
    assert second.is_complete
    assert second.label == "yes"
    assert second.confidence > 0.95
    assert status(item) == ItemStatus.COMPLETE
    votes = second.votes
    assert [a["worker_id"] for a in votes["annotators"]] == [alice.pk, bob.pk]
    log_odds = np.log(votes["posterior"][0] / votes["posterior"][1])
    total = votes["prior_weight"] + sum(a["weight"] for a in votes["annotators"])
    assert total == pytest.approx(log_odds, abs=1e-3)  # stored to 6 decimals


def test_disagreement_stays_open_until_max_labels() -> None:
    _, (item,) = text_campaign(n_items=1, min_labels=1, max_labels=3)
    crowd = workers(3)
    for worker, label in zip(crowd, ("yes", "no", "yes"), strict=True):
        answer(item, worker, label)
        services.item_consensus_update(item_id=item.pk)
        if worker is not crowd[-1]:
            assert not consensus(item).is_complete
    final = consensus(item)
    assert final.is_complete  # max_labels, with the majority's label
    assert final.label == "yes"
    assert final.confidence == pytest.approx(0.85)


def test_gold_items_never_close_and_their_labels_are_judged_at_once() -> None:
    campaign, _ = text_campaign(min_labels=1, max_labels=3)
    (item,) = add_items(campaign, 1, gold={0: "no"})
    crowd = workers(4)
    for worker, label in zip(crowd, ("yes", "yes", "no", "no"), strict=True):
        answer(item, worker, label)
        services.item_consensus_update(item_id=item.pk)
    decided = consensus(item)
    assert decided.label == "no"
    assert decided.method == "gold"
    assert decided.votes["gold"] is True
    assert decided.n_labels == 4  # past max_labels: gold has no slot limit
    assert not decided.is_complete
    assert status(item) == ItemStatus.OPEN
    verdicts = selectors.annotation_verdicts(item_id=item.pk)
    assert sorted(verdicts.values()) == [
        (False, "disagrees_gold"),
        (False, "disagrees_gold"),
        (True, "agrees_gold"),
        (True, "agrees_gold"),
    ]
    first = item.annotations.order_by("id").first()
    assert first is not None
    only = selectors.annotation_verdicts(item_id=item.pk, annotation_ids=[first.pk])
    assert only == {first.pk: (False, "disagrees_gold")}


def test_verdicts_of_an_open_item() -> None:
    _, (item,) = text_campaign(n_items=1, min_labels=2, max_labels=5)
    answer(item, workers(1)[0], "yes")
    services.item_consensus_update(item_id=item.pk)
    assert set(selectors.annotation_verdicts(item_id=item.pk).values()) == {(False, "item_open")}


@pytest.fixture
def refitted() -> tuple[Campaign, list[Item], dict[int, str], list]:
    """200 items, 5 labels each, from 12 good workers and 3 busy spammers; one full refit."""
    campaign, items = text_campaign(n_items=200, min_labels=1, max_labels=9)
    crowd = workers(15)
    accuracies = [0.9] * 12 + [0.5] * 3
    truth = simulated_crowd(campaign, items, crowd, accuracies=accuracies, per_item=5, seed=7)
    summary = services.campaign_refit(campaign_id=campaign.pk)
    assert summary is not None
    return campaign, items, truth, crowd


def test_refit_calibrates_and_decides_every_item(refitted: tuple) -> None:
    campaign, items, truth, _ = refitted
    row = CampaignQuality.objects.get(campaign_id=campaign.pk)
    assert row.calibrated
    assert row.classes == ["yes", "no"]
    assert row.labels_at_fit == 1000
    assert row.next_refit_at == 1000 + 100
    assert 0 < row.temperature <= 1
    decided = {c.item_id: c for c in ItemConsensus.objects.filter(campaign_id=campaign.pk)}
    assert len(decided) == 200
    accuracy = np.mean([decided[i.pk].label == truth[i.pk] for i in items])
    assert accuracy > 0.95
    closed = Item.objects.filter(campaign=campaign, status=ItemStatus.COMPLETE).count()
    assert closed > 160  # confident with 5 labels of mostly good workers
    assert Campaign.objects.get(pk=campaign.pk).completed_count == closed
    some = decided[items[0].pk]
    assert some.method == "dawid_skene"
    assert len(some.votes["annotators"]) == 5


def test_refit_suspends_spammers_and_trusts_good_workers(refitted: tuple) -> None:
    campaign, _, _, crowd = refitted
    skills = {s.worker_id: s for s in WorkerSkill.objects.filter(campaign_id=campaign.pk)}
    assert len(skills) == 15
    spammers, good = crowd[12:], crowd[:12]
    # About 70 answers each: enough to be 95 % sure of most of them, and none is ever trusted.
    assert sum(skills[w.pk].status == WorkerStatus.SUSPENDED for w in spammers) >= 2
    assert not any(skills[w.pk].status == WorkerStatus.TRUSTED for w in spammers)
    assert all(skills[w.pk].status == WorkerStatus.TRUSTED for w in good)
    assert min(skills[w.pk].spam_score for w in good) > max(
        skills[w.pk].spam_score for w in spammers
    )
    suspended = [w for w in spammers if skills[w.pk].status == WorkerStatus.SUSPENDED]
    spammer = suspended[0]
    assert skills[spammer.pk].suspended_at is not None
    assert "chance" in skills[spammer.pk].status_reason
    assert set(selectors.suspended_workers(campaign_id=campaign.pk)) == {w.pk for w in suspended}
    assert not selectors.worker_may_label(worker_id=spammer.pk, campaign_id=campaign.pk)
    assert selectors.worker_may_label(worker_id=good[0].pk, campaign_id=campaign.pk)
    with pytest.raises(PermissionDenied) as raised:
        selectors.worker_check_may_label(worker_id=spammer.pk, campaign_id=campaign.pk)
    assert raised.value.code == "worker_suspended"
    assert raised.value.status_code == 403
    assert "suspended" in raised.value.message
    # ... and next-task, upstream in labeling, refuses exactly the suspended workers.
    from labeling.models import WorkerBlock

    blocked = set(WorkerBlock.objects.filter(campaign=campaign).values_list("worker_id", flat=True))
    assert blocked == {w.pk for w in suspended}
    mine = selectors.worker_status(worker_id=good[0].pk, campaign_id=campaign.pk)
    assert mine.status == WorkerStatus.TRUSTED
    assert mine.may_label
    assert mine.accuracy is not None
    assert mine.accuracy > 0.8
    # Next-task refuses them (labeling's block list, which the refit keeps).
    from labeling.services import task_lease_next

    with pytest.raises(PermissionDenied) as refused:
        task_lease_next(campaign=campaign, worker=spammer)
    assert refused.value.code == "worker_suspended"
    # Suspension is sticky across refits.
    CampaignQuality.objects.filter(campaign_id=campaign.pk).update(refit_claimed_until=None)
    services.campaign_refit(campaign_id=campaign.pk)
    assert (
        WorkerSkill.objects.get(worker=spammer, campaign_id=campaign.pk).status
        == WorkerStatus.SUSPENDED
    )


def test_verdicts_after_a_refit(refitted: tuple) -> None:
    campaign, items, _, _ = refitted
    suspended = set(selectors.suspended_workers(campaign_id=campaign.pk))
    item = next(i for i in items if Item.objects.get(pk=i.pk).status == ItemStatus.COMPLETE)
    decided = consensus(item)
    verdicts = selectors.annotation_verdicts(item_id=item.pk)
    for annotation in item.annotations.all():
        accepted, reason = verdicts[annotation.pk]
        if annotation.worker_id in suspended:
            assert (accepted, reason) == (False, "worker_suspended")
        elif annotation.label == decided.label:
            assert (accepted, reason) == (True, "agrees")
        else:
            assert (accepted, reason) == (False, "disagrees")
    # A newcomer who agrees, in a calibrated campaign, waits to be proven.
    open_item = next(i for i in items if Item.objects.get(pk=i.pk).status == ItemStatus.OPEN)
    newcomer = workers(1)[0]
    answer(open_item, newcomer, consensus(open_item).label)
    Item.objects.filter(pk=open_item.pk).update(status=ItemStatus.COMPLETE)
    ItemConsensus.objects.filter(item_id=open_item.pk).update(is_complete=True)
    verdicts = selectors.annotation_verdicts(item_id=open_item.pk)
    newest = open_item.annotations.get(worker=newcomer)
    assert verdicts[newest.pk] == (False, "worker_unproven")


def test_after_a_refit_each_label_weighs_by_its_worker(refitted: tuple) -> None:
    campaign, _, _, crowd = refitted
    (fresh,) = add_items(campaign, 1)
    good, spammer = crowd[0], crowd[-1]
    answer(fresh, good, "yes")
    answer(fresh, spammer, "no")
    services.item_consensus_update(item_id=fresh.pk)
    votes = consensus(fresh).votes
    weight = {a["worker_id"]: a["weight"] for a in votes["annotators"]}
    assert consensus(fresh).label == "yes"
    assert weight[good.pk] > 1.0
    assert abs(weight[spammer.pk]) < 0.5 * weight[good.pk]


def test_refit_leaves_items_labeled_meanwhile_to_their_own_update(refitted: tuple) -> None:
    campaign, items, _, _ = refitted
    item = items[3]
    ItemConsensus.objects.filter(item_id=item.pk).update(n_labels=99, label="sentinel")
    CampaignQuality.objects.filter(campaign_id=campaign.pk).update(refit_claimed_until=None)
    services.campaign_refit(campaign_id=campaign.pk)
    assert consensus(item).label == "sentinel"


def test_a_claimed_refit_is_skipped(refitted: tuple) -> None:
    campaign, *_ = refitted
    from quality.services.refit import claim_refit

    assert claim_refit(campaign_id=campaign.pk)
    assert services.campaign_refit(campaign_id=campaign.pk) is None


def test_submissions_ask_for_a_refit_once_enough_labels_arrived(settings) -> None:
    settings.KYODO_QUALITY_REFIT_MIN_NEW_LABELS = 4
    campaign, items = text_campaign(n_items=4, min_labels=2, max_labels=3)
    crowd = workers(2)
    for item in items:
        for worker in crowd:
            answer(item, worker, "yes")
    set_label_count(campaign, 8)
    services.item_consensus_update(item_id=items[0].pk)  # eager Celery: the refit runs on commit
    row = CampaignQuality.objects.get(campaign_id=campaign.pk)
    assert row.next_refit_at > 8  # claimed: later submissions do not ask again


def test_the_beat_refits_campaigns_with_new_labels_once_the_work_pause_is_over(
    refitted: tuple, settings
) -> None:
    campaign, *_ = refitted
    assert refit_due() == 0  # nothing new since the refit
    set_label_count(campaign, 1000 + 50)
    row = CampaignQuality.objects.get(campaign_id=campaign.pk)
    assert row.pause_until is not None
    assert row.pause_until > timezone.now()
    assert refit_due() == 0  # the refit's pause (9 x its CPU time) still runs
    CampaignQuality.objects.filter(pk=row.pk).update(pause_until=timezone.now())
    assert refit_due() == 1


def test_a_work_pause_bounds_refits_to_their_cpu_share(settings) -> None:
    settings.KYODO_QUALITY_REFIT_CPU_SHARE = 0.1
    assert work_pause(2.0).total_seconds() == pytest.approx(18.0)
    settings.KYODO_QUALITY_REFIT_CPU_SHARE = 0.5
    assert work_pause(2.0).total_seconds() == pytest.approx(2.0)
    settings.KYODO_QUALITY_REFIT_CPU_SHARE = 1.0
    assert work_pause(2.0).total_seconds() == 0.0


def test_labels_during_the_work_pause_ask_for_no_refit_until_it_ends(
    settings, django_capture_on_commit_callbacks: Any
) -> None:
    settings.KYODO_QUALITY_REFIT_MIN_NEW_LABELS = 2
    campaign, items = text_campaign(n_items=4, min_labels=3, max_labels=3)
    crowd = workers(2)
    ensure_campaign_quality(campaign_id=items[0].campaign_id)
    row = CampaignQuality.objects.get(campaign_id=items[0].campaign_id)
    CampaignQuality.objects.filter(pk=row.pk).update(
        pause_until=timezone.now() + timedelta(hours=1)
    )
    for item in items[:2]:
        answer(item, crowd[0], "yes")
    set_label_count(campaign, 2)  # the campaign's tally: past next_refit_at
    with django_capture_on_commit_callbacks() as paused:
        services.items_consensus_update(item_ids=[i.pk for i in items[:2]])
    assert len(paused) == 0  # no refit message: the pause runs
    # Nor while a training runs: the refit would start the moment it ends, outside its pause.
    CampaignQuality.objects.filter(pk=row.pk).update(
        pause_until=timezone.now(), train_claimed_until=timezone.now() + timedelta(minutes=5)
    )
    answer(items[2], crowd[0], "yes")
    set_label_count(campaign, 3)
    with django_capture_on_commit_callbacks() as training:
        services.items_consensus_update(item_ids=[items[2].pk])
    assert len(training) == 0
    assert services.campaigns_refit_due() == []
    CampaignQuality.objects.filter(pk=row.pk).update(train_claimed_until=None)
    assert services.campaigns_refit_due() == [campaign.pk]
    with django_capture_on_commit_callbacks() as resumed:
        services.items_consensus_update(item_ids=[items[2].pk])
    assert len(resumed) == 1  # the refit is asked for


def test_quality_refit_command(refitted: tuple) -> None:
    campaign, *_ = refitted
    CampaignQuality.objects.filter(campaign_id=campaign.pk).update(refit_claimed_until=None)
    out = StringIO()
    call_command("quality_refit", str(campaign.pk), stdout=out)
    summary = json.loads(out.getvalue())
    assert summary["calibrated"] is True
    assert summary["answers"] == 1000
    with pytest.raises(CommandError, match="does not exist"):
        call_command("quality_refit", "999999")


def test_refit_of_a_campaign_without_labels() -> None:
    campaign, _ = text_campaign(n_items=3)
    assert services.campaign_refit(campaign_id=campaign.pk) is None


def test_refit_keeps_gold_items_open_and_scores_workers_on_them() -> None:
    campaign, _ = text_campaign(min_labels=1, max_labels=3)
    items = add_items(campaign, 30, gold={i: "yes" for i in range(10)})
    crowd = workers(6)
    simulated_crowd(campaign, items, crowd, accuracies=[0.9] * 6, per_item=3, seed=11)
    assert services.campaign_refit(campaign_id=campaign.pk) is not None
    gold = [consensus(i) for i in items[:10]]
    assert {(c.label, c.method, c.is_complete) for c in gold} == {("yes", "gold", False)}
    assert all(c.votes["annotators"] == [] for c in gold)
    assert all(status(i) == ItemStatus.OPEN for i in items[:10])
    skills = WorkerSkill.objects.filter(campaign_id=campaign.pk)
    assert sum(s.gold_seen for s in skills) == 30
    assert CampaignQuality.objects.get(campaign_id=campaign.pk).method == "one_coin_agreement"


def test_staff_lift_a_suspension(refitted: tuple) -> None:
    campaign, _, _, _ = refitted
    spammer_id = selectors.suspended_workers(campaign_id=campaign.pk)[0]
    assert services.worker_reinstate(worker_id=spammer_id, campaign_id=campaign.pk)
    assert selectors.worker_may_label(worker_id=spammer_id, campaign_id=campaign.pk)
    status_now = selectors.worker_status(worker_id=spammer_id, campaign_id=campaign.pk)
    assert status_now.status == WorkerStatus.PROBATION
    from labeling.models import WorkerBlock

    assert not WorkerBlock.objects.filter(worker_id=spammer_id, campaign_id=campaign.pk).exists()
    assert not services.worker_reinstate(worker_id=spammer_id, campaign_id=campaign.pk)


def test_refit_stores_the_typical_contributor_and_closes_items_not_worth_a_label(
    refitted: tuple, settings
) -> None:
    from quality.services.params import campaign_params

    campaign, _items, _, _ = refitted
    row = CampaignQuality.objects.get(campaign_id=campaign.pk)
    assert row.typical_confusion is not None
    params = campaign_params(campaign_id=campaign.pk, classes=campaign.class_names)
    assert params.typical is not None
    # With labels priced out of reach (every label "worth" less than 1.0), any open item with
    # min_labels labels closes on its next update.
    settings.KYODO_QUALITY_MIN_GAIN = 1.0
    still_open = Item.objects.filter(campaign=campaign, status=ItemStatus.OPEN).first()
    assert still_open is not None
    services.item_consensus_update(item_id=still_open.pk)
    still_open.refresh_from_db()
    assert still_open.status == ItemStatus.COMPLETE
