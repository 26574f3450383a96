"""Content stores: put bytes in, get a Kubo-identical CID out; read back verified bytes.

``ContentStore`` is the one interface the rest of Kyodo uses. ``DagStore`` implements its whole
read side over a single primitive, ``get_block(cid) -> bytes``: walking the UnixFS DAG, checking
every block's hash before any of its bytes are used, serving byte ranges and listing blocks for CAR
export. ``LocalStore`` adds a flat-file block store; an ``IpfsStore`` only needs ``get_block``
(RPC ``block/get``), ``has`` and ``put_stream`` (RPC ``add`` with ``cid-version=1``,
``raw-leaves=true``) to get the same verified reads.

The walking functions are also usable on their own with any ``get_block`` callable.
"""

from __future__ import annotations

import contextlib
import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from storage.blockstore import FlatFsBlockstore, MissingBlock
from storage.cid import DAG_PB, RAW, cid_decode, cid_of_raw_block
from storage.unixfs import (
    CHUNK_SIZE,
    UNIXFS_FILE,
    UNIXFS_RAW,
    Buffer,
    Importer,
    MalformedNode,
    decode_dag_pb,
    decode_unixfs,
)

GetBlock = Callable[[str], bytes]


class StorageError(Exception):
    """Base of every storage failure other than a malformed CID string (``InvalidCid``)."""

    def __init__(self, cid: str, message: str) -> None:
        super().__init__(message)
        self.cid = cid


class BlobNotFound(StorageError):
    """The block ``cid`` (a root, or a block inside its DAG) is not in the store."""

    def __init__(self, cid: str) -> None:
        super().__init__(cid, f"block {cid} not found")


class CorruptBlock(StorageError):
    """The bytes stored for ``cid`` do not hash to ``cid``: damaged or tampered with."""

    def __init__(self, cid: str) -> None:
        super().__init__(cid, f"block {cid} does not match its hash")


class MalformedDag(StorageError):
    """Block ``cid`` hashes correctly but is not a readable UnixFS file node."""

    def __init__(self, cid: str, reason: str) -> None:
        super().__init__(cid, f"block {cid}: {reason}")
        self.reason = reason


@dataclass(frozen=True, slots=True)
class StoredBlob:
    cid: str
    size: int


