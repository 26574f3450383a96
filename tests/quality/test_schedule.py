"""When refits and trainings run: on new evidence only, never one feeding the other.

At 100,000 items the worker once looped `refit_campaign` -> `train_model` -> `refit_campaign`
for 20 minutes after the last label (issue 22): each training set the next training's bar from
its training set, which is capped (KYODO_QUALITY_TRAIN_MAX_ITEMS), so the bar stayed below the
campaign's confident items and every refit asked for another training.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import numpy as np
import pytest
from django.utils import timezone

from bench.quality.ml_agreement import review
from labeling.models import Campaign, Item
from quality import services
from quality.models import CampaignQuality, ModelVersion
from quality.services import refit
from quality.services.params import ensure_campaign_quality

from .helpers import add_items, simulated_crowd, text_campaign, workers

CLASSES = ("positive", "negative", "neutral")
RUNS: dict[str, Callable[..., Any]] = {
    "quality.refit_campaign": services.campaign_refit,
    "quality.train_model": services.model_train,
}


@pytest.fixture
def queued(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """What the refit enqueues (a training), kept here instead of run. A training enqueues
    nothing: it asks for its refit through the campaign's mark."""
    tasks: list[tuple[str, int]] = []
    for module in (refit,):
        monkeypatch.setattr(
            module, "enqueue_on_commit", lambda name, campaign_id: tasks.append((name, campaign_id))
        )
    return tasks


def run_queue(queued: list[tuple[str, int]], limit: int = 12) -> list[str]:
    """Run what was queued, and what that queues, up to `limit` tasks; the names run."""
    ran: list[str] = []
    while queued and len(ran) < limit:
        name, campaign_id = queued.pop(0)
        ran.append(name)
        RUNS[name](campaign_id=campaign_id)
    return ran


def label(campaign: Campaign, items: list[Item], truth: np.ndarray, seed: int) -> None:
    """Three labels per item, by a crowd whose labels are the texts' own classes (learnable)."""
    simulated_crowd(campaign, items, workers(10), accuracies=[0.9] * 10, per_item=3, seed=seed)
    for item, t in zip(items, truth, strict=True):
        item.annotations.update(label=CLASSES[t], value={"label": CLASSES[t]})


@pytest.mark.django_db
def test_a_campaign_with_no_new_labels_goes_quiet(
    settings: Any, queued: list[tuple[str, int]]
) -> None:
    settings.KYODO_QUALITY_CALIBRATION_ITEMS = 50
    settings.KYODO_QUALITY_REFIT_CPU_SHARE = 1.0  # no pause: the evidence rule alone (below)
    # The training set capped below the confident items, as at 100,000 items.
    settings.KYODO_QUALITY_TRAIN_MAX_ITEMS = 40
    rng = np.random.default_rng(5)
    campaign, _ = text_campaign(classes=CLASSES, min_labels=1, max_labels=9)
    truth = rng.integers(0, 3, 300)
    items = add_items(campaign, 300, texts=[review(int(t), rng) for t in truth])
    label(campaign, items[:100], truth[:100], seed=6)

    assert services.campaign_refit(campaign_id=campaign.pk) is not None
    assert queued == [("quality.train_model", campaign.pk)]
    # The training asks for a refit (its model is new evidence): the mark at 0, for the next
    # batch of labels or the beat; that refit queues nothing.
    assert run_queue(queued) == ["quality.train_model"]
    assert CampaignQuality.objects.get(campaign_id=campaign.pk).next_refit_at == 0
    assert services.campaigns_refit_due() == [campaign.pk]
    services.campaign_refit(campaign_id=campaign.pk)
    assert queued == []
    assert CampaignQuality.objects.get(campaign_id=campaign.pk).model_version == 1
    # Any number of refits later, still nothing new to learn from.
    for _ in range(3):
        services.campaign_refit(campaign_id=campaign.pk)
    assert queued == []

    # New labels that raise the confident items past the bar bring a training again.
    label(campaign, items[100:250], truth[100:250], seed=7)
    services.campaign_refit(campaign_id=campaign.pk)
    assert run_queue(queued) == ["quality.train_model"]
    services.campaign_refit(campaign_id=campaign.pk)
    assert queued == []
    assert CampaignQuality.objects.get(campaign_id=campaign.pk).model_version == 2


@pytest.mark.django_db
def test_training_needs_both_new_labels_and_more_confident_items() -> None:
    campaign, _ = text_campaign(classes=CLASSES)
    ensure_campaign_quality(campaign_id=campaign.pk)
    CampaignQuality.objects.filter(campaign_id=campaign.pk).update(next_train_at=30)

    assert not refit.training_due(campaign_id=campaign.pk, confident=29, labels=100)
    assert refit.training_due(campaign_id=campaign.pk, confident=40, labels=100)
    row = CampaignQuality.objects.get(campaign_id=campaign.pk)
    assert (row.next_train_at, row.labels_at_train) == (60, 100)
    # Claimed: the same evidence never claims it twice, nor more confident items alone.
    assert not refit.training_due(campaign_id=campaign.pk, confident=40, labels=100)
    assert not refit.training_due(campaign_id=campaign.pk, confident=500, labels=100)
    # New labels alone are not enough either; both are.
    assert not refit.training_due(campaign_id=campaign.pk, confident=59, labels=140)
    assert refit.training_due(campaign_id=campaign.pk, confident=60, labels=140)


@pytest.mark.django_db
def test_no_training_is_claimed_while_the_pause_runs() -> None:
    campaign, _ = text_campaign(classes=CLASSES)
    ensure_campaign_quality(campaign_id=campaign.pk)
    later = timezone.now() + timedelta(minutes=5)
    CampaignQuality.objects.filter(campaign_id=campaign.pk).update(
        next_train_at=30, pause_until=later
    )
    assert not refit.training_due(campaign_id=campaign.pk, confident=40, labels=100)
    CampaignQuality.objects.filter(campaign_id=campaign.pk).update(pause_until=timezone.now())
    assert refit.training_due(campaign_id=campaign.pk, confident=40, labels=100)


@pytest.mark.django_db
def test_a_refit_and_a_training_each_start_a_pause_of_nine_times_their_cpu(
    settings: Any, queued: list[tuple[str, int]]
) -> None:
    settings.KYODO_QUALITY_CALIBRATION_ITEMS = 50
    settings.KYODO_QUALITY_REFIT_CPU_SHARE = 0.1
    rng = np.random.default_rng(5)
    campaign, _ = text_campaign(classes=CLASSES, min_labels=1, max_labels=9)
    truth = rng.integers(0, 3, 150)
    items = add_items(campaign, 150, texts=[review(int(t), rng) for t in truth])
    label(campaign, items, truth, seed=6)
    for run in (services.campaign_refit, services.model_train):
        before = timezone.now()
        cpu = time.process_time()
        run(campaign_id=campaign.pk)
        spent = time.process_time() - cpu
        after = timezone.now()
        pause = CampaignQuality.objects.get(campaign_id=campaign.pk).pause_until
        assert pause is not None
        # At most nine times the CPU the run took (and the clock moved on meanwhile).
        assert before < pause <= after + timedelta(seconds=9 * spent)
    assert ModelVersion.objects.filter(campaign_id=campaign.pk).count() == 1  # it trained
