"""CARv1 (content-addressed archive) writing and reading, streamed.

A CARv1 is ``varint(len(header)) header`` followed by sections ``varint(len(cid) + len(data)) cid
data``. The header is the dag-cbor map ``{"roots": [CID, ...], "version": 1}``; dag-cbor wants map
keys sorted by length, then bytes, so "roots" precedes "version", and a CID is tag 42 over a byte
string of 0x00 (the identity multibase prefix) followed by the binary CID. Only that one shape is
needed, so it is encoded and decoded by hand.

The result is what ``ipfs dag export`` produces for the same DAG and can be imported with
``ipfs dag import`` or checked by any CAR tool, which lets a buyer verify an export offline.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from typing import BinaryIO

from storage.cid import (
    CID_BYTES_LEN,
    InvalidCid,
    cid_decode,
    cid_from_bytes,
    cid_to_bytes,
    varint_decode,
    varint_encode,
)
from storage.stores import ContentStore, CorruptBlock

# Kubo refuses blocks over 2 MiB on the wire; 8 MiB leaves room and still bounds what one bad
# length prefix can make the reader allocate.
MAX_SECTION_SIZE = 8 << 20
MAX_HEADER_SIZE = 1 << 20
_CID_TAG = b"\xd8\x2a"  # CBOR major type 6, tag 42 (IPLD link)


class InvalidCar(ValueError):
    """The stream is not a CARv1 this reader understands."""


def car_header(roots: Sequence[str]) -> bytes:
    """The length-prefixed CARv1 header naming ``roots``."""
    if not roots:
        raise ValueError("a CARv1 needs at least one root")
    parts = [b"\xa2", _cbor_head(3, 5), b"roots", _cbor_head(4, len(roots))]
    for cid in roots:
        link = b"\x00" + cid_to_bytes(cid)
        parts += [_CID_TAG, _cbor_head(2, len(link)), link]
    parts += [_cbor_head(3, 7), b"version", b"\x01"]
    header = b"".join(parts)
    return varint_encode(len(header)) + header


def write_car(out: BinaryIO, roots: Sequence[str], blocks: Iterable[tuple[str, bytes]]) -> int:
    """Write a CARv1 with ``roots`` and then ``blocks`` as given; return the bytes written.

    Blocks are written as they come (the caller vouches for them; ``ContentStore.blocks`` yields
    verified ones), so memory stays at one block whatever the archive size.
    """
    written = out.write(car_header(roots))
    for cid, data in blocks:
        raw_cid = cid_to_bytes(cid)
        written += out.write(varint_encode(len(raw_cid) + len(data)))
        written += out.write(raw_cid)
        written += out.write(data)
    return written


def write_store_car(out: BinaryIO, *, store: ContentStore, roots: Sequence[str]) -> int:
    """A CARv1 of the DAGs under ``roots`` from ``store``, each distinct block once."""

    def blocks() -> Iterator[tuple[str, bytes]]:
        seen: set[str] = set()
        for root in roots:
            for cid, data in store.blocks(root):
                if cid not in seen:
                    seen.add(cid)
                    yield cid, data

    return write_car(out, roots, blocks())


def read_car(
    inp: BinaryIO, *, verify: bool = True
) -> tuple[list[str], Iterator[tuple[str, bytes]]]:
    """Parse the header now; return the roots and a lazy iterator over ``(cid, data)`` sections.

    With ``verify`` every block is hashed against its CID, raising ``CorruptBlock`` on a mismatch.
    """
    length = _read_varint(inp, allow_eof=False)
    if length is None or not 0 < length <= MAX_HEADER_SIZE:
        raise InvalidCar(f"header length {length} out of range")
    roots = _parse_header(_read_exact(inp, length))
    return roots, _sections(inp, verify=verify)


def _sections(inp: BinaryIO, *, verify: bool) -> Iterator[tuple[str, bytes]]:
    while True:
        length = _read_varint(inp, allow_eof=True)
        if length is None:
            return
        if not CID_BYTES_LEN <= length <= MAX_SECTION_SIZE:
            raise InvalidCar(f"section length {length} out of range")
        section = _read_exact(inp, length)
        try:
            cid = cid_from_bytes(section[:CID_BYTES_LEN])
        except InvalidCid as exc:
            raise InvalidCar(f"section CID: {exc}") from None
        data = section[CID_BYTES_LEN:]
        if verify and hashlib.sha256(data).digest() != cid_decode(cid)[1]:
            raise CorruptBlock(cid)
        yield cid, data


def _parse_header(header: bytes) -> list[str]:
    value, pos = _cbor_item(header, 0)
    if pos != len(header):
        raise InvalidCar("trailing bytes after the CAR header")
    if not isinstance(value, dict) or value.get("version") != 1:
        raise InvalidCar("not a CARv1 header")
    roots = value.get("roots")
    if not isinstance(roots, list) or not all(isinstance(r, _CidLink) for r in roots):
        raise InvalidCar("CAR header roots must be a list of CIDs")
    return [str(r) for r in roots]


# The header decoder understands exactly what a CARv1 header may hold: unsigned ints, text, arrays,
# maps and CIDs (tag 42). Anything else is rejected rather than skipped.
class _CidLink(str):
    """A CID decoded from tag 42, told apart from a plain text string."""


_CborValue = int | str | list["_CborValue"] | dict[str, "_CborValue"]


def _cbor_item(buf: bytes, pos: int, depth: int = 0) -> tuple[_CborValue, int]:
    if depth > 4:
        raise InvalidCar("CAR header nests too deeply")
    major, arg, pos = _cbor_read_head(buf, pos)
    if major == 0:
        return arg, pos
    if major == 3:
        text, pos = _take(buf, pos, arg)
        try:
            return text.decode("utf-8"), pos
        except UnicodeDecodeError:
            raise InvalidCar("CAR header text is not UTF-8") from None
    if major == 4:
        items: list[_CborValue] = []
        for _ in range(arg):
            item, pos = _cbor_item(buf, pos, depth + 1)
            items.append(item)
        return items, pos
    if major == 5:
        mapping: dict[str, _CborValue] = {}
        for _ in range(arg):
            key, pos = _cbor_item(buf, pos, depth + 1)
            if not isinstance(key, str):
                raise InvalidCar("CAR header map keys must be text")
            mapping[key], pos = _cbor_item(buf, pos, depth + 1)
        return mapping, pos
    if major == 6 and arg == 42:
        kind, length, pos = _cbor_read_head(buf, pos)
        raw, pos = _take(buf, pos, length)
        if kind != 2 or not raw.startswith(b"\x00"):
            raise InvalidCar("CID in CAR header must be bytes with a 0x00 prefix")
        try:
            return _CidLink(cid_from_bytes(raw[1:])), pos
        except InvalidCid as exc:
            raise InvalidCar(f"CAR root: {exc}") from None
    raise InvalidCar(f"unsupported CBOR item (major type {major}) in CAR header")


def _cbor_head(major: int, arg: int) -> bytes:
    if arg < 24:
        return bytes((major << 5 | arg,))
    for extra, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if arg < 1 << (8 * size):
            return bytes((major << 5 | extra,)) + arg.to_bytes(size, "big")
    raise ValueError("CBOR argument too large")


def _cbor_read_head(buf: bytes, pos: int) -> tuple[int, int, int]:
    if pos >= len(buf):
        raise InvalidCar("CAR header is truncated")
    initial = buf[pos]
    major, info = initial >> 5, initial & 0x1F
    if info < 24:
        return major, info, pos + 1
    if info > 27:
        raise InvalidCar("indefinite or reserved CBOR lengths are not allowed in dag-cbor")
    size = 1 << (info - 24)
    raw, end = _take(buf, pos + 1, size)
    return major, int.from_bytes(raw, "big"), end


def _take(buf: bytes, pos: int, length: int) -> tuple[bytes, int]:
    if pos + length > len(buf):
        raise InvalidCar("CAR header is truncated")
    return buf[pos : pos + length], pos + length


def _read_varint(inp: BinaryIO, *, allow_eof: bool) -> int | None:
    raw = bytearray()
    while True:
        byte = inp.read(1)
        if not byte:
            if not raw and allow_eof:
                return None
            raise InvalidCar("CAR ends inside a varint")
        raw += byte
        if byte[0] < 0x80:
            break
        if len(raw) >= 9:
            raise InvalidCar("varint longer than 9 bytes")
    try:
        return varint_decode(raw)[0]
    except ValueError as exc:
        raise InvalidCar(str(exc)) from None


def _read_exact(inp: BinaryIO, length: int) -> bytes:
    data = inp.read(length)
    # A raw (unbuffered) stream may return fewer bytes than asked without being at the end.
    while len(data) < length:
        more = inp.read(length - len(data))
        if not more:
            raise InvalidCar(f"CAR is truncated: expected {length} bytes, got {len(data)}")
        data += more
    return data
