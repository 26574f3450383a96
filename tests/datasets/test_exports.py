from __future__ import annotations

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from accounts.models import User
from core.jobs import JobStatus
from datasets.models import Export
from datasets.services import export_build, export_request
from labeling.models import Campaign, Item
from labeling.services import items_upload
from storage.car import read_car
from storage.services import get_store
from storage.unixfs import decode_dag_pb

from ..conftest import client_for, streamed
from ..labeling.factories import png_bytes

pytestmark = pytest.mark.django_db


def walk_names(root: str, blocks: dict[str, bytes]) -> dict[str, str]:
    """name → CID of every file under a directory DAG."""
    out: dict[str, str] = {}
    for link in decode_dag_pb(blocks[root]).links:
        child = blocks.get(link.cid)
        if child is not None and link.name.isdigit():  # a numbered subdirectory
            out.update(walk_names(link.cid, blocks))
        else:
            out[link.name] = link.cid
    return out


def test_raw_car_export_holds_every_item(
    campaign: Campaign, django_capture_on_commit_callbacks
) -> None:
    big = bytes(range(256)) * 4096  # 1 MiB: a multi-block item next to single-block images
    items_upload(
        campaign=campaign, files=[SimpleUploadedFile(f"p{i}.png", png_bytes(i)) for i in range(5)]
    )
    Item.objects.create(
        campaign=campaign,
        cid=get_store().put_bytes(big).cid,
        media_type="application/octet-stream",
        size=len(big),
        filename="big.bin",
    )
    client = client_for(campaign.owner)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            f"/api/datasets/{campaign.pk}/exports/", {"format": "car"}, format="json"
        )
    assert response.status_code == 202, response.content
    export = client.get(f"/api/datasets/exports/{response.json()['id']}/").json()
    assert export["status"] == "done"
    assert export["item_count"] == 6
    download = client.get(export["download_url"])
    assert download["Content-Type"] == "application/vnd.ipld.car"
    data = streamed(download)
    assert len(data) == export["size"]
    roots, sections = read_car(io.BytesIO(data))  # verifies every block against its CID
    blocks = dict(sections)
    assert roots == [export["root_cid"]]
    names = walk_names(roots[0], blocks)
    items = {i.pk: i.cid for i in Item.objects.filter(campaign=campaign)}
    assert sorted(names.values()) == sorted(items.values())
    assert any(name.endswith("-big.bin") for name in names)
    for name, cid in names.items():
        item_id = int(name.split("-", 1)[0])
        assert items[item_id] == cid
    # Every file can be rebuilt from the CAR alone.
    from storage.stores import read_range

    assert b"".join(read_range(blocks.__getitem__, items[max(items)], start=0, end=None)) == big


def test_export_request_is_idempotent_while_in_flight(campaign: Campaign) -> None:
    first = export_request(campaign_id=campaign.pk, user=campaign.owner)
    second = export_request(campaign_id=campaign.pk, user=campaign.owner)
    assert first.pk == second.pk
    done = export_build(export_id=first.pk)
    assert done is not None
    assert done.status == JobStatus.DONE
    assert export_build(export_id=first.pk) is None  # a finished export is not rebuilt
    third = export_request(campaign_id=campaign.pk, user=campaign.owner)
    assert third.pk != first.pk
    assert Export.objects.count() == 2


def test_only_the_owner_exports_raw_data(
    campaign: Campaign, contributor: User, buyer: User
) -> None:
    for user in (contributor, buyer):
        response = client_for(user).post(f"/api/datasets/{campaign.pk}/exports/", {}, format="json")
        assert response.status_code == 403
    bad = client_for(campaign.owner).post(
        f"/api/datasets/{campaign.pk}/exports/", {"format": "zip"}, format="json"
    )
    assert bad.status_code == 400
    assert not Export.objects.exists()
