from __future__ import annotations

from pathlib import Path

from storage.directory import Entry, build_directory, dag_tsize, encode_directory_node
from storage.stores import LocalStore
from storage.unixfs import decode_dag_pb, decode_unixfs

CID_27 = "bafkreihzg3z2b4qviggswvajxfwmsbyndfvhbn3np4ilx4dqs66sfq6rxm"


def test_directory_links_are_sorted_and_typed(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    a = store.put_bytes(b"hello").cid
    b = store.put_bytes(b"world").cid
    blocks: dict[str, bytes] = {}
    root = build_directory(iter([Entry("b", b, 5), Entry("a", a, 5)]), blocks.__setitem__)
    node = decode_dag_pb(blocks[root])
    assert [(link.name, link.cid, link.tsize) for link in node.links] == [("a", a, 5), ("b", b, 5)]
    assert node.data is not None
    assert decode_unixfs(node.data).type == 1
    # Same entries in another order: same bytes, same CID.
    again: dict[str, bytes] = {}
    assert build_directory(iter([Entry("a", a, 5), Entry("b", b, 5)]), again.__setitem__) == root


def count_leaves(cid: str, blocks: dict[str, bytes]) -> int:
    if cid not in blocks:
        return 1
    return sum(count_leaves(link.cid, blocks) for link in decode_dag_pb(blocks[cid]).links)


def test_large_collections_split_into_bounded_subdirectories() -> None:
    blocks: dict[str, bytes] = {}
    entries = (Entry(f"{i:05d}", CID_27, 27) for i in range(25))
    root = build_directory(entries, blocks.__setitem__, fanout=4)
    assert all(len(decode_dag_pb(block).links) <= 4 for block in blocks.values())
    assert count_leaves(root, blocks) == 25
    top = decode_dag_pb(blocks[root])
    expected = len(blocks[root]) + sum(link.tsize or 0 for link in top.links)
    assert dag_tsize(root, blocks.__getitem__) == expected
    # The whole tree's Tsize counts every leaf's bytes once and every directory block once.
    assert expected == 25 * 27 + sum(len(b) for b in blocks.values())


def test_empty_directory() -> None:
    blocks: dict[str, bytes] = {}
    root = build_directory(iter([]), blocks.__setitem__)
    assert blocks[root] == encode_directory_node([]) == b"\x0a\x02\x08\x01"
    # Kubo's empty directory (`ipfs object new unixfs-dir`, as CIDv1).
    assert root == "bafybeiczsscdsbs7ffqz55asqdf3smv6klcw3gofszvwlyarci47bgf354"
