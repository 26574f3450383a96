"""quality.services.sweep: a label whose update message was lost gets its update from the sweep,
once; labels inside the grace period wait for the next run."""

from __future__ import annotations

from typing import Any

import pytest
from celery.canvas import Signature
from kombu.exceptions import OperationalError

from labeling.models import Annotation
from quality.models import ConsensusSweep, ItemConsensus
from quality.services import consensus_sweep_lagging

from ..accounts.factories import UserFactory
from ..conftest import client_for
from ..labeling.factories import CampaignFactory, TextItemFactory

# Transactional: the updates run on commit (eager), as they do in production.
pytestmark = pytest.mark.django_db(transaction=True)


def _label_all(campaign: Any, n: int) -> list[int]:
    client = client_for(UserFactory.create())
    labeled = []
    for _ in range(n):
        task = client.get(f"/api/campaigns/{campaign.pk}/next/").json()
        response = client.post(
            f"/api/items/{task['item_id']}/annotations/", {"label": "cat"}, format="json"
        )
        assert response.status_code == 201
        labeled.append(task["item_id"])
    return labeled


def test_lost_updates_are_sent_again_once(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    settings.KYODO_QUALITY_SWEEP_GRACE_SECONDS = 0
    campaign = CampaignFactory.create(min_labels=1, max_labels=1)
    TextItemFactory.create_batch(4, campaign=campaign)
    first = _label_all(campaign, 2)  # their updates ran (eager): nothing to repair
    monkeypatch.setattr(
        "labeling.services.annotations.enqueue_batched_on_commit_or_log", lambda *a: None
    )
    lost = _label_all(campaign, 2)  # their messages were lost
    assert not ItemConsensus.objects.filter(item_id__in=lost).exists()

    assert consensus_sweep_lagging() == sorted(lost)
    # Eager in tests: the updates ran, and the items closed.
    decided = ItemConsensus.objects.filter(item_id__in=first + lost, is_complete=True)
    assert sorted(decided.values_list("item_id", flat=True)) == sorted(first + lost)
    assert consensus_sweep_lagging() == []
    assert ConsensusSweep.objects.get().last_annotation_id > 0


def test_labels_inside_the_grace_period_wait(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.KYODO_QUALITY_SWEEP_GRACE_SECONDS = 3600
    campaign = CampaignFactory.create(min_labels=1, max_labels=1)
    TextItemFactory.create(campaign=campaign)
    monkeypatch.setattr(
        "labeling.services.annotations.enqueue_batched_on_commit_or_log", lambda *a: None
    )
    (item_id,) = _label_all(campaign, 1)
    assert consensus_sweep_lagging() == []
    assert not ItemConsensus.objects.filter(item_id=item_id).exists()
    settings.KYODO_QUALITY_SWEEP_GRACE_SECONDS = 0
    assert consensus_sweep_lagging() == [item_id]


def test_a_broker_error_after_the_commit_still_answers_201(
    settings: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    settings.KYODO_QUALITY_SWEEP_GRACE_SECONDS = 0
    campaign = CampaignFactory.create(min_labels=1, max_labels=1)
    TextItemFactory.create(campaign=campaign)

    def broker_down(self: Any, *args: Any, **kwargs: Any) -> None:
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    with monkeypatch.context() as patched:
        patched.setattr(Signature, "apply_async", broker_down)
        (item_id,) = _label_all(campaign, 1)  # asserts the 201
    assert "could not queue quality.update_items for" in caplog.text
    assert Annotation.objects.filter(item_id=item_id).count() == 1
    assert not ItemConsensus.objects.filter(item_id=item_id).exists()
    assert consensus_sweep_lagging() == [item_id]
    assert ItemConsensus.objects.get(item_id=item_id).is_complete
