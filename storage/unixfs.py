"""A streaming UnixFS file importer that gives the same CIDs as Kubo, and a dag-pb decoder.

The importer reproduces ``ipfs add --cid-version 1 --raw-leaves`` with Kubo's defaults:

* the fixed-size splitter: 262,144-byte chunks, the last one short;
* raw leaves: each chunk is a raw block (codec 0x55); a file of at most one chunk *is* that block,
  so its CID starts ``bafkrei``; the empty file is the empty raw block;
* Kubo's "balanced" layout: leaves fill a dag-pb node of at most 174 links; when it is full and
  more data follows, it becomes the first child of a node one level up, and so on. Every node is a
  UnixFS ``File`` with ``filesize`` and one ``blocksizes`` entry per child.

The streaming form of that layout keeps one list of pending links per level. A full list is only
turned into a node when one more link arrives for it, so the shape never depends on knowing the
file size in advance. Blocks reach the sink children-first: when a root is stored, its whole DAG
already is.

Protobuf is encoded by hand (no dependency): the messages are tiny and their canonical byte order is
part of the CID, so owning the encoder is simpler than configuring one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import NamedTuple

from storage.cid import (
    DAG_PB,
    RAW,
    InvalidCid,
    cid_bytes,
    cid_encode,
    cid_from_bytes,
    cid_of_raw_block,
    varint_decode,
    varint_encode,
)

CHUNK_SIZE = 262_144
MAX_LINKS = 174
FILE_READ_SIZE = 1 << 20

# UnixFS Data.DataType
UNIXFS_RAW = 0
UNIXFS_DIRECTORY = 1
UNIXFS_FILE = 2
UNIXFS_METADATA = 3
UNIXFS_SYMLINK = 4
UNIXFS_HAMT_SHARD = 5

# Protobuf wire types
_VARINT = 0
_LEN = 2

BlockSink = Callable[[str, bytes], object]
Buffer = bytes | bytearray | memoryview


class ImportResult(NamedTuple):
    cid: str
    size: int


class _Link(NamedTuple):
    cid: bytes  # binary CID: what the parent node embeds
    tsize: int  # cumulative size of the child's DAG in bytes (dag-pb Tsize)
    filesize: int  # file bytes under the child (UnixFS blocksizes entry)


class MalformedNode(ValueError):
    """A block that is not a valid dag-pb node or UnixFS Data message."""


class PBLink(NamedTuple):
    cid: str
    name: str
    tsize: int | None


class PBNode(NamedTuple):
    links: list[PBLink]
    data: bytes | None


class UnixFsData(NamedTuple):
    type: int
    data: bytes
    filesize: int | None
    blocksizes: list[int]


class Importer:
    """Turn a byte stream into a Kubo-identical UnixFS DAG, one block at a time.

    Feed any number of pieces of any size with :meth:`write`, then call :meth:`finish` once.
    Memory stays bounded: at most one partial chunk plus at most ``max_links`` pending links per
    tree level. ``block_sink(cid, data)`` is called for every block, children before parents;
    identical blocks (e.g. runs of zeros) are passed each time they occur.
    """

    def __init__(
        self,
        *,
        block_sink: BlockSink | None = None,
        chunk_size: int = CHUNK_SIZE,
        max_links: int = MAX_LINKS,
    ) -> None:
        if chunk_size < 1 or max_links < 2:
            raise ValueError("chunk_size must be >= 1 and max_links >= 2")
        self._sink = block_sink
        self._chunk_size = chunk_size
        self._max_links = max_links
        # Pending input that does not fill a chunk yet. Views of immutable bytes are kept as they
        # are (no copy); anything else is copied, because the caller may reuse its buffer (a
        # read-only view of a bytearray is still mutable underneath).
        self._pending: list[Buffer] = []
        self._pending_len = 0
        self._levels: list[list[_Link]] = [[]]
        self._size = 0
        self._result: ImportResult | None = None

    @property
    def size(self) -> int:
        """File bytes written so far."""
        return self._size

    def write(self, data: Buffer) -> None:
        if self._result is not None:
            raise RuntimeError("Importer.write() after finish()")
        view = memoryview(data).cast("B")
        total = len(view)
        if not total:
            return
        self._size += total
        chunk = self._chunk_size
        pos = 0
        if self._pending_len:
            take = min(chunk - self._pending_len, total)
            self._hold(view[:take])
            pos = take
            if self._pending_len == chunk:
                block = b"".join(self._pending)
                self._pending.clear()
                self._pending_len = 0
                self._add_leaf(block)
        while total - pos >= chunk:
            # Whole chunks straight from the caller's buffer: hashed without a copy.
            self._add_leaf(view[pos : pos + chunk])
            pos += chunk
        if pos < total:
            self._hold(view[pos:])

    def finish(self) -> ImportResult:
        """Flush everything and return the root CID and the file size. Idempotent."""
        if self._result is not None:
            return self._result
        if self._pending_len or self._size == 0:
            # The empty file is one empty raw leaf (Kubo: bafkreihdwdcefgh4dqkjv67uzcmw7ojee…).
            block = b"".join(self._pending)
            self._pending.clear()
            self._pending_len = 0
            self._add_leaf(block)
        levels = self._levels
        # Close every level bottom-up; each closed node becomes a link of the level above.
        # A push can overflow the level above and grow the tree, so re-read len(levels).
        depth = 0
        while depth < len(levels) - 1:
            if levels[depth]:
                pending, levels[depth] = levels[depth], []
                self._push(depth + 1, self._emit_node(pending))
            depth += 1
        top = levels[-1]
        # A single-chunk file is its raw leaf; anything bigger has a dag-pb root.
        single_leaf = len(top) == 1 and len(levels) == 1
        root = top[0] if single_leaf else self._emit_node(top)
        self._result = ImportResult(cid=cid_from_bytes(root.cid), size=self._size)
        return self._result

    def _hold(self, view: memoryview) -> None:
        self._pending.append(view if isinstance(view.obj, bytes) else bytes(view))
        self._pending_len += len(view)

    def _add_leaf(self, block: Buffer) -> None:
        raw = cid_bytes(RAW, hashlib.sha256(block).digest())
        if self._sink is not None:
            self._sink(cid_from_bytes(raw), block if isinstance(block, bytes) else bytes(block))
        self._push(0, _Link(cid=raw, tsize=len(block), filesize=len(block)))

    def _push(self, depth: int, link: _Link) -> None:
        levels = self._levels
        if depth == len(levels):
            levels.append([])
        if len(levels[depth]) == self._max_links:
            # The level is full and more data has arrived: only now is it certain that this
            # node is an inner node and not the root, which is what Kubo's layout decides.
            full = levels[depth]
            levels[depth] = []
            self._push(depth + 1, self._emit_node(full))
        levels[depth].append(link)

    def _emit_node(self, links: list[_Link]) -> _Link:
        block = encode_file_node(links)
        raw = cid_bytes(DAG_PB, hashlib.sha256(block).digest())
        if self._sink is not None:
            self._sink(cid_from_bytes(raw), block)
        return _Link(
            cid=raw,
            tsize=len(block) + sum(link.tsize for link in links),
            filesize=sum(link.filesize for link in links),
        )


def encode_file_node(links: Iterable[_Link]) -> bytes:
    """A dag-pb node holding a UnixFS File over ``links``, in canonical dag-pb byte order.

    PBNode: Links (field 2) come before Data (field 1) in the bytes. Each PBLink carries Hash (1),
    Name (2, present and empty, as go-merkledag writes it) and Tsize (3). UnixFS Data: Type (1) =
    File, no Data (2), filesize (3), one unpacked blocksizes (4) entry per link.
    """
    parts: list[bytes] = []
    blocksizes: list[bytes] = []
    filesize = 0
    for link in links:
        body = b"".join((len_field(1, link.cid), b"\x12\x00", varint_field(3, link.tsize)))
        parts.append(len_field(2, body))
        blocksizes.append(varint_field(4, link.filesize))
        filesize += link.filesize
    unixfs = b"".join((varint_field(1, UNIXFS_FILE), varint_field(3, filesize), *blocksizes))
    parts.append(len_field(1, unixfs))
    return b"".join(parts)


def decode_dag_pb(block: bytes | memoryview) -> PBNode:
    """Parse a dag-pb block; raise :class:`MalformedNode` when it is not one."""
    links: list[PBLink] = []
    data: bytes | None = None
    for field, wire, value in _fields(block):
        if field == 2 and wire == _LEN and data is None:
            assert isinstance(value, memoryview)
            links.append(_decode_link(value))
        elif field == 1 and wire == _LEN and data is None:
            assert isinstance(value, memoryview)
            data = bytes(value)
        else:
            raise MalformedNode(f"unexpected dag-pb field {field} (wire type {wire})")
    return PBNode(links=links, data=data)


def decode_unixfs(data: bytes | memoryview) -> UnixFsData:
    """Parse the UnixFS ``Data`` message carried in a dag-pb node's Data field."""
    kind: int | None = None
    inline = b""
    filesize: int | None = None
    blocksizes: list[int] = []
    for field, wire, value in _fields(data):
        if field == 1 and wire == _VARINT:
            assert isinstance(value, int)
            kind = value
        elif field == 2 and wire == _LEN:
            assert isinstance(value, memoryview)
            inline = bytes(value)
        elif field == 3 and wire == _VARINT:
            assert isinstance(value, int)
            filesize = value
        elif field == 4 and wire == _VARINT:
            assert isinstance(value, int)
            blocksizes.append(value)
        elif field == 4 and wire == _LEN:  # packed encoding, which other writers may use
            assert isinstance(value, memoryview)
            blocksizes.extend(_packed_varints(value))
        elif field in (5, 6, 7, 8):
            continue  # hashType, fanout, mode, mtime: irrelevant to reading file bytes
        else:
            raise MalformedNode(f"unexpected UnixFS field {field} (wire type {wire})")
    if kind is None:
        raise MalformedNode("UnixFS Data has no Type")
    return UnixFsData(type=kind, data=inline, filesize=filesize, blocksizes=blocksizes)


