"""IpfsStore against a real IPFS node (js-ipfs in CI): same CIDs as LocalStore, verified reads."""

from __future__ import annotations

import hashlib
import os
import socket
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from storage import ipfs
from storage.cid import block_matches, cid_for_block
from storage.ipfs import (
    ADD_OPTIONS,
    CidMismatch,
    IpfsClient,
    IpfsStore,
    IpfsUnavailable,
    api_multiaddr,
)
from storage.services import blob_put_bytes, get_store
from storage.stores import BlobNotFound, CorruptBlock, LocalStore, read_range
from storage.unixfs import CHUNK_SIZE, MAX_LINKS, cid_of_bytes

from .conftest import IpfsNode

MIB = 1 << 20

# DESIGN.md, "Facts checked on this kind of machine".
HELLO = b"hello dapp reward manifest\n"
HELLO_CID = "bafkreihzg3z2b4qviggswvajxfwmsbyndfvhbn3np4ilx4dqs66sfq6rxm"
ZEROS_10MIB_CID = "bafybeicicmkwdi4ejuls6owvsrzcty5kht3ydya35eqf4i46yjgbs6xggy"
RANGE_50MIB_CID = "bafybeig4tkaci2tp26gmwohvc4kjyncvtein2behhgasislqmkswpcxoaa"


def zeros_10mib() -> Iterator[bytes]:
    piece = bytes(MIB)
    for _ in range(10):
        yield piece


def range_50mib() -> Iterator[bytes]:
    # bytes(range(256)) * 204800, one MiB at a time: never the whole 50 MiB in memory.
    piece = bytes(range(256)) * 4096
    for _ in range(50):
        yield piece


