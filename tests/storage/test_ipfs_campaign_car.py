"""A campaign's raw-data CAR export imports into a real IPFS node, which lists and serves it all."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from datasets.services import export_build, export_request
from labeling.models import Campaign, Item
from labeling.services import items_upload
from storage.ipfs import IpfsStore
from storage.services import get_store

from ..labeling.factories import png_bytes
from .conftest import IpfsNode

pytestmark = [pytest.mark.services, pytest.mark.django_db]


def test_campaign_car_imports_into_the_node(
    ipfs_node: IpfsNode, campaign: Campaign, tmp_path: Path
) -> None:
    # Bytes no earlier run can have put on the node: the seed is this test's tmp path.
    salt = sum(str(tmp_path).encode())
    items_upload(
        campaign=campaign,
        files=[
            SimpleUploadedFile(f"pet{i}.png", png_bytes(salt + i, size=(40, 40))) for i in range(7)
        ],
    )
    export = export_request(campaign_id=campaign.pk, user=campaign.owner)
    done = export_build(export_id=export.pk)
    assert done is not None
    car = get_store().read_bytes(done.cid)

    node = IpfsStore(ipfs_node.api_url, timeout=10.0)
    imported = node.client.dag_import(io.BytesIO(car))
    assert imported == [done.root_cid]
    # The node's own view of the directory: one entry per item, named and linked as exported.
    listing: Any = node.client._call(
        "ls",
        node.client._request("/ls", done.root_cid, opts={"cid-base": "base32"}, decoder="json"),
    )
    links = {
        link["Name"]: link["Hash"] for obj in listing for o in obj["Objects"] for link in o["Links"]
    }
    items = {item.pk: item.cid for item in Item.objects.filter(campaign=campaign)}
    assert len(links) == len(items) == 7
    for name, cid in links.items():
        assert items[int(name.split("-", 1)[0])] == cid
    for cid in items.values():
        assert node.read_bytes(cid) == get_store().read_bytes(cid)
