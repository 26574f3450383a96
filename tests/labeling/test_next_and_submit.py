from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import User
from labeling.models import Assignment, AssignmentStatus, Campaign, Item
from labeling.services import items_upload, leases_expire
from storage.services import get_store

from ..accounts.factories import UserFactory
from ..conftest import client_for, streamed
from .factories import CampaignFactory, png_bytes

pytestmark = pytest.mark.django_db


def add_images(campaign: Campaign, n: int, gold: str = "") -> list[Item]:
    from django.core.files.uploadedfile import SimpleUploadedFile

    files = [SimpleUploadedFile(f"{i}.png", png_bytes(i + 1000 * campaign.pk)) for i in range(n)]
    items_upload(campaign=campaign, files=files)
    items = list(Item.objects.filter(campaign=campaign).order_by("id"))
    if gold:
        Item.objects.filter(campaign=campaign).update(gold_label=gold)
    return items


def test_next_returns_a_lease_and_is_idempotent(campaign: Campaign, contributor: User) -> None:
    add_images(campaign, 3, gold="cat")
    # Every item is gold here, so the draw must always pick the gold queue.
    Campaign.objects.filter(pk=campaign.pk).update(gold_ratio=1.0)
    campaign.refresh_from_db()
    client = client_for(contributor)
    first = client.get(f"/api/campaigns/{campaign.pk}/next/")
    assert first.status_code == 200
    body = first.json()
    assert set(body) == {
        "item_id",
        "campaign_id",
        "classes",
        "lease_expires_at",
        "media_type",
        "media_url",
    }
    assert body["media_url"].startswith("/ipfs/bafkrei")
    assert [c["name"] for c in body["classes"]] == ["cat", "dog", "bird"]
    assert "cat" not in json.dumps(
        {k: v for k, v in body.items() if k != "classes"}
    )  # no gold leak
    # Asking again before labeling returns the same lease, not a second item.
    assert client.get(f"/api/campaigns/{campaign.pk}/next/").json()["item_id"] == body["item_id"]
    assert Assignment.objects.filter(worker=contributor).count() == 1


def test_submit_validation_errors(campaign: Campaign, contributor: User) -> None:
    items = add_images(campaign, 2)
    client = client_for(contributor)
    task = client.get(f"/api/campaigns/{campaign.pk}/next/").json()
    url = f"/api/items/{task['item_id']}/annotations/"
    unknown = client.post(url, {"label": "horse"}, format="json")
    assert unknown.status_code == 400
    assert unknown.json()["error"]["code"] == "unknown_class"
    # A huge label is not echoed back whole (issue 15): the message quotes its start.
    huge = client.post(url, {"label": "h" * 1_000_000}, format="json")
    assert huge.json()["error"]["code"] == "unknown_class"
    assert len(huge.content) < 1_000
    assert "'hhhh" in huge.json()["error"]["message"]
    assert (
        client.post(url, {"label": ["cat"]}, format="json").json()["error"]["code"]
        == "unknown_class"
    )
    assert (
        client.post(url, {"label": "cat", "extra": 1}, format="json").json()["error"]["code"]
        == "unknown_field"
    )
    assert client.post(url, {}, format="json").status_code == 400
    assert (
        client.post(url, {"label": "cat", "duration_ms": "slow"}, format="json").status_code == 400
    )
    assert client.post(url, data="{", content_type="application/json").status_code == 400
    other = next(i for i in items if i.pk != task["item_id"])
    not_mine = client.post(f"/api/items/{other.pk}/annotations/", {"label": "cat"}, format="json")
    assert not_mine.status_code == 409
    assert not_mine.json()["error"]["code"] == "not_leased"
    missing = client.post("/api/items/999999/annotations/", {"label": "cat"}, format="json")
    assert missing.status_code == 404
    ok = client.post(url, {"label": "cat", "duration_ms": 1234}, format="json")
    assert ok.status_code == 201
    again = client.post(url, {"label": "dog"}, format="json")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "already_labeled"
    assert contributor.annotations.count() == 1


def test_never_the_same_item_twice_and_never_over_max_labels(requester: User) -> None:
    campaign = CampaignFactory.create(owner=requester, min_labels=3, max_labels=3)
    add_images(campaign, 4)
    workers = [UserFactory.create() for _ in range(5)]
    seen: dict[int, list[int]] = {}
    for worker in workers:
        client = client_for(worker)
        while (response := client.get(f"/api/campaigns/{campaign.pk}/next/")).status_code == 200:
            item_id = response.json()["item_id"]
            seen.setdefault(worker.pk, []).append(item_id)
            # Alternate labels so items never reach agreement early: all must reach max_labels.
            label = ["cat", "dog", "bird"][len(seen[worker.pk]) % 3]
            assert (
                client.post(
                    f"/api/items/{item_id}/annotations/", {"label": label}, format="json"
                ).status_code
                == 201
            )
        assert response.status_code == 204
    for items in seen.values():
        assert len(items) == len(set(items))
    for item in Item.objects.filter(campaign=campaign):
        assert item.label_count <= 3
        assert item.slots_taken == item.label_count
    assert sum(len(v) for v in seen.values()) == 12


