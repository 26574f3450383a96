"""LocalStore and the verified DAG reader: round trips, ranges, tampering, the flat-file layout."""

from __future__ import annotations

import os
import random
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from storage.blockstore import FlatFsBlockstore, MissingBlock
from storage.cid import DAG_PB, InvalidCid, cid_decode, cid_for_block
from storage.stores import (
    BlobNotFound,
    ContentStore,
    CorruptBlock,
    DagStore,
    LocalStore,
    MalformedDag,
    StorageError,
    StoredBlob,
    iter_dag_blocks,
    read_range,
)
from storage.unixfs import CHUNK_SIZE, MAX_LINKS, _Link, cid_of_bytes, encode_file_node

RANGE_50MIB_CID = "bafybeig4tkaci2tp26gmwohvc4kjyncvtein2behhgasislqmkswpcxoaa"
HELLO_CID = "bafkreihzg3z2b4qviggswvajxfwmsbyndfvhbn3np4ilx4dqs66sfq6rxm"


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "blocks", fsync=False)


@pytest.fixture(scope="module")
def random_5_chunks() -> bytes:
    # Distinct chunks (repeating patterns would dedupe to a single leaf), ending mid-chunk.
    return random.Random(5).randbytes(5 * CHUNK_SIZE + 12345)


@pytest.fixture(scope="module")
def random_multi_level() -> bytes:
    # More than 174 distinct chunks: a root over two inner nodes over 177 distinct leaves.
    return random.Random(174).randbytes((MAX_LINKS + 2) * CHUNK_SIZE + 777)


def _pieces(data: bytes, size: int) -> Iterator[bytes]:
    return (data[i : i + size] for i in range(0, len(data), size))


def test_local_store_is_a_content_store(store: LocalStore) -> None:
    assert isinstance(store, ContentStore)
    assert isinstance(store, DagStore)


def test_put_bytes_small(store: LocalStore) -> None:
    blob = store.put_bytes(b"hello dapp reward manifest\n")
    assert blob == StoredBlob(cid=HELLO_CID, size=27)
    assert store.has(HELLO_CID)
    assert store.size(HELLO_CID) == 27
    assert store.read_bytes(HELLO_CID) == b"hello dapp reward manifest\n"
    assert list(store.blocks(HELLO_CID)) == [(HELLO_CID, b"hello dapp reward manifest\n")]


def test_empty_blob(store: LocalStore) -> None:
    blob = store.put_bytes(b"")
    assert blob.size == 0
    assert store.read_bytes(blob.cid) == b""
    assert list(store.open(blob.cid)) == []
    assert store.size(blob.cid) == 0


def test_put_stream_matches_put_bytes(tmp_path: Path, random_5_chunks: bytes) -> None:
    a = LocalStore(tmp_path / "a", fsync=False).put_bytes(random_5_chunks)
    for size in (997, 7919, CHUNK_SIZE - 1, CHUNK_SIZE + 1, 3 * CHUNK_SIZE + 17):
        b = LocalStore(tmp_path / f"b{size}", fsync=False).put_stream(
            _pieces(random_5_chunks, size)
        )
        assert b == a
    assert a.cid == cid_of_bytes(random_5_chunks)
    assert a.size == len(random_5_chunks)


def test_put_is_idempotent(store: LocalStore, random_5_chunks: bytes) -> None:
    first = store.put_bytes(random_5_chunks)
    files = sorted(p for p in store.blockstore.root.rglob("*") if p.is_file())
    mtimes = [p.stat().st_mtime_ns for p in files]
    assert store.put_stream(_pieces(random_5_chunks, 100_000)) == first
    assert sorted(p for p in store.blockstore.root.rglob("*") if p.is_file()) == files
    assert [p.stat().st_mtime_ns for p in files] == mtimes
    assert len(files) == 7  # 6 raw leaves + 1 root


