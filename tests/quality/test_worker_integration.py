"""Dynamic overlap end to end: labels through the API, a real Celery worker on Redis and PostgreSQL.

Items close as soon as they are confident, before `max_labels`; after enough labels a submission
asks for a full refit, which the worker runs too.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from labeling.models import Item, ItemStatus
from quality.models import CampaignQuality, ItemConsensus, WorkerSkill
from rewards.models import RewardEntry
from tests.integration.conftest import celery_worker_process  # noqa: F401 - the fixture

from ..conftest import client_for
from .helpers import text_campaign, workers

pytestmark = [pytest.mark.services, pytest.mark.slow]


@pytest.fixture
def small_refits(monkeypatch: pytest.MonkeyPatch) -> None:
    # Read by the worker process at start: its first refit after 12 labels instead of 50.
    monkeypatch.setenv("KYODO_QUALITY_REFIT_MIN_NEW_LABELS", "12")


def wait_for(predicate: Callable[[], bool], timeout: float = 90.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def test_confident_items_close_before_max_labels_and_a_refit_runs(
    small_refits: None,
    celery_worker_process: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    campaign, _ = text_campaign(n_items=8, min_labels=1, max_labels=5, reward_per_label=3)
    crowd = workers(4)
    clients = [client_for(w) for w in crowd]
    submitted = 0
    # Contributors take turns; everyone answers "yes". An item closes once its posterior reaches
    # 0.95 (two agreeing labels at the cold start's 85 %), well before its 5 slots are used.
    for _ in range(40):
        progressed = False
        for client in clients:
            task = client.get(f"/api/campaigns/{campaign.pk}/next/")
            if task.status_code == 204:
                continue
            assert task.status_code == 200, task.content
            done = client.post(
                f"/api/items/{task.json()['item_id']}/annotations/", {"label": "yes"}, format="json"
            )
            assert done.status_code in (201, 409), done.content
            submitted += done.status_code == 201
            progressed = True
            # Let the worker decide before the next lease, as a human's pace would.
            decided = ItemConsensus.objects.filter(item_id=task.json()["item_id"])
            wait_for(decided.exists)
        if not progressed:
            break

    def all_closed() -> bool:
        return Item.objects.filter(campaign=campaign, status=ItemStatus.COMPLETE).count() == 8

    assert wait_for(all_closed), list(Item.objects.filter(campaign=campaign).values())
    labels = list(Item.objects.filter(campaign=campaign).values_list("label_count", flat=True))
    assert max(labels) < campaign.max_labels
    assert sum(labels) == submitted
    decided = ItemConsensus.objects.filter(campaign_id=campaign.pk)
    assert decided.count() == 8
    assert all(c.is_complete and c.label == "yes" and c.confidence >= 0.95 for c in decided)
    # A submission past the refit mark queued a full refit; the worker ran it.
    assert wait_for(
        lambda: CampaignQuality.objects.filter(
            campaign_id=campaign.pk, fitted_at__isnull=False
        ).exists()
    )
    assert WorkerSkill.objects.filter(campaign_id=campaign.pk).count() == len(crowd)
    assert wait_for(
        lambda: RewardEntry.objects.filter(campaign_id=campaign.pk).count() == submitted
    )