def test_expired_lease_returns_to_the_pool(requester: User) -> None:
    campaign = CampaignFactory.create(owner=requester, min_labels=1, max_labels=1)
    (item,) = add_images(campaign, 1)
    slow, fast = UserFactory.create(), UserFactory.create()
    assert client_for(slow).get(f"/api/campaigns/{campaign.pk}/next/").json()["item_id"] == item.pk
    assert client_for(fast).get(f"/api/campaigns/{campaign.pk}/next/").status_code == 204
    Assignment.objects.filter(worker=slow).update(
        leased_until=timezone.now() - timedelta(seconds=1)
    )
    # The next request reclaims the expired lease on its own (the beat task also does).
    assert client_for(fast).get(f"/api/campaigns/{campaign.pk}/next/").json()["item_id"] == item.pk
    late = client_for(slow).post(
        f"/api/items/{item.pk}/annotations/", {"label": "cat"}, format="json"
    )
    assert late.status_code == 409
    assert late.json()["error"]["code"] == "lease_expired"
    item.refresh_from_db()
    assert item.slots_taken == 1
    assert leases_expire() == 0


def test_budget_caps_reservations(requester: User) -> None:
    campaign = CampaignFactory.create(
        owner=requester, reward_per_label=10, budget=25, min_labels=1, max_labels=2
    )
    add_images(campaign, 5)
    leased = 0
    for _ in range(4):
        response = client_for(UserFactory.create()).get(f"/api/campaigns/{campaign.pk}/next/")
        if response.status_code == 200:
            leased += 1
        else:
            assert response.status_code == 409
            assert response.json()["error"]["code"] == "budget_exhausted"
    assert leased == 2
    campaign.refresh_from_db()
    assert campaign.labels_reserved == 2
    # The refused third lease left no slot taken behind.
    assert sum(Item.objects.filter(campaign=campaign).values_list("slots_taken", flat=True)) == 2
    assert Assignment.objects.filter(status=AssignmentStatus.LEASED).count() == 2


def test_contributor_cannot_see_draft_campaign(requester: User, contributor: User) -> None:
    campaign = CampaignFactory.create(owner=requester, status="draft")
    response = client_for(contributor).get(f"/api/campaigns/{campaign.pk}/next/")
    assert response.status_code == 403


def test_media_served_only_to_those_who_may_see_it(campaign: Campaign, contributor: User) -> None:
    add_images(campaign, 2)
    client = client_for(contributor)
    task = client.get(f"/api/campaigns/{campaign.pk}/next/").json()
    media = client.get(task["media_url"])
    assert media.status_code == 200
    data = streamed(media)
    assert data.startswith(b"\x89PNG")
    assert media["Content-Type"] == "image/png"
    assert media["Cache-Control"] == "private, max-age=31536000, immutable"
    cid = task["media_url"].rsplit("/", 1)[1]
    assert media["ETag"] == f'"{cid}"'
    partial = client.get(task["media_url"], HTTP_RANGE="bytes=1-3")
    assert partial.status_code == 206
    assert streamed(partial) == data[1:4]
    assert partial["Content-Range"] == f"bytes 1-3/{len(data)}"
    unsatisfiable = client.get(task["media_url"], HTTP_RANGE=f"bytes={len(data) + 5}-")
    assert unsatisfiable.status_code == 416
    assert unsatisfiable.json()["error"]["code"] == "range_not_satisfiable"  # issue 15, item 8
    assert client.get(task["media_url"], HTTP_IF_NONE_MATCH=f'"{cid}"').status_code == 304
    # An item never leased to this contributor is not theirs to see.
    other = Item.objects.filter(campaign=campaign).exclude(pk=task["item_id"]).get()
    assert client.get(f"/ipfs/{other.cid}").status_code == 404
    assert client.get("/ipfs/not-a-cid").status_code == 404
    assert client_for(campaign.owner).get(f"/ipfs/{other.cid}").status_code == 200