def test_layout_on_disk(store: LocalStore) -> None:
    blob = store.put_bytes(b"hello dapp reward manifest\n")
    path = store.blockstore.root / blob.cid[-2:] / blob.cid
    assert path.read_bytes() == b"hello dapp reward manifest\n"
    assert oct(path.stat().st_mode & 0o777) == "0o644"
    assert list(store.blockstore) == [blob.cid]
    assert not list(store.blockstore.root.rglob(".tmp-*"))


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (0, None),
        (0, 1),
        (CHUNK_SIZE - 1, CHUNK_SIZE + 1),  # straddles the first boundary
        (CHUNK_SIZE, 2 * CHUNK_SIZE),  # exactly one leaf
        (100, 4 * CHUNK_SIZE + 3),  # spans several leaves
        (5 * CHUNK_SIZE, None),  # only the short last leaf
        (5 * CHUNK_SIZE + 12344, 5 * CHUNK_SIZE + 12345),  # the last byte
        (123, 123),  # empty
        (6 * CHUNK_SIZE, None),  # starts past the end
        (10, 10**12),  # end past the size is clamped
    ],
)
def test_range_reads(
    store: LocalStore, random_5_chunks: bytes, start: int, end: int | None
) -> None:
    cid = store.put_bytes(random_5_chunks).cid
    assert b"".join(store.open(cid, start=start, end=end)) == random_5_chunks[start:end]


def test_range_read_fetches_only_overlapping_blocks(
    store: LocalStore, random_5_chunks: bytes
) -> None:
    cid = store.put_bytes(random_5_chunks).cid
    fetched: list[str] = []

    def get_block(c: str) -> bytes:
        fetched.append(c)
        return store.get_block(c)

    out = b"".join(read_range(get_block, cid, start=CHUNK_SIZE + 5, end=2 * CHUNK_SIZE + 5))
    assert out == random_5_chunks[CHUNK_SIZE + 5 : 2 * CHUNK_SIZE + 5]
    assert len(fetched) == 3  # root + leaves 1 and 2


def test_invalid_ranges(store: LocalStore) -> None:
    cid = store.put_bytes(b"abc").cid
    with pytest.raises(ValueError, match="range"):
        store.open(cid, start=-1)
    with pytest.raises(ValueError, match="range"):
        store.open(cid, start=2, end=1)


def test_missing_blob_raises_on_open_not_on_first_next(store: LocalStore) -> None:
    cid = cid_of_bytes(b"never stored")
    assert not store.has(cid)
    with pytest.raises(BlobNotFound) as excinfo:
        store.open(cid)
    assert excinfo.value.cid == cid
    assert isinstance(excinfo.value, StorageError)
    for call in (store.read_bytes, store.size, store.blocks):
        with pytest.raises(BlobNotFound):
            call(cid)


def test_missing_inner_block(store: LocalStore, random_5_chunks: bytes) -> None:
    cid = store.put_bytes(random_5_chunks).cid
    leaf = cid_for_block(0x55, random_5_chunks[2 * CHUNK_SIZE : 3 * CHUNK_SIZE])
    store.blockstore.delete(leaf)
    got: list[bytes] = []
    with pytest.raises(BlobNotFound) as excinfo:
        got.extend(store.open(cid))
    assert excinfo.value.cid == leaf
    assert b"".join(got) == random_5_chunks[: 2 * CHUNK_SIZE]


def test_invalid_cid_is_a_value_error(store: LocalStore) -> None:
    for call in (store.has, store.read_bytes, store.size):
        with pytest.raises(InvalidCid):
            call("../../etc/passwd")


# --- tampering ---------------------------------------------------------------------------------


