"""The thin path through the whole product, in-process (eager Celery, LocalStore)."""

from __future__ import annotations

import json

from accounts.models import User
from labeling.models import Campaign, Item, ItemStatus
from quality.models import ItemConsensus
from rewards.models import RewardEntry, RewardStatus

from .accounts.factories import UserFactory
from .conftest import client_for, streamed
from .labeling.factories import png_bytes


def test_campaign_to_dataset(
    requester: User, buyer: User, django_capture_on_commit_callbacks
) -> None:
    owner = client_for(requester)
    response = owner.post(
        "/api/campaigns/",
        {
            "title": "Pets",
            "task_type": "image_classification",
            "label_schema": ["cat", "dog"],
            "min_labels": 2,
            "max_labels": 3,
            "reward_per_label": "1000000000000000000000",
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    campaign_id = response.json()["id"]
    assert response.json()["reward_per_label"] == "1000000000000000000000"

    from django.core.files.uploadedfile import SimpleUploadedFile

    files = [
        SimpleUploadedFile(f"img{i}.png", png_bytes(i), content_type="image/png") for i in range(4)
    ]
    response = owner.post(
        f"/api/campaigns/{campaign_id}/items/", {"files": files}, format="multipart"
    )
    assert response.status_code == 201, response.content
    assert response.json() == {"created": 4, "duplicates": 0, "rejected": []}

    workers = [UserFactory.create() for _ in range(3)]
    for worker in workers[:2]:
        client = client_for(worker)
        for _ in range(4):
            task = client.get(f"/api/campaigns/{campaign_id}/next/")
            assert task.status_code == 200, task.content
            assert "gold" not in json.dumps(task.json())
            with django_capture_on_commit_callbacks(execute=True):
                done = client.post(
                    f"/api/items/{task.json()['item_id']}/annotations/",
                    {"label": "cat"},
                    format="json",
                )
            assert done.status_code == 201, done.content
        assert client.get(f"/api/campaigns/{campaign_id}/next/").status_code == 204

    campaign = Campaign.objects.get(pk=campaign_id)
    assert campaign.completed_count == 4
    assert Item.objects.filter(campaign=campaign, status=ItemStatus.COMPLETE).count() == 4
    assert (
        ItemConsensus.objects.filter(campaign_id=campaign_id, is_complete=True, label="cat").count()
        == 4
    )
    assert RewardEntry.objects.filter(status=RewardStatus.ACCEPTED).count() == 8
    assert {e.amount for e in RewardEntry.objects.all()} == {10**21}

    # A third worker finds nothing: every item is closed.
    assert client_for(workers[2]).get(f"/api/campaigns/{campaign_id}/next/").status_code == 204

    datasets = client_for(buyer).get("/api/datasets/")
    assert [d["campaign_id"] for d in datasets.json()["results"]] == [campaign_id]
    export = client_for(buyer).get(f"/api/datasets/{campaign_id}/export?format=jsonl")
    assert export.status_code == 200
    lines = [json.loads(line) for line in streamed(export).splitlines()]
    assert len(lines) == 4
    assert {row["label"] for row in lines} == {"cat"}
    assert set(lines[0]) == {"item_id", "cid", "label", "confidence", "n_labels"}
