"""CIDv1 strings exactly as Kubo prints them with `--cid-version 1 --cid-base base32`.

Kyodo stores CIDs as text in the database and compares them as text, so there must be exactly one
spelling per CID: multibase base32 lowercase (prefix ``b``), CIDv1, codec raw (0x55) or dag-pb
(0x70), multihash sha2-256 (0x12, 32 bytes). Everything else (CIDv0 ``Qm…``, upper-case ``B…``,
other hashes or codecs, non-canonical base32 padding bits) is rejected rather than normalised, so
a value that passes :func:`cid_decode` can be used as a unique key and as a file name.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re

RAW = 0x55
DAG_PB = 0x70
SHA2_256 = 0x12
DIGEST_SIZE = 32
CID_V1 = 0x01

CODECS = frozenset({RAW, DAG_PB})
# The binary form of every CID we accept is 0x01 <codec> 0x12 0x20 <32-byte digest>: both codecs
# fit in one varint byte, so the binary length is fixed.
CID_BYTES_LEN = 4 + DIGEST_SIZE
_MAX_VARINT_BYTES = 9  # multiformats unsigned-varint spec: at most 9 bytes (63 bits)
_RAW_PREFIX = bytes((CID_V1, RAW, SHA2_256, DIGEST_SIZE))
# Base32 (RFC 4648, lowercase) ten bits at a time: the 36-byte binary CID, shifted left by the two
# padding bits, is exactly 29 ten-bit groups, 58 characters. Twice as fast as base64.b32encode,
# which is pure Python, and a bulk import computes a CID per item.
_B32 = "abcdefghijklmnopqrstuvwxyz234567"
_B32_PAIRS = [_B32[i >> 5] + _B32[i & 31] for i in range(1024)]
# Exactly the strings `cid_decode` accepts (tests/storage/test_cid.py holds the two together): the
# fixed prefix of a CIDv1 raw or dag-pb sha2-256 (`bafkrei`, `bafybei`: 30 bits of the four
# header bytes), a character whose first two bits are the header's last two (zero: a-h), 50 free
# characters, and a last one whose two padding bits are zero. For checking many CIDs at once,
# where decoding each would cost more than the rest of the work.
CANONICAL_CID = re.compile(r"baf(?:krei|ybei)[a-h][a-z2-7]{50}[aeimquy4]")


class InvalidCid(ValueError):
    """A string or byte string that is not a CID Kyodo accepts."""


def varint_encode(value: int) -> bytes:
    """Unsigned LEB128, as used by multiformats, protobuf and CAR section lengths."""
    if value < 0:
        raise ValueError(f"varint must be non-negative, got {value}")
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def varint_decode(buf: bytes | bytearray | memoryview, offset: int = 0) -> tuple[int, int]:
    """Decode one varint at ``buf[offset:]``; return ``(value, offset after it)``.

    Rejects truncated and over-long encodings (the spec requires the minimal form, and two
    spellings of one number would give two byte strings for one CID).
    """
    value = 0
    shift = 0
    for i in range(offset, min(len(buf), offset + _MAX_VARINT_BYTES)):
        byte = buf[i]
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            if byte == 0 and i > offset:
                raise ValueError("varint is not minimally encoded")
            return value, i + 1
        shift += 7
    raise ValueError("varint is truncated or longer than 9 bytes")


def cid_bytes(codec: int, digest: bytes) -> bytes:
    """The binary CIDv1 for a sha2-256 ``digest`` (what dag-pb links and CAR sections carry)."""
    if codec not in CODECS:
        raise InvalidCid(f"unsupported codec 0x{codec:x}: expected raw (0x55) or dag-pb (0x70)")
    if len(digest) != DIGEST_SIZE:
        raise InvalidCid(f"sha2-256 digest must be {DIGEST_SIZE} bytes, got {len(digest)}")
    return bytes((CID_V1, codec, SHA2_256, DIGEST_SIZE)) + digest


def cid_encode(codec: int, digest: bytes) -> str:
    """The canonical CID string for ``codec`` and a sha2-256 ``digest``."""
    return _base32_cid(cid_bytes(codec, digest))


def cid_from_bytes(raw: bytes | memoryview) -> str:
    """Binary CID (exactly one, no trailing bytes) to its canonical string."""
    _parse_binary(raw)
    return _base32_cid(bytes(raw))


def cid_of_raw_block(block: bytes | bytearray | memoryview) -> str:
    """The CID of ``block`` as a raw block: what a file of at most one chunk (262,144 bytes) gets
    from ``ipfs add --cid-version 1 --raw-leaves``, the file being its own only block."""
    return _base32_cid(_RAW_PREFIX + hashlib.sha256(block).digest())


def _base32_cid(raw: bytes) -> str:
    """Multibase base32 (no padding) of a 36-byte binary CID."""
    bits = int.from_bytes(raw, "big") << 2
    pairs = _B32_PAIRS
    return "b" + "".join([pairs[(bits >> shift) & 1023] for shift in range(280, -1, -10)])


def cid_decode(cid: str) -> tuple[int, bytes]:
    """Parse a CID string into ``(codec, digest)``; raise :class:`InvalidCid` with the reason."""
    if not isinstance(cid, str):
        raise InvalidCid(f"CID must be a string, got {type(cid).__name__}")
    if not cid:
        raise InvalidCid("empty CID")
    if cid.startswith("Qm"):
        raise InvalidCid(f"{_shown(cid)}: CIDv0 is not supported; use CIDv1 base32 (bafy…/bafk…)")
    if cid[0] != "b":
        raise InvalidCid(f"{_shown(cid)}: expected multibase base32 lowercase (prefix 'b')")
    body = cid[1:]
    if not body.isascii() or body != body.lower():
        raise InvalidCid(f"{_shown(cid)}: base32 CIDs must be lowercase ASCII")
    try:
        raw = base64.b32decode(body.upper() + "=" * (-len(body) % 8))
    except (binascii.Error, ValueError):
        raise InvalidCid(f"{_shown(cid)}: not valid base32") from None
    codec, digest = _parse_binary(raw)
    # Unused low bits of the last base32 character let several strings decode to the same bytes;
    # only the canonical one is a valid key.
    if cid_from_bytes(raw) != cid:
        raise InvalidCid(f"{_shown(cid)}: not the canonical base32 spelling")
    return codec, digest


def cid_to_bytes(cid: str) -> bytes:
    """CID string to binary CID."""
    codec, digest = cid_decode(cid)
    return cid_bytes(codec, digest)


def is_cid(value: object) -> bool:
    """True when ``value`` is a CID string Kyodo accepts."""
    if not isinstance(value, str):
        return False
    try:
        cid_decode(value)
    except InvalidCid:
        return False
    return True


def cid_for_block(codec: int, block: bytes | memoryview) -> str:
    """The CID of one block under ``codec`` (sha2-256 of its bytes)."""
    return cid_encode(codec, hashlib.sha256(block).digest())


def block_matches(cid: str, block: bytes | memoryview) -> bool:
    """True when ``block`` hashes to the digest inside ``cid``."""
    _codec, digest = cid_decode(cid)
    return hashlib.sha256(block).digest() == digest


def _parse_binary(raw: bytes | memoryview) -> tuple[int, bytes]:
    try:
        version, pos = varint_decode(raw, 0)
        codec, pos = varint_decode(raw, pos)
        hash_code, pos = varint_decode(raw, pos)
        length, pos = varint_decode(raw, pos)
    except ValueError as exc:
        raise InvalidCid(f"malformed binary CID: {exc}") from None
    if version == 0x12 and codec == 0x20:
        raise InvalidCid("CIDv0 is not supported; use CIDv1")
    if version != CID_V1:
        raise InvalidCid(f"unsupported CID version {version}")
    if codec not in CODECS:
        raise InvalidCid(f"unsupported codec 0x{codec:x}: expected raw (0x55) or dag-pb (0x70)")
    if hash_code != SHA2_256:
        raise InvalidCid(f"unsupported multihash 0x{hash_code:x}: expected sha2-256 (0x12)")
    if length != DIGEST_SIZE or len(raw) - pos != DIGEST_SIZE:
        raise InvalidCid(f"sha2-256 digest must be {DIGEST_SIZE} bytes")
    return codec, bytes(raw[pos:])


def _shown(cid: str) -> str:
    # Errors end up in API responses and logs: never echo an unbounded user string.
    return repr(cid if len(cid) <= 80 else cid[:77] + "...")