def cid_of_bytes(data: Buffer) -> str:
    """The CID ``ipfs add --cid-version 1 --raw-leaves`` gives these bytes."""
    if memoryview(data).nbytes <= CHUNK_SIZE:
        return cid_of_raw_block(data)  # one chunk: the file is its raw leaf
    importer = Importer()
    importer.write(data)
    return importer.finish().cid


def cid_of_stream(chunks: Iterable[Buffer]) -> str:
    """Like :func:`cid_of_bytes` for bytes arriving in pieces of any size."""
    importer = Importer()
    for piece in chunks:
        importer.write(piece)
    return importer.finish().cid


def cid_of_file(path: Path) -> str:
    """Hash a file from disk without holding it in memory."""
    with path.open("rb") as fh:
        return cid_of_stream(iter(lambda: fh.read(FILE_READ_SIZE), b""))


def len_field(field: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field (dag-pb, UnixFS); storage.directory encodes with it too."""
    return varint_encode(field << 3 | _LEN) + varint_encode(len(payload)) + payload


def varint_field(field: int, value: int) -> bytes:
    """A varint protobuf field (dag-pb, UnixFS)."""
    return varint_encode(field << 3 | _VARINT) + varint_encode(value)


def _fields(buf: bytes | memoryview) -> Iterable[tuple[int, int, int | memoryview]]:
    view = memoryview(buf).cast("B")
    pos = 0
    end = len(view)
    try:
        while pos < end:
            key, pos = varint_decode(view, pos)
            field, wire = key >> 3, key & 7
            if wire == _VARINT:
                value, pos = varint_decode(view, pos)
                yield field, wire, value
            elif wire == _LEN:
                length, pos = varint_decode(view, pos)
                if pos + length > end:
                    raise MalformedNode("length-delimited field runs past the end")
                yield field, wire, view[pos : pos + length]
                pos += length
            else:
                raise MalformedNode(f"unsupported protobuf wire type {wire}")
    except ValueError as exc:
        if isinstance(exc, MalformedNode):
            raise
        raise MalformedNode(str(exc)) from None


def _packed_varints(view: memoryview) -> list[int]:
    out: list[int] = []
    pos = 0
    try:
        while pos < len(view):
            value, pos = varint_decode(view, pos)
            out.append(value)
    except ValueError as exc:
        raise MalformedNode(str(exc)) from None
    return out


def _decode_link(view: memoryview) -> PBLink:
    raw_cid: memoryview | None = None
    name = ""
    tsize: int | None = None
    for field, wire, value in _fields(view):
        if field == 1 and wire == _LEN:
            assert isinstance(value, memoryview)
            raw_cid = value
        elif field == 2 and wire == _LEN:
            assert isinstance(value, memoryview)
            try:
                name = bytes(value).decode("utf-8")
            except UnicodeDecodeError:
                raise MalformedNode("link name is not UTF-8") from None
        elif field == 3 and wire == _VARINT:
            assert isinstance(value, int)
            tsize = value
        else:
            raise MalformedNode(f"unexpected PBLink field {field} (wire type {wire})")
    if raw_cid is None:
        raise MalformedNode("PBLink has no Hash")
    try:
        cid = cid_from_bytes(raw_cid)
    except InvalidCid as exc:
        raise MalformedNode(f"link: {exc}") from None
    return PBLink(cid=cid, name=name, tsize=tsize)


__all__ = [
    "CHUNK_SIZE",
    "MAX_LINKS",
    "BlockSink",
    "ImportResult",
    "Importer",
    "MalformedNode",
    "PBLink",
    "PBNode",
    "UnixFsData",
    "cid_encode",
    "cid_of_bytes",
    "cid_of_file",
    "cid_of_stream",
    "decode_dag_pb",
    "decode_unixfs",
    "encode_file_node",
]
