"""A CAR written by storage.car imports into a real IPFS node, and the node serves every blob."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from storage.car import read_car, write_store_car
from storage.ipfs import IpfsStore
from storage.stores import LocalStore
from storage.unixfs import CHUNK_SIZE

from .conftest import IpfsNode

pytestmark = pytest.mark.services


def test_car_of_stored_blobs_imports_into_the_node(ipfs_node: IpfsNode, tmp_path: Path) -> None:
    local = LocalStore(tmp_path / "local", fsync=False)
    # Fresh random bytes: the node cannot already hold them from another test or run.
    blobs = [
        os.urandom(1),
        os.urandom(1000),
        os.urandom(CHUNK_SIZE),  # exactly one raw leaf
        os.urandom(3 * CHUNK_SIZE + 17),  # a dag-pb root over four leaves
        os.urandom(180 * CHUNK_SIZE),  # two levels: more leaves than one node may link
    ]
    dup = blobs[1]  # the same bytes twice: one DAG, written once
    cids = [local.put_bytes(data).cid for data in [*blobs, dup]]
    assert cids[-1] == cids[1]
    roots = list(dict.fromkeys(cids))

    car_path = tmp_path / "items.car"
    with car_path.open("wb") as out:
        write_store_car(out, store=local, roots=roots)
    with car_path.open("rb") as inp:
        car_roots, sections = read_car(inp)
        block_count = sum(1 for _ in sections)
    assert car_roots == roots

    node = IpfsStore(ipfs_node.api_url, timeout=10.0)
    assert not node.has(roots[-1])  # (a missing block costs the node-side lookup timeout)
    with car_path.open("rb") as car:
        imported = node.client.dag_import(car)
    assert set(imported) == set(roots)
    assert node.client.pin_ls(roots) == set(roots)  # dag/import pins the roots

    for cid, data in zip(cids, [*blobs, dup], strict=True):
        assert node.read_bytes(cid) == data  # fetched block by block, each block re-hashed
        assert node.size(cid) == len(data)
    # The node holds exactly the blocks of the CAR: exporting from it gives the same set.
    from_node = {cid for root in roots for cid, _ in node.blocks(root)}
    assert len(from_node) == block_count
