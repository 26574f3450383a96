from __future__ import annotations

import pytest

from accounts.models import User
from labeling.models import Campaign

from ..conftest import client_for

pytestmark = pytest.mark.django_db

VALID = {
    "title": "Birds",
    "task_type": "image_classification",
    "label_schema": {"classes": [{"name": "sparrow", "hotkey": "s"}, {"name": "crow"}]},
    "min_labels": 2,
    "max_labels": 4,
    "reward_per_label": 5,
}


def test_requester_creates_and_reads_campaign(requester: User) -> None:
    client = client_for(requester)
    created = client.post("/api/campaigns/", VALID, format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["label_schema"]["classes"][0] == {
        "name": "sparrow",
        "hotkey": "s",
        "color": "#0072B2",
    }
    assert body["label_schema"]["classes"][1]["hotkey"] == "2"
    detail = client.get(f"/api/campaigns/{body['id']}/")
    assert detail.status_code == 200
    assert detail.json()["progress"] == {"items": 0, "completed": 0, "labels": 0}


def test_contributor_cannot_create_campaign(contributor: User) -> None:
    response = client_for(contributor).post("/api/campaigns/", VALID, format="json")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "not_requester"


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"task_type": "video"}, "task_type"),
        ({"label_schema": {"classes": ["only-one"]}}, "classes"),
        ({"label_schema": ["a", "a"]}, "twice"),
        ({"label_schema": [{"name": "a", "hotkey": "1"}, {"name": "b", "hotkey": "1"}]}, "hotkey"),
        ({"label_schema": [{"name": "a", "color": "red"}, {"name": "b"}]}, "color"),
        ({"min_labels": 4, "max_labels": 2}, "max_labels"),
        ({"min_labels": "three"}, "min_labels"),
        ({"reward_per_label": -1}, "reward_per_label"),
        ({"reward_per_label": 1.5}, "reward_per_label"),
        ({"reward_per_label": "1e18"}, "reward_per_label"),
        ({"colour": "blue"}, "colour"),
        ({"task_type": "text_spans"}, "not available"),
        # A NUL cannot be stored in PostgreSQL: it was a 500 (issue 15, item 5).
        ({"label_schema": ["a\u0000", "b"]}, "control characters"),
        ({"label_schema": [{"name": "a", "hotkey": "\u0000"}, {"name": "b"}]}, "hotkey"),
    ],
)
def test_bad_campaign_input_names_the_problem(
    requester: User, change: dict[str, object], needle: str
) -> None:
    response = client_for(requester).post("/api/campaigns/", {**VALID, **change}, format="json")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert needle in error["message"] or needle in error.get("fields", {})
    assert not Campaign.objects.exists()


def test_huge_reward_is_exact(requester: User) -> None:
    amount = str(2**200)
    response = client_for(requester).post(
        "/api/campaigns/", {**VALID, "reward_per_label": amount}, format="json"
    )
    assert response.status_code == 201
    assert Campaign.objects.get().reward_per_label == 2**200
    assert response.json()["reward_per_label"] == amount


def test_unknown_campaign_is_404(requester: User) -> None:
    response = client_for(requester).get("/api/campaigns/999999/")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "campaign_not_found"


def test_owner_pauses_campaign_and_next_refuses(campaign: Campaign, contributor: User) -> None:
    owner = client_for(campaign.owner)
    assert (
        owner.patch(
            f"/api/campaigns/{campaign.pk}/", {"status": "paused"}, format="json"
        ).status_code
        == 200
    )
    # A paused campaign is not visible to contributors at all.
    response = client_for(contributor).get(f"/api/campaigns/{campaign.pk}/next/")
    assert response.status_code == 403