def _corrupt(path: Path, *, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_tampered_leaf_raises_before_any_of_its_bytes(
    store: LocalStore, random_5_chunks: bytes
) -> None:
    cid = store.put_bytes(random_5_chunks).cid
    leaf = cid_for_block(0x55, random_5_chunks[3 * CHUNK_SIZE : 4 * CHUNK_SIZE])
    _corrupt(store.blockstore.path_for(leaf), offset=CHUNK_SIZE - 1)  # flip the last byte only
    got: list[bytes] = []
    with pytest.raises(CorruptBlock) as excinfo:
        got.extend(store.open(cid))
    assert excinfo.value.cid == leaf
    # Exactly the three good leaves before it came out; nothing of the bad one.
    assert b"".join(got) == random_5_chunks[: 3 * CHUNK_SIZE]
    # A range that does not touch the bad leaf still reads; one that does, fails.
    assert b"".join(store.open(cid, end=3 * CHUNK_SIZE)) == random_5_chunks[: 3 * CHUNK_SIZE]
    with pytest.raises(CorruptBlock):
        b"".join(store.open(cid, start=4 * CHUNK_SIZE - 1, end=4 * CHUNK_SIZE))
    with pytest.raises(CorruptBlock):
        list(store.blocks(cid))


def test_tampered_root_raises_on_open(store: LocalStore, random_5_chunks: bytes) -> None:
    cid = store.put_bytes(random_5_chunks).cid
    _corrupt(store.blockstore.path_for(cid), offset=50)
    with pytest.raises(CorruptBlock):
        store.open(cid)
    with pytest.raises(CorruptBlock):
        store.size(cid)


def test_truncated_single_block_blob(store: LocalStore) -> None:
    cid = store.put_bytes(b"hello dapp reward manifest\n").cid
    store.blockstore.path_for(cid).write_bytes(b"hello dapp")
    with pytest.raises(CorruptBlock):
        store.read_bytes(cid)


def test_block_swapped_for_another_valid_block(store: LocalStore) -> None:
    a = store.put_bytes(b"a" * 10).cid
    b = store.put_bytes(b"b" * 10).cid
    store.blockstore.path_for(a).write_bytes(store.blockstore.get(b))
    with pytest.raises(CorruptBlock):
        store.read_bytes(a)


def test_consistent_hashes_but_lying_blocksizes(store: LocalStore) -> None:
    leaf = store.put_bytes(b"x" * 10).cid
    _codec, digest = cid_decode(leaf)
    raw_leaf = bytes((1, 0x55, 0x12, 0x20)) + digest
    node = encode_file_node([_Link(cid=raw_leaf, tsize=10, filesize=11)])  # claims 11 bytes
    node_cid = cid_for_block(DAG_PB, node)
    store.blockstore.put(node_cid, node)
    with pytest.raises(MalformedDag, match="parent says 11"):
        store.read_bytes(node_cid)


def test_directory_node_is_not_a_file(store: LocalStore) -> None:
    directory = b"\x0a\x02\x08\x01"  # dag-pb Data = UnixFS {Type: Directory}
    cid = cid_for_block(DAG_PB, directory)
    store.blockstore.put(cid, directory)
    with pytest.raises(MalformedDag, match="not a file"):
        store.open(cid)


# --- multi-level DAGs ---------------------------------------------------------------------------


def test_50mib_vector_round_trip(store: LocalStore) -> None:
    data = bytes(range(256)) * 204800
    blob = store.put_stream(_pieces(data, 1 << 20))
    assert blob == StoredBlob(cid=RANGE_50MIB_CID, size=len(data))
    assert store.size(blob.cid) == len(data)
    assert store.read_bytes(blob.cid) == data
    # Every chunk is the same 256 KiB, so the DAG dedupes to root + 2 inner nodes + 1 leaf.
    blocks = list(store.blocks(blob.cid))
    assert blocks[0][0] == RANGE_50MIB_CID
    assert len(blocks) == 4


def test_multi_level_dag_of_distinct_blocks(store: LocalStore, random_multi_level: bytes) -> None:
    data = random_multi_level
    blob = store.put_stream(_pieces(data, 65536))
    assert blob.cid == cid_of_bytes(data)
    assert store.read_bytes(blob.cid) == data
    blocks = list(store.blocks(blob.cid))
    assert len(blocks) == (MAX_LINKS + 3) + 3  # leaves + 2 inner nodes + root
    assert blocks[0][0] == blob.cid
    assert all(cid_for_block(cid_decode(c)[0], d) == c for c, d in blocks)
    # A range across the boundary between the two inner nodes (after leaf 174).
    edge = MAX_LINKS * CHUNK_SIZE
    assert b"".join(store.open(blob.cid, start=edge - 3, end=edge + 3)) == data[edge - 3 : edge + 3]


def test_multi_level_tamper_deep_leaf(store: LocalStore, random_multi_level: bytes) -> None:
    data = random_multi_level
    cid = store.put_bytes(data).cid
    index = MAX_LINKS + 1  # second leaf under the second inner node
    leaf = cid_for_block(0x55, data[index * CHUNK_SIZE : (index + 1) * CHUNK_SIZE])
    _corrupt(store.blockstore.path_for(leaf), offset=0)
    got: list[bytes] = []
    with pytest.raises(CorruptBlock) as excinfo:
        got.extend(store.open(cid))
    assert excinfo.value.cid == leaf
    assert sum(map(len, got)) == index * CHUNK_SIZE


def test_iter_dag_blocks_with_a_plain_callable(store: LocalStore) -> None:
    cid = store.put_bytes(b"q" * (2 * CHUNK_SIZE + 1)).cid
    blocks = dict(iter_dag_blocks(store.get_block, cid))
    assert len(blocks) == 3  # root, one full leaf (twice in the file, once here), one short leaf


# --- the block store itself ---------------------------------------------------------------------


def test_blockstore_basics(tmp_path: Path) -> None:
    bs = FlatFsBlockstore(tmp_path / "fs")  # fsync on: the production default
    cid = cid_for_block(0x55, b"data")
    assert not bs.has(cid)
    assert list(bs) == []
    with pytest.raises(MissingBlock):
        bs.get(cid)
    assert bs.put(cid, b"data") is True
    assert bs.put(cid, b"data") is False
    assert bs.get(cid) == b"data"
    assert list(bs) == [cid]
    bs.delete(cid)
    bs.delete(cid)
    assert not bs.has(cid)


def test_blockstore_leaves_no_temp_file_on_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bs = FlatFsBlockstore(tmp_path / "fs", fsync=False)
    cid = cid_for_block(0x55, b"data")

    def failing_replace(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("storage.blockstore.os.replace", failing_replace)
    with pytest.raises(OSError, match="No space"):
        bs.put(cid, b"data")
    assert not bs.has(cid)
    assert [p for p in (tmp_path / "fs").rglob("*") if p.is_file()] == []


def test_blockstore_rejects_non_cid_names(tmp_path: Path) -> None:
    bs = FlatFsBlockstore(tmp_path / "fs")
    with pytest.raises(InvalidCid):
        bs.put("../escape", b"x")
    assert not (tmp_path / "escape").exists()


def test_group_sync_makes_writes_durable_with_one_sync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from storage import blockstore

    fsyncs: list[int] = []
    syncs: list[Path] = []
    monkeypatch.setattr(blockstore.os, "fsync", lambda fd: fsyncs.append(fd))
    monkeypatch.setattr(blockstore, "_sync_filesystem", lambda root: syncs.append(root))
    store = LocalStore(tmp_path)
    store.put_bytes(b"alone")
    assert len(fsyncs) == 2  # the file, then its directory
    assert syncs == []
    with store.group_sync():
        for i in range(10):
            store.put_bytes(b"grouped %d" % i)
        with store.group_sync():  # nested: still one sync, at the outer end
            store.put_bytes(b"nested")
        assert syncs == []
    assert len(fsyncs) == 2
    assert syncs == [tmp_path]
    with store.group_sync():
        store.put_bytes(b"alone")  # already stored: nothing written, nothing to sync
    assert syncs == [tmp_path]
    assert store.read_bytes(store.put_bytes(b"nested").cid) == b"nested"


def test_group_sync_really_syncs(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    with store.group_sync():
        blob = store.put_bytes(b"x" * 1000)
    assert store.read_bytes(blob.cid) == b"x" * 1000


# --- many blobs at once (imports: issue 22) -----------------------------------------------------


def test_put_many_gives_what_put_bytes_gives(tmp_path: Path, random_5_chunks: bytes) -> None:
    blobs: list[bytes | bytearray | memoryview] = [
        b"first",
        b"",
        bytearray(b"a bytearray"),
        memoryview(b"x" * CHUNK_SIZE),  # exactly one chunk: still its own raw block
        random_5_chunks,  # a DAG: through the importer
        b"first",  # the same bytes twice in one call
    ]
    many = LocalStore(tmp_path / "many", fsync=False).put_many(blobs)
    one_by_one = LocalStore(tmp_path / "one", fsync=False)
    assert many == [one_by_one.put_bytes(blob) for blob in blobs]
    store = LocalStore(tmp_path / "many")
    for blob, stored in zip(blobs, many, strict=True):
        assert store.read_bytes(stored.cid) == bytes(blob)
    # Same files, same layout: a block store that was written either way reads the same.
    assert sorted(FlatFsBlockstore(tmp_path / "many")) == sorted(FlatFsBlockstore(tmp_path / "one"))
    assert store.put_many([]) == []


def test_dag_store_put_many_defaults_to_put_bytes() -> None:
    class Recording(DagStore):
        def __init__(self) -> None:
            self.puts: list[bytes] = []

        def get_block(self, cid: str) -> bytes:
            raise BlobNotFound(cid)

        def has(self, cid: str) -> bool:
            return False

        def put_stream(self, chunks: Iterable[bytes | bytearray | memoryview]) -> StoredBlob:
            data = b"".join(bytes(c) for c in chunks)
            self.puts.append(data)
            return StoredBlob(cid=cid_of_bytes(data), size=len(data))

    store = Recording()
    assert isinstance(store, ContentStore)
    assert [b.cid for b in store.put_many([b"a", b"b"])] == [cid_of_bytes(b"a"), cid_of_bytes(b"b")]
    assert store.puts == [b"a", b"b"]


def test_blockstore_put_many_is_idempotent_and_counts_new_blocks(tmp_path: Path) -> None:
    bs = FlatFsBlockstore(tmp_path / "fs", fsync=False)
    blocks = [(cid_for_block(0x55, b"%d" % i), b"%d" % i) for i in range(50)]
    assert bs.put(*blocks[0]) is True
    assert bs.put_many(blocks) == 49
    assert bs.put_many(blocks) == 0
    assert sorted(bs) == sorted(cid for cid, _ in blocks)
    for cid, data in blocks:
        assert bs.get(cid) == data
        assert (tmp_path / "fs" / cid[-2:] / cid).stat().st_mode & 0o777 == 0o644
    assert not [p for p in (tmp_path / "fs").rglob(".*")]  # no temporary file left


def test_blockstore_put_many_rejects_non_cid_names(tmp_path: Path) -> None:
    bs = FlatFsBlockstore(tmp_path / "fs")
    with pytest.raises(InvalidCid):
        bs.put_many([("../escape", b"x")])
    with pytest.raises(InvalidCid):
        bs.put_many([(HELLO_CID.upper(), b"x")])
    assert not (tmp_path / "escape").exists()
    assert list(bs) == []


def test_blockstore_put_many_leaves_no_temp_file_on_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bs = FlatFsBlockstore(tmp_path / "fs", fsync=False)
    blocks = [(cid_for_block(0x55, b"%d" % i), b"%d" % i) for i in range(3)]
    calls = {"n": 0}
    real_replace = os.replace

    def replace_fails_second_time(src: str, dst: str) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(28, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr("storage.blockstore.os.replace", replace_fails_second_time)
    with pytest.raises(OSError, match="No space"):
        bs.put_many(blocks)
    assert list(bs) == [blocks[0][0]]  # the first is whole; the second left nothing behind
    assert [p.name for p in (tmp_path / "fs").rglob("*") if p.is_file()] == [blocks[0][0]]


def test_blockstore_put_many_overwrites_a_dead_runs_temp_file_and_remakes_a_shard(
    tmp_path: Path,
) -> None:
    import threading

    bs = FlatFsBlockstore(tmp_path / "fs", fsync=False)
    cid = cid_for_block(0x55, b"data")
    other = cid_for_block(0x55, b"other")
    bs.put_many([(other, b"other")])
    # A run that died mid-write left its temporary file (same process and thread: same name).
    shard = tmp_path / "fs" / cid[-2:]
    shard.mkdir(parents=True, exist_ok=True)
    stale = shard / f".tmp-{os.getpid()}-{threading.get_ident()}-{cid}"
    stale.write_bytes(b"half a blo")
    # And a cleanup removed a shard this process had already made.
    for path in (tmp_path / "fs" / other[-2:]).iterdir():
        path.unlink()
    (tmp_path / "fs" / other[-2:]).rmdir()
    assert bs.put_many([(cid, b"data"), (other, b"other")]) == 2
    assert bs.get(cid) == b"data"
    assert bs.get(other) == b"other"
    assert not stale.exists()


def test_put_many_durability_one_sync_per_file_and_folder_or_one_group_sync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from storage import blockstore

    fsyncs: list[int] = []
    syncs: list[Path] = []
    monkeypatch.setattr(blockstore.os, "fsync", lambda fd: fsyncs.append(fd))
    monkeypatch.setattr(blockstore, "_sync_filesystem", lambda root: syncs.append(root))
    store = LocalStore(tmp_path)
    blobs = [b"blob %d" % i for i in range(20)]
    cids = [b.cid for b in store.put_many(blobs)]
    folders = {cid[-2:] for cid in cids}
    assert len(fsyncs) == len(blobs) + len(folders)  # every file, then each folder once
    assert syncs == []
    fsyncs.clear()
    with store.group_sync():
        store.put_many([b"grouped %d" % i for i in range(20)])
        assert syncs == []
    assert fsyncs == []
    assert syncs == [tmp_path]
    with store.group_sync():
        store.put_many(blobs)  # all stored already: nothing written, nothing to sync
    assert syncs == [tmp_path]