def test_media_errors_are_json(campaign: Campaign, contributor: User) -> None:
    add_images(campaign, 1)
    client = client_for(contributor)
    task = client.get(f"/api/campaigns/{campaign.pk}/next/").json()
    cid = task["media_url"].rsplit("/", 1)[1]
    store = get_store()
    path = store.blockstore.path_for(cid)  # type: ignore[attr-defined]
    path.write_bytes(b"tampered")
    corrupt = client.get(task["media_url"])
    assert corrupt.status_code == 502
    assert corrupt.json()["error"]["code"] == "storage_integrity"
    path.unlink()
    missing = client.get(task["media_url"])
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "blob_not_found"


def test_gold_items_are_mixed_in_at_gold_ratio_and_never_fill_up(
    requester: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    campaign = CampaignFactory.create(owner=requester, min_labels=3, max_labels=3, gold_ratio=0.5)
    items = add_images(campaign, 5)
    gold_ids = {items[0].pk, items[1].pk}
    Item.objects.filter(pk__in=gold_ids).update(gold_label="cat")
    # The draw always says "gold": every worker meets both gold items, beyond max_labels.
    monkeypatch.setattr("labeling.services.leases.gold_draw", lambda: 0.0)
    for n in range(5):
        client = client_for(UserFactory.create())
        served = []
        for _ in range(2):
            task = client.get(f"/api/campaigns/{campaign.pk}/next/").json()
            served.append(task["item_id"])
            done = client.post(
                f"/api/items/{task['item_id']}/annotations/", {"label": "dog"}, format="json"
            )
            assert done.status_code == 201
        assert set(served) == gold_ids, n
        # Gold exhausted for this worker: the regular queue serves the next item.
        task = client.get(f"/api/campaigns/{campaign.pk}/next/").json()
        assert task["item_id"] not in gold_ids
    for gold in Item.objects.filter(pk__in=gold_ids):
        assert gold.label_count == 5
        assert gold.status == "open"
    # The draw says "regular": no gold item is served while regular ones are left.
    monkeypatch.setattr("labeling.services.leases.gold_draw", lambda: 0.99)
    client = client_for(UserFactory.create())
    assert client.get(f"/api/campaigns/{campaign.pk}/next/").json()["item_id"] not in gold_ids


def test_gold_items_are_not_served_without_a_gold_ratio(requester: User) -> None:
    campaign = CampaignFactory.create(owner=requester, gold_ratio=0.0)
    (item,) = add_images(campaign, 1, gold="cat")
    assert item.pk
    assert (
        client_for(UserFactory.create()).get(f"/api/campaigns/{campaign.pk}/next/").status_code
        == 204
    )


def test_a_blocked_worker_gets_a_clear_403(campaign: Campaign, contributor: User) -> None:
    from labeling.services import worker_block, worker_unblock

    add_images(campaign, 2)
    worker_block(campaign_id=campaign.pk, worker_id=contributor.pk, reason="answers look random")
    response = client_for(contributor).get(f"/api/campaigns/{campaign.pk}/next/")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "worker_suspended"
    assert "answers look random" in response.json()["error"]["message"]
    other = CampaignFactory.create(owner=campaign.owner)
    add_images(other, 1)
    assert client_for(contributor).get(f"/api/campaigns/{other.pk}/next/").status_code == 200
    worker_unblock(campaign_id=campaign.pk, worker_id=contributor.pk)
    assert client_for(contributor).get(f"/api/campaigns/{campaign.pk}/next/").status_code == 200


def test_bounding_box_campaign_end_to_end(requester: User, contributor: User) -> None:
    owner = client_for(requester)
    created = owner.post(
        "/api/campaigns/",
        {"title": "Boxes", "task_type": "image_bbox", "label_schema": ["car", "person"]},
        format="json",
    )
    assert created.status_code == 201, created.content
    campaign = Campaign.objects.get(pk=created.json()["id"])
    add_images(campaign, 1)
    client = client_for(contributor)
    task = client.get(f"/api/campaigns/{campaign.pk}/next/").json()
    url = f"/api/items/{task['item_id']}/annotations/"
    assert client.post(url, {"label": "car"}, format="json").status_code == 400
    outside = [{"x": 0.9, "y": 0.1, "w": 0.5, "h": 0.2, "label": "car"}]
    assert client.post(url, {"boxes": outside}, format="json").status_code == 400
    unknown = [{"x": 0.1, "y": 0.1, "w": 0.2, "h": 0.2, "label": "tree"}]
    assert client.post(url, {"boxes": unknown}, format="json").status_code == 400
    boxes = [{"x": 0.1, "y": 0.2, "w": 0.3, "h": 0.4, "label": "person"}]
    done = client.post(url, {"boxes": boxes}, format="json")
    assert done.status_code == 201, done.content
    assert done.json()["value"]["boxes"][0]["label"] == "person"
