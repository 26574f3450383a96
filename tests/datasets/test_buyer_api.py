from __future__ import annotations

import json

import pytest

from accounts.models import User
from labeling import selectors as labeling_selectors
from labeling.models import Campaign, CampaignStatus, Item, ItemStatus

from ..conftest import client_for, streamed
from ..labeling.factories import CampaignFactory, ItemFactory
from ..quality.factories import ItemConsensusFactory

pytestmark = pytest.mark.django_db


def completed_items(campaign: Campaign, n: int, decided: int) -> list[Item]:
    items = ItemFactory.create_batch(
        n, campaign=campaign, status=ItemStatus.COMPLETE, label_count=3
    )
    for item in items[:decided]:
        ItemConsensusFactory.create(
            item=item,
            label="dog",
            confidence=2 / 3,
            n_labels=3,
            method="majority_vote",
            is_complete=True,
        )
    Campaign.objects.filter(pk=campaign.pk).update(completed_count=n, item_count=n)
    return items


def test_export_streams_only_decided_items_in_order(campaign: Campaign, buyer: User) -> None:
    items = completed_items(campaign, 5, decided=4)
    response = client_for(buyer).get(f"/api/datasets/{campaign.pk}/export?format=jsonl")
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"] == "application/x-ndjson"
    rows = [json.loads(line) for line in streamed(response).splitlines()]
    assert [r["item_id"] for r in rows] == [i.pk for i in items[:4]]
    assert rows[0] == {
        "item_id": items[0].pk,
        "cid": items[0].cid,
        "label": "dog",
        "confidence": 0.666667,
        "n_labels": 3,
    }


def test_buyer_api_permissions_and_errors(
    campaign: Campaign, contributor: User, requester: User, buyer: User, staff: User
) -> None:
    completed_items(campaign, 1, decided=1)
    for user in (contributor, requester):
        assert client_for(user).get("/api/datasets/").status_code == 403
        assert client_for(user).get(f"/api/datasets/{campaign.pk}/export").status_code == 403
    assert client_for(staff).get("/api/datasets/").status_code == 200
    listing = client_for(buyer).get("/api/datasets/").json()["results"]
    assert listing[0]["campaign_id"] == campaign.pk
    assert listing[0]["classes"] == ["cat", "dog", "bird"]
    unknown = client_for(buyer).get(f"/api/datasets/{campaign.pk}/export?format=xml")
    assert unknown.status_code == 400
    assert unknown.json()["error"]["code"] == "unknown_format"
    assert client_for(buyer).get("/api/datasets/999999/export").status_code == 404


def test_schema_documents_every_endpoint(staff: User) -> None:
    schema = client_for(staff).get("/api/schema/?format=json")
    assert schema.status_code == 200
    paths = (
        json.loads(schema.content)["paths"]
        if schema["Content-Type"].startswith("application/json")
        else None
    )
    if paths is None:
        import yaml

        paths = yaml.safe_load(schema.content)["paths"]
    for path in [
        "/api/auth/register/",
        "/api/auth/token/",
        "/api/campaigns/",
        "/api/campaigns/{campaign_id}/",
        "/api/campaigns/{campaign_id}/items/",
        "/api/campaigns/{campaign_id}/next/",
        "/api/items/{item_id}/annotations/",
        "/api/datasets/",
        "/api/datasets/{campaign_id}/export",
    ]:
        assert path in paths, path
    docs = client_for(staff).get("/api/docs/")
    assert docs.status_code == 200
    assert b"swagger-ui" in docs.content
    assert b"cdn.jsdelivr" not in docs.content


def test_a_campaign_set_back_to_draft_is_neither_listed_nor_exported(
    campaign: Campaign, buyer: User
) -> None:
    """Issue 15, item 3: the export read the campaign whatever its status."""
    completed_items(campaign, 2, decided=2)
    client = client_for(buyer)
    assert [d["campaign_id"] for d in client.get("/api/datasets/").json()["results"]] == [
        campaign.pk
    ]
    Campaign.objects.filter(pk=campaign.pk).update(status=CampaignStatus.DRAFT)
    assert client.get("/api/datasets/").json()["results"] == []
    response = client.get(f"/api/datasets/{campaign.pk}/export?format=jsonl")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "dataset_not_found"


@pytest.mark.parametrize("status", list(CampaignStatus))
@pytest.mark.parametrize("completed", [0, 3])
def test_the_dataset_rule_and_its_filter_agree(status: str, completed: int) -> None:
    campaign = CampaignFactory.create(status=status)
    Campaign.objects.filter(pk=campaign.pk).update(completed_count=completed)
    campaign.refresh_from_db()
    listed = labeling_selectors.campaigns_with_completed_items().filter(pk=campaign.pk).exists()
    assert labeling_selectors.campaign_offers_dataset(campaign) == listed
    assert listed == (status != CampaignStatus.DRAFT and completed > 0)
