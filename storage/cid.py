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
    return cid_from_bytes(cid_bytes(codec, digest))


def cid_from_bytes(raw: bytes | memoryview) -> str:
    """Binary CID (exactly one, no trailing bytes) to its canonical string."""
    _parse_binary(raw)
    # b32encode pads to a multiple of 8 characters; multibase base32 has no padding.
    return "b" + base64.b32encode(raw).decode("ascii").lower().rstrip("=")


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
