"""CARv1 export and import: header bytes, round trips through LocalStore, damaged archives."""

from __future__ import annotations

import io
import random
from pathlib import Path

import pytest

from storage.car import InvalidCar, car_header, read_car, write_car, write_store_car
from storage.cid import cid_to_bytes, varint_encode
from storage.stores import CorruptBlock, LocalStore
from storage.unixfs import CHUNK_SIZE

HELLO = b"hello dapp reward manifest\n"
HELLO_CID = "bafkreihzg3z2b4qviggswvajxfwmsbyndfvhbn3np4ilx4dqs66sfq6rxm"


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "blocks", fsync=False)


def test_header_bytes_are_canonical_dag_cbor() -> None:
    header = car_header([HELLO_CID])
    link = b"\x00" + cid_to_bytes(HELLO_CID)
    body = (
        b"\xa2"  # map(2)
        + b"\x65roots"
        + b"\x81"  # array(1)
        + b"\xd8\x2a"  # tag(42)
        + b"\x58"
        + bytes([len(link)])  # bytes(37), one-byte length
        + link
        + b"\x67version"
        + b"\x01"
    )
    assert header == varint_encode(len(body)) + body
    assert len(body) == 0x3A  # the familiar 0x3a first byte of a one-root CIDv1 CAR


def test_header_needs_a_root() -> None:
    with pytest.raises(ValueError, match="root"):
        car_header([])


def test_write_and_read_sections() -> None:
    out = io.BytesIO()
    written = write_car(out, [HELLO_CID], [(HELLO_CID, HELLO)])
    raw = out.getvalue()
    assert written == len(raw)
    section = varint_encode(36 + len(HELLO)) + cid_to_bytes(HELLO_CID) + HELLO
    assert raw.endswith(section)
    roots, blocks = read_car(io.BytesIO(raw))
    assert roots == [HELLO_CID]
    assert list(blocks) == [(HELLO_CID, HELLO)]


def test_store_round_trip_with_several_roots(store: LocalStore, tmp_path: Path) -> None:
    data = random.Random(3).randbytes(3 * CHUNK_SIZE + 10)
    big = store.put_bytes(data).cid
    small = store.put_bytes(HELLO).cid
    again = store.put_bytes(data[:CHUNK_SIZE]).cid  # same block as big's first leaf
    out = io.BytesIO()
    write_store_car(out, store=store, roots=[big, small, again])
    roots, blocks = read_car(io.BytesIO(out.getvalue()))
    assert roots == [big, small, again]
    pairs = list(blocks)
    assert len(pairs) == len({cid for cid, _ in pairs}) == 6  # root + 4 leaves + hello
    assert pairs[0][0] == big

    target = LocalStore(tmp_path / "imported", fsync=False)
    for cid, block in pairs:
        target.blockstore.put(cid, block)
    assert target.read_bytes(big) == data
    assert target.read_bytes(small) == HELLO


def test_reader_detects_a_tampered_block() -> None:
    out = io.BytesIO()
    write_car(out, [HELLO_CID], [(HELLO_CID, HELLO)])
    raw = bytearray(out.getvalue())
    raw[-1] ^= 0x01
    _roots, blocks = read_car(io.BytesIO(bytes(raw)))
    with pytest.raises(CorruptBlock):
        list(blocks)
    _roots, unchecked = read_car(io.BytesIO(bytes(raw)), verify=False)
    assert len(list(unchecked)) == 1


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x00",
        b"\x05\xa1",  # header shorter than announced
        b"\x01\x01",  # header is the integer 1
        b"\x03\xa1\x61x",  # map with a key but no value
        b"\x0b\xa2\x65roots\x80\x67version\x02",  # version 2 header is a different format
    ],
)
def test_reader_rejects_bad_headers(raw: bytes) -> None:
    with pytest.raises(InvalidCar):
        read_car(io.BytesIO(raw))


def test_reader_rejects_text_roots() -> None:
    body = b"\xa2\x65roots\x81\x63abc\x67version\x01"
    with pytest.raises(InvalidCar, match="roots"):
        read_car(io.BytesIO(varint_encode(len(body)) + body))


def test_reader_rejects_truncated_and_oversized_sections() -> None:
    out = io.BytesIO()
    write_car(out, [HELLO_CID], [(HELLO_CID, HELLO)])
    raw = out.getvalue()
    _roots, blocks = read_car(io.BytesIO(raw[:-3]))
    with pytest.raises(InvalidCar, match="truncated"):
        list(blocks)
    header = car_header([HELLO_CID])
    _roots, blocks = read_car(io.BytesIO(header + varint_encode(1 << 30)))
    with pytest.raises(InvalidCar, match="out of range"):
        list(blocks)
    _roots, blocks = read_car(io.BytesIO(header + b"\x80"))
    with pytest.raises(InvalidCar, match="varint"):
        list(blocks)