def sized(n: int) -> Iterator[bytes]:
    # A period of 251 bytes does not divide the chunk size, so the leaves differ.
    yield (bytes(range(251)) * (n // 251 + 1))[:n]


def digest(chunks: Iterable[bytes]) -> tuple[int, str]:
    h = hashlib.sha256()
    size = 0
    for chunk in chunks:
        h.update(chunk)
        size += len(chunk)
    return size, h.hexdigest()


@pytest.fixture
def ipfs_store(ipfs_node: IpfsNode, tmp_path: Path) -> Iterator[IpfsStore]:
    store = IpfsStore(ipfs_node.api_url, timeout=5.0)
    yield store
    store.client.close()


# -- the same CIDs as LocalStore and as Kubo ---------------------------------------------------


@pytest.mark.services
@pytest.mark.slow
@pytest.mark.parametrize(
    ("make", "expected"),
    [
        pytest.param(lambda: iter([HELLO]), HELLO_CID, id="27B"),
        pytest.param(zeros_10mib, ZEROS_10MIB_CID, id="10MiB-zeros"),
        pytest.param(range_50mib, RANGE_50MIB_CID, id="50MiB-two-level"),
        pytest.param(lambda: iter([b""]), None, id="empty"),
        pytest.param(lambda: sized(CHUNK_SIZE), None, id="one-chunk"),
        pytest.param(lambda: sized(CHUNK_SIZE + 1), None, id="two-chunks"),
        pytest.param(lambda: sized(CHUNK_SIZE * MAX_LINKS), None, id="full-level"),
        pytest.param(lambda: sized(CHUNK_SIZE * MAX_LINKS + 1), None, id="full-level-plus-1"),
    ],
)
def test_same_cid_as_local_store(
    make: Any, expected: str | None, ipfs_store: IpfsStore, tmp_path: Path
) -> None:
    local = LocalStore(tmp_path / "local", fsync=False).put_stream(make())
    on_node = ipfs_store.put_stream(make())

    assert on_node.cid == local.cid
    assert on_node.size == local.size
    if expected is not None:
        assert on_node.cid == expected
    # What the node serves back, verified block by block, is the bytes that went in.
    assert digest(ipfs_store.open(on_node.cid)) == digest(make())
    assert ipfs_store.size(on_node.cid) == local.size
    assert ipfs_store.has(on_node.cid)
    assert on_node.cid in ipfs_store.client.pin_ls([on_node.cid])  # pinned on add


def test_the_node_is_asked_for_kubo_compatible_cids() -> None:
    # The options every add sends; without them js-ipfs gives CIDv0 and dag-pb leaves.
    assert ADD_OPTIONS["cid-version"] == "1"
    assert ADD_OPTIONS["raw-leaves"] == "true"
    assert ADD_OPTIONS["cid-base"] == "base32"
    assert ADD_OPTIONS["chunker"] == "size-262144"


@pytest.mark.services
def test_byte_ranges_and_blocks_match_local_store(ipfs_store: IpfsStore, tmp_path: Path) -> None:
    data = os.urandom(3 * CHUNK_SIZE + 1000)
    local = LocalStore(tmp_path / "local", fsync=False)
    cid = local.put_bytes(data).cid
    assert ipfs_store.put_bytes(data).cid == cid

    start, end = CHUNK_SIZE - 10, 2 * CHUNK_SIZE + 10
    assert b"".join(ipfs_store.open(cid, start=start, end=end)) == data[start:end]
    assert list(ipfs_store.blocks(cid)) == list(local.blocks(cid))


@pytest.mark.services
def test_missing_cid(ipfs_store: IpfsStore) -> None:
    missing = cid_of_bytes(b"never stored anywhere " + socket.gethostname().encode())
    assert not ipfs_store.has(missing)
    with pytest.raises(BlobNotFound):
        ipfs_store.read_bytes(missing)


@pytest.mark.services
def test_get_store_selects_the_node(settings: Any, ipfs_node: IpfsNode) -> None:
    settings.IPFS_API_URL = ipfs_node.api_url
    get_store.cache_clear()
    store = get_store()
    assert isinstance(store, IpfsStore)
    blob = blob_put_bytes(data=HELLO)
    assert blob.cid == HELLO_CID
    assert store.read_bytes(HELLO_CID) == HELLO


@pytest.mark.services
def test_put_many_same_cids_as_local_store_in_few_requests(
    ipfs_store: IpfsStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ipfs, "ADD_MANY_FILES", 4)
    requests: list[int] = []
    real_add_many = ipfs_store.client.add_many

    def counting(blobs: Any, *, pin: bool) -> list[str]:
        requests.append(len(blobs))
        return real_add_many(blobs, pin=pin)

    monkeypatch.setattr(ipfs_store.client, "add_many", counting)
    blobs = [b"text %d " % i + os.urandom(8) for i in range(9)]
    blobs += [b"", HELLO, next(sized(CHUNK_SIZE + 1)), HELLO]  # empty, a DAG, a repeat
    stored = ipfs_store.put_many(blobs)
    local = LocalStore(tmp_path / "local", fsync=False).put_many(blobs)
    assert stored == local
    assert requests == [4, 4, 4, 1]  # one add per group of files, not one per blob
    for blob, one in zip(blobs, stored, strict=True):
        assert ipfs_store.read_bytes(one.cid) == blob
    assert {b.cid for b in stored} <= ipfs_store.client.pin_ls([b.cid for b in stored])
    assert ipfs_store.put_many([]) == []


# -- verified reads ----------------------------------------------------------------------------


class TamperingClient(IpfsClient):
    """Serves other bytes for one CID, as a compromised node or proxy would."""

    def __init__(self, api: str, victim: str, forged: bytes) -> None:
        super().__init__(api, timeout=5.0)
        self.victim = victim
        self.forged = forged

    def block_get(self, cid: str, *, timeout: float | None = None) -> bytes:
        if cid == self.victim:
            return self.forged
        return super().block_get(cid, timeout=timeout)


@pytest.mark.services
def test_substituted_block_is_never_served(ipfs_node: IpfsNode, ipfs_store: IpfsStore) -> None:
    data = os.urandom(3 * CHUNK_SIZE)  # three distinct leaves
    cid = ipfs_store.put_bytes(data).cid
    leaves = [c for c, _ in ipfs_store.blocks(cid) if c != cid]
    assert len(leaves) == 3
    victim = leaves[1]
    forged = b"\x00" * CHUNK_SIZE  # right size, wrong bytes
    tampered = IpfsStore(
        ipfs_node.api_url, client=TamperingClient(ipfs_node.api_url, victim, forged)
    )

    with pytest.raises(CorruptBlock) as excinfo:
        tampered.read_bytes(cid)
    assert excinfo.value.cid == victim

    # A streaming read yields the good first leaf, then stops before any forged byte.
    stream = tampered.open(cid)
    assert next(stream) == data[:CHUNK_SIZE]
    with pytest.raises(CorruptBlock):
        next(stream)
    # Ranges that avoid the forged leaf still work; one that touches it fails.
    assert b"".join(tampered.open(cid, start=0, end=100)) == data[:100]
    with pytest.raises(CorruptBlock):
        b"".join(tampered.open(cid, start=CHUNK_SIZE + 5, end=CHUNK_SIZE + 10))
    # A forged root is caught before anything is served.
    forged_root = IpfsStore(
        ipfs_node.api_url, client=TamperingClient(ipfs_node.api_url, cid, b"\x12\x00")
    )
    with pytest.raises(CorruptBlock):
        forged_root.open(cid)


def test_verification_at_the_walker_level() -> None:
    # The same check with no node at all: any get_block that lies is caught.
    good = b"x" * 100
    cid = cid_for_block(0x55, good)
    with pytest.raises(CorruptBlock):
        list(read_range(lambda _cid: b"y" * 100, cid))


@pytest.mark.services
def test_damaged_cache_block_is_refetched(ipfs_node: IpfsNode, tmp_path: Path) -> None:
    store = IpfsStore(ipfs_node.api_url, cache_dir=tmp_path / "cache", timeout=5.0)
    data = b"cached " * 100_000  # 700 kB: three leaves and a root
    cid = store.put_bytes(data).cid
    assert store.read_bytes(cid) == data
    assert store.cache is not None
    cached = sorted((tmp_path / "cache").rglob("baf*"))
    assert len(cached) == 4
    for path in cached:
        path.write_bytes(b"garbage")
    assert store.read_bytes(cid) == data  # the node's verified copy replaced each damaged one
    assert all(block_matches(path.name, path.read_bytes()) for path in cached)


# -- the node's answers are not trusted either -------------------------------------------------


class LyingAddClient(IpfsClient):
    def add(self, chunks: Iterable[bytes], *, pin: bool) -> str:
        for _ in chunks:
            pass
        return HELLO_CID


class LyingAddManyClient(IpfsClient):
    def add_many(self, blobs: Any, *, pin: bool) -> list[str]:
        return [HELLO_CID for _ in blobs]


def test_put_many_rejects_a_cid_the_bytes_do_not_have() -> None:
    store = IpfsStore("http://127.0.0.1:1", client=LyingAddManyClient("http://127.0.0.1:1"))
    assert store.put_many([HELLO])[0].cid == HELLO_CID
    with pytest.raises(CidMismatch) as excinfo:
        store.put_many([HELLO, b"other bytes"])
    assert excinfo.value.expected == cid_of_bytes(b"other bytes")


def test_put_many_splits_by_bytes_too(monkeypatch: pytest.MonkeyPatch) -> None:
    class Recording(IpfsClient):
        groups: list[list[bytes]] = []

        def add_many(self, blobs: Any, *, pin: bool) -> list[str]:
            self.groups.append(list(blobs))
            return [cid_of_bytes(b) for b in blobs]

    monkeypatch.setattr(ipfs, "ADD_MANY_BYTES", 10)
    client = Recording("http://127.0.0.1:1")
    store = IpfsStore("http://127.0.0.1:1", client=client)
    blobs = [b"12345", b"6789", b"abc", b"0123456789abc", b"d"]
    assert [b.size for b in store.put_many(blobs)] == [5, 4, 3, 13, 1]
    # Never over the bound, unless one blob alone is: it goes by itself.
    assert client.groups == [[b"12345", b"6789"], [b"abc"], [b"0123456789abc"], [b"d"]]


def test_put_rejects_a_cid_the_bytes_do_not_have() -> None:
    store = IpfsStore("http://127.0.0.1:1", client=LyingAddClient("http://127.0.0.1:1"))
    with pytest.raises(CidMismatch) as excinfo:
        store.put_bytes(b"other bytes")
    assert excinfo.value.expected == cid_of_bytes(b"other bytes")


# -- failures are clear ------------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_node_down_raises_ipfs_unavailable_after_retries(caplog: Any) -> None:
    api = f"http://127.0.0.1:{_closed_port()}"
    store = IpfsStore(api, client=IpfsClient(api, retries=2, retry_delay=0.0))
    with pytest.raises(IpfsUnavailable) as excinfo:
        store.has(HELLO_CID)
    assert excinfo.value.transient
    assert "block/stat" in str(excinfo.value)
    assert "127.0.0.1" in str(excinfo.value)
    with caplog.at_level("INFO", logger="storage.ipfs"), pytest.raises(IpfsUnavailable):
        store.put_bytes(HELLO)
    assert sum("retry" in r.getMessage() for r in caplog.records) == 2


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("http://127.0.0.1:5001", "/ip4/127.0.0.1/tcp/5001/http"),
        ("http://ipfs:5001/", "/dns/ipfs/tcp/5001/http"),
        ("https://node.example:443/api/v0", "/dns/node.example/tcp/443/https"),
        ("/ip4/10.0.0.2/tcp/5001/http", "/ip4/10.0.0.2/tcp/5001/http"),
    ],
)
def test_api_multiaddr(given: str, expected: str) -> None:
    assert api_multiaddr(given) == expected


@pytest.mark.parametrize("bad", ["127.0.0.1:5001", "ftp://x:1", "http://x", "http://x:1/other"])
def test_api_multiaddr_rejects(bad: str) -> None:
    with pytest.raises(ValueError, match="IPFS API address"):
        api_multiaddr(bad)
