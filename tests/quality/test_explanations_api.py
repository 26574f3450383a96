"""GET /api/quality/items/{id}/explanation/: how a label was decided, without leaking identities."""

from __future__ import annotations

import pytest

from accounts.models import Role
from labeling.models import Campaign
from quality import services

from ..accounts.factories import UserFactory
from ..conftest import client_for
from .helpers import answer, text_campaign, workers

pytestmark = pytest.mark.django_db


def url(item_id: int) -> str:
    return f"/api/quality/items/{item_id}/explanation/"


def test_owner_sees_ids_contributors_see_numbers() -> None:
    campaign, (done, pending) = text_campaign(n_items=2, min_labels=2, max_labels=3)
    alice, bob, carol = workers(3)
    for worker in (alice, bob):
        answer(done, worker, "no")
    services.item_consensus_update(item_id=done.pk)
    answer(pending, carol, "yes")
    services.item_consensus_update(item_id=pending.pk)

    owner = client_for(campaign.owner).get(url(done.pk))
    assert owner.status_code == 200, owner.content
    body = owner.json()
    assert body["label"] == "no"
    assert body["is_complete"] is True
    assert body["method"] == "cold_start"
    assert set(body["posterior"]) == {"yes", "no"}
    assert body["posterior"]["no"] == pytest.approx(body["confidence"], abs=1e-6)
    assert [a["worker_id"] for a in body["annotators"]] == [alice.pk, bob.pk]
    assert body["model"] is None

    seen = client_for(alice).get(url(done.pk)).json()
    assert [a["annotator"] for a in seen["annotators"]] == ["annotator 1", "annotator 2"]
    assert [a["you"] for a in seen["annotators"]] == [True, False]
    assert all("worker_id" not in a for a in seen["annotators"])
    assert all(set(a) == {"annotator", "you", "label", "weight"} for a in seen["annotators"])
    assert seen["annotators"][0]["label"] == "no"
    assert seen["annotators"][0]["weight"] > 0

    # An open item: its owner may look, a contributor may not yet.
    assert client_for(campaign.owner).get(url(pending.pk)).status_code == 200
    refused = client_for(carol).get(url(pending.pk))
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "item_not_completed"
    staff = UserFactory.create(role=Role.REQUESTER, is_staff=True)
    assert "worker_id" in client_for(staff).get(url(pending.pk)).json()["annotators"][0]


def test_unknown_undecided_and_hidden_items() -> None:
    campaign, (item,) = text_campaign(n_items=1)
    owner = client_for(campaign.owner)
    assert owner.get(url(999_999)).json()["error"]["code"] == "item_not_found"
    assert owner.get(url(item.pk)).json()["error"]["code"] == "no_decision"
    Campaign.objects.filter(pk=campaign.pk).update(status="draft")
    stranger = client_for(workers(1)[0])
    assert stranger.get(url(item.pk)).status_code == 403


def test_my_standing_in_a_campaign() -> None:
    campaign, _ = text_campaign(n_items=1)
    me = workers(1)[0]
    body = client_for(me).get(f"/api/quality/campaigns/{campaign.pk}/me/").json()
    assert body["status"] == "probation"
    assert body["may_label"] is True
    assert body["accuracy"] is None