@runtime_checkable
class ContentStore(Protocol):
    def put_stream(self, chunks: Iterable[Buffer]) -> StoredBlob: ...

    def put_bytes(self, data: Buffer) -> StoredBlob: ...

    def put_many(self, blobs: Sequence[Buffer]) -> list[StoredBlob]:
        """Store several blobs in one go; one result per blob, in order, as ``put_bytes`` gives.

        For many small blobs (an import's texts): the CIDs are computed here, without a round
        trip per blob, and the blobs written as a batch.
        """
        ...

    def open(self, cid: str, *, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """Verified bytes ``[start, end)`` of the file; ``end`` past the size is clamped."""
        ...

    def read_bytes(self, cid: str) -> bytes: ...

    def has(self, cid: str) -> bool: ...

    def size(self, cid: str) -> int: ...

    def blocks(self, cid: str) -> Iterator[tuple[str, bytes]]:
        """Every distinct block of the DAG, verified, root first (depth-first, for CAR export)."""
        ...

    def group_sync(self) -> AbstractContextManager[None]:
        """Writes inside become durable together when the block ends (one sync, not one each).

        End the block before committing rows that point at what was written.
        """
        ...


class DagStore(ABC):
    """The read side of :class:`ContentStore` over one primitive: ``get_block``."""

    @abstractmethod
    def get_block(self, cid: str) -> bytes:
        """Raw bytes stored for ``cid``, unverified; raise :class:`BlobNotFound` if absent."""

    @abstractmethod
    def has(self, cid: str) -> bool: ...

    @abstractmethod
    def put_stream(self, chunks: Iterable[Buffer]) -> StoredBlob: ...

    def put_bytes(self, data: Buffer) -> StoredBlob:
        return self.put_stream((data,))

    def put_many(self, blobs: Sequence[Buffer]) -> list[StoredBlob]:
        return [self.put_bytes(data) for data in blobs]

    def open(self, cid: str, *, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        return read_range(self.get_block, cid, start=start, end=end)

    def read_bytes(self, cid: str) -> bytes:
        return b"".join(self.open(cid))

    def size(self, cid: str) -> int:
        return dag_size(self.get_block, cid)

    def blocks(self, cid: str) -> Iterator[tuple[str, bytes]]:
        return iter_dag_blocks(self.get_block, cid)

    def group_sync(self) -> AbstractContextManager[None]:
        return contextlib.nullcontext()


class LocalStore(DagStore):
    """Blocks in a directory (see ``storage.blockstore``); same CIDs as an IPFS node."""

    def __init__(self, root: Path, *, fsync: bool = True) -> None:
        self.blockstore = FlatFsBlockstore(Path(root), fsync=fsync)

    def group_sync(self) -> AbstractContextManager[None]:
        return self.blockstore.group_sync()

    def get_block(self, cid: str) -> bytes:
        try:
            return self.blockstore.get(cid)
        except MissingBlock:
            raise BlobNotFound(cid) from None

    def has(self, cid: str) -> bool:
        # Blocks are written children first, so a present root means the whole DAG was stored.
        return self.blockstore.has(cid)

    def put_stream(self, chunks: Iterable[Buffer]) -> StoredBlob:
        # A failure midway leaves the blocks already written: harmless, content-addressed
        # orphans without a root, for a later garbage collection.
        importer = Importer(block_sink=self.blockstore.put)
        for piece in chunks:
            importer.write(piece)
        result = importer.finish()
        return StoredBlob(cid=result.cid, size=result.size)

    def put_many(self, blobs: Sequence[Buffer]) -> list[StoredBlob]:
        """A blob of at most one chunk is its own raw block (Kubo's CID for it is the block's):
        hashed here and written with the others in one ``put_many`` of the block store. Larger
        blobs go through the importer, one by one."""
        stored: list[StoredBlob] = []
        small: list[tuple[str, Buffer]] = []
        for data in blobs:
            size = memoryview(data).nbytes
            if size <= CHUNK_SIZE:
                cid = cid_of_raw_block(data)
                small.append((cid, data))
                stored.append(StoredBlob(cid=cid, size=size))
            else:
                stored.append(self.put_bytes(data))
        self.blockstore.put_many(small)
        return stored


def fetch_verified(get_block: GetBlock, cid: str) -> tuple[int, bytes]:
    """``(codec, bytes)`` of block ``cid``, after checking the bytes hash to the CID."""
    codec, digest = cid_decode(cid)
    block = get_block(cid)
    if hashlib.sha256(block).digest() != digest:
        raise CorruptBlock(cid)
    return codec, block


def dag_size(get_block: GetBlock, cid: str) -> int:
    """File size of the DAG at ``cid``, from its verified root block."""
    return _load(get_block, cid, expected_size=None).size


def read_range(
    get_block: GetBlock, cid: str, *, start: int = 0, end: int | None = None
) -> Iterator[bytes]:
    """Verified file bytes ``[start, end)`` of the DAG at ``cid``, block by block.

    The root is fetched and checked now, so a missing or corrupt root raises here rather than on
    the first ``next()`` (a view can still answer 404 before it starts streaming). Each further
    block is checked before any of its bytes are yielded; only the blocks that overlap the range
    are fetched.
    """
    if start < 0 or (end is not None and end < start):
        raise ValueError(f"invalid byte range [{start}, {end})")
    root = _load(get_block, cid, expected_size=None)
    stop = root.size if end is None else min(end, root.size)
    return _read(get_block, root, start, stop)


def iter_dag_blocks(get_block: GetBlock, cid: str) -> Iterator[tuple[str, bytes]]:
    """Every distinct block of the DAG at ``cid``, verified, in depth-first pre-order.

    Repeated blocks (a file of zeros is one leaf many times) are yielded once. The set of seen CIDs
    grows with the number of distinct blocks: about 40,000 for a 10 GB file.
    """
    root = fetch_verified(get_block, cid)
    return _walk(get_block, cid, root)


@dataclass(frozen=True, slots=True)
class _Node:
    """A verified block and its part of the file: inline bytes, then each child in order."""

    cid: str
    inline: bytes
    links: list[str]
    sizes: list[int]
    size: int


def _load(get_block: GetBlock, cid: str, *, expected_size: int | None) -> _Node:
    codec, block = fetch_verified(get_block, cid)
    if codec == RAW:
        node = _Node(cid=cid, inline=block, links=[], sizes=[], size=len(block))
    else:
        node = _file_node(cid, block)
    if expected_size is not None and node.size != expected_size:
        # Every block hashes fine, but the parent promised another size: the DAG is inconsistent
        # and ranges computed from the parent's blocksizes would return the wrong bytes.
        raise MalformedDag(cid, f"holds {node.size} bytes, its parent says {expected_size}")
    return node


def _file_node(cid: str, block: bytes) -> _Node:
    try:
        pb = decode_dag_pb(block)
        if pb.data is None:
            raise MalformedNode("dag-pb node without UnixFS Data")
        fs = decode_unixfs(pb.data)
    except MalformedNode as exc:
        raise MalformedDag(cid, str(exc)) from None
    if fs.type not in (UNIXFS_FILE, UNIXFS_RAW):
        raise MalformedDag(cid, f"not a file (UnixFS type {fs.type})")
    if len(pb.links) != len(fs.blocksizes):
        raise MalformedDag(cid, f"{len(pb.links)} links but {len(fs.blocksizes)} blocksizes")
    size = len(fs.data) + sum(fs.blocksizes)
    if fs.filesize is not None and fs.filesize != size:
        raise MalformedDag(cid, f"filesize {fs.filesize} but its parts add up to {size}")
    links = [link.cid for link in pb.links]
    return _Node(cid=cid, inline=fs.data, links=links, sizes=fs.blocksizes, size=size)


def _read(get_block: GetBlock, node: _Node, start: int, stop: int) -> Iterator[bytes]:
    """Bytes ``[start, stop)`` of ``node``'s file, offsets relative to the node."""
    if start >= stop:
        return
    inline = node.inline
    if start < len(inline):
        piece_stop = min(stop, len(inline))
        # A whole raw leaf goes out as is: no copy on the common full-file read.
        yield inline if (start, piece_stop) == (0, len(inline)) else inline[start:piece_stop]
    offset = len(inline)
    for child_cid, child_size in zip(node.links, node.sizes, strict=True):
        if offset >= stop:
            break
        child_end = offset + child_size
        if child_end > start:
            child = _load(get_block, child_cid, expected_size=child_size)
            yield from _read(
                get_block, child, max(start - offset, 0), min(stop, child_end) - offset
            )
        offset = child_end


def _walk(get_block: GetBlock, cid: str, root: tuple[int, bytes]) -> Iterator[tuple[str, bytes]]:
    seen = {cid}
    codec, block = root
    yield cid, block
    # Stack of reversed link lists: bounded by depth x 174, however large the file.
    stack: list[str] = list(reversed(_child_cids(cid, codec, block)))
    while stack:
        child = stack.pop()
        if child in seen:
            continue
        seen.add(child)
        codec, block = fetch_verified(get_block, child)
        yield child, block
        stack.extend(reversed(_child_cids(child, codec, block)))


def _child_cids(cid: str, codec: int, block: bytes) -> list[str]:
    if codec != DAG_PB:
        return []
    try:
        return [link.cid for link in decode_dag_pb(block).links]
    except MalformedNode as exc:
        raise MalformedDag(cid, str(exc)) from None
