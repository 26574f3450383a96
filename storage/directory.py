"""UnixFS directories over stored blobs: one root CID for a whole collection (a campaign's data).

Each directory node is a dag-pb block holding UnixFS `Data {Type: Directory}` and one named link per
entry, links sorted by name bytes as the dag-pb spec requires, each with its Tsize (the linked
DAG's total size, which for a dag-pb node is its block length plus its links' Tsizes). A collection
bigger than `FANOUT` entries is split into numbered subdirectories, so no block outgrows what IPFS
nodes exchange (Kubo itself switches to HAMT shards past ~256 KiB; fixed fan-out is simpler and
just as readable with `ipfs ls`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from storage.cid import DAG_PB, RAW, cid_bytes, cid_decode, cid_from_bytes, cid_to_bytes
from storage.unixfs import UNIXFS_DIRECTORY, decode_dag_pb, len_field, varint_field

FANOUT = 1000

GetBlock = Callable[[str], bytes]
BlockSink = Callable[[str, bytes], None]


@dataclass(frozen=True)
class Entry:
    name: str
    cid: str
    tsize: int


def dag_tsize(cid: str, get_block: GetBlock) -> int:
    """Total bytes of the DAG under `cid`, from its root block alone (raw: the block itself)."""
    codec, _ = cid_decode(cid)
    block = get_block(cid)
    if codec == RAW:
        return len(block)
    node = decode_dag_pb(block)
    return len(block) + sum(link.tsize or 0 for link in node.links)


def encode_directory_node(entries: Iterable[Entry]) -> bytes:
    parts = []
    for entry in sorted(entries, key=lambda e: e.name.encode()):
        body = b"".join(
            (
                len_field(1, cid_to_bytes(entry.cid)),
                len_field(2, entry.name.encode()),
                varint_field(3, entry.tsize),
            )
        )
        parts.append(len_field(2, body))
    parts.append(len_field(1, varint_field(1, UNIXFS_DIRECTORY)))
    return b"".join(parts)


def _emit(entries: list[Entry], sink: BlockSink) -> tuple[str, int]:
    block = encode_directory_node(entries)
    cid = cid_from_bytes(cid_bytes(DAG_PB, hashlib.sha256(block).digest()))
    sink(cid, block)
    return cid, len(block) + sum(e.tsize for e in entries)


def build_directory(entries: Iterator[Entry], sink: BlockSink, *, fanout: int = FANOUT) -> str:
    """The root CID of a directory of `entries` (unique names), emitting every node to `sink`.

    Streams: holds at most one pending node per level, so memory is O(fanout * depth).
    """
    levels: list[list[Entry]] = [[]]
    counters: list[int] = [0]

    def push(depth: int, entry: Entry) -> None:
        if depth == len(levels):
            levels.append([])
            counters.append(0)
        if len(levels[depth]) == fanout:
            full, levels[depth] = levels[depth], []
            cid, tsize = _emit(full, sink)
            push(depth + 1, Entry(name=f"{counters[depth]:06d}", cid=cid, tsize=tsize))
            counters[depth] += 1
        levels[depth].append(entry)

    for entry in entries:
        push(0, entry)
    depth = 0
    while depth < len(levels) - 1:
        pending, levels[depth] = levels[depth], []
        if pending:
            cid, tsize = _emit(pending, sink)
            push(depth + 1, Entry(name=f"{counters[depth]:06d}", cid=cid, tsize=tsize))
            counters[depth] += 1
        depth += 1
    cid, _ = _emit(levels[-1], sink)
    return cid
