"""CID strings, the UnixFS importer (Kubo vectors), the dag-pb decoder and `manage.py cid`."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import itertools
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storage.cid import (
    CANONICAL_CID,
    DAG_PB,
    RAW,
    InvalidCid,
    block_matches,
    cid_bytes,
    cid_decode,
    cid_encode,
    cid_of_raw_block,
    cid_to_bytes,
    is_cid,
    varint_decode,
    varint_encode,
)
from storage.unixfs import (
    CHUNK_SIZE,
    UNIXFS_FILE,
    Importer,
    MalformedNode,
    _Link,
    cid_of_bytes,
    cid_of_file,
    cid_of_stream,
    decode_dag_pb,
    decode_unixfs,
    encode_file_node,
)

HELLO = b"hello dapp reward manifest\n"
HELLO_CID = "bafkreihzg3z2b4qviggswvajxfwmsbyndfvhbn3np4ilx4dqs66sfq6rxm"
EMPTY_CID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
ZEROS_10MIB_CID = "bafybeicicmkwdi4ejuls6owvsrzcty5kht3ydya35eqf4i46yjgbs6xggy"
RANGE_50MIB_CID = "bafybeig4tkaci2tp26gmwohvc4kjyncvtein2behhgasislqmkswpcxoaa"


@pytest.fixture(scope="module")
def range_50mib() -> bytes:
    return bytes(range(256)) * 204800


# --- CID strings -------------------------------------------------------------------------------


def test_cid_encode_decode_round_trip() -> None:
    digest = hashlib.sha256(HELLO).digest()
    assert cid_encode(RAW, digest) == HELLO_CID
    assert cid_decode(HELLO_CID) == (RAW, digest)
    dag = cid_encode(DAG_PB, digest)
    assert dag.startswith("bafybei")
    assert cid_decode(dag) == (DAG_PB, digest)
    assert len(HELLO_CID) == 59


def test_binary_form() -> None:
    raw = cid_to_bytes(HELLO_CID)
    assert raw[:4] == b"\x01\x55\x12\x20"
    assert raw[4:] == hashlib.sha256(HELLO).digest()


def test_agrees_with_py_cid() -> None:
    if importlib.util.find_spec("cid") is None:
        pytest.skip("py-cid not installed")
    from cid import make_cid

    parsed = make_cid(HELLO_CID)
    assert parsed.version == 1
    assert parsed.codec == "raw"
    assert bytes(parsed.buffer) == cid_to_bytes(HELLO_CID)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "empty"),
        ("QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG", "CIDv0"),
        (HELLO_CID.upper(), "prefix 'b'"),
        ("b" + HELLO_CID[1:].upper(), "lowercase"),
        (" " + HELLO_CID, "prefix 'b'"),
        (HELLO_CID + " ", "base32"),
        (HELLO_CID[:-1], "base32"),
        (HELLO_CID[:-8], "digest"),
        (HELLO_CID + "aaaaaaaa", "digest"),
        ("b1234", "base32"),
        (HELLO_CID[:-1] + "n", "canonical"),
        ("bafkr", "malformed"),
        ("../../etc/passwd", "prefix 'b'"),
    ],
)
def test_cid_decode_rejects(value: str, reason: str) -> None:
    with pytest.raises(InvalidCid, match=reason):
        cid_decode(value)
    assert not is_cid(value)


def test_rejects_other_codecs_and_hashes() -> None:
    digest = hashlib.sha256(b"x").digest()
    with pytest.raises(InvalidCid, match="codec"):
        cid_encode(0x71, digest)  # dag-cbor
    with pytest.raises(InvalidCid, match="32 bytes"):
        cid_encode(RAW, digest[:20])
    import base64

    blake3 = bytes((1, RAW, 0x1E, 32)) + digest
    text = "b" + base64.b32encode(blake3).decode().lower().rstrip("=")
    with pytest.raises(InvalidCid, match="multihash"):
        cid_decode(text)
    assert not is_cid(12)
    assert not is_cid(None)


def test_is_cid_and_block_matches() -> None:
    assert is_cid(HELLO_CID)
    assert block_matches(HELLO_CID, HELLO)
    assert not block_matches(HELLO_CID, HELLO + b"!")


@settings(max_examples=300)
@given(digest=st.binary(min_size=32, max_size=32), codec=st.sampled_from([RAW, DAG_PB]))
def test_cid_encode_is_rfc4648_base32(digest: bytes, codec: int) -> None:
    # cid_encode has its own base32 (ten bits at a time); the standard library's is the reference.
    import base64

    reference = "b" + base64.b32encode(cid_bytes(codec, digest)).decode().lower().rstrip("=")
    assert cid_encode(codec, digest) == reference
    assert cid_decode(reference) == (codec, digest)


def test_cid_of_raw_block_is_the_one_chunk_file_cid() -> None:
    assert cid_of_raw_block(HELLO) == HELLO_CID
    assert cid_of_raw_block(b"") == EMPTY_CID
    assert cid_of_raw_block(memoryview(bytearray(HELLO))) == HELLO_CID
    assert cid_of_raw_block(HELLO) == cid_encode(RAW, hashlib.sha256(HELLO).digest())


@settings(max_examples=300)
@given(digest=st.binary(min_size=32, max_size=32), codec=st.sampled_from([RAW, DAG_PB]))
def test_canonical_cid_pattern_accepts_every_cid(digest: bytes, codec: int) -> None:
    assert CANONICAL_CID.fullmatch(cid_encode(codec, digest))


_B32_CHARS = "abcdefghijklmnopqrstuvwxyz234567"


@settings(max_examples=500)
@given(
    digest=st.binary(min_size=32, max_size=32),
    codec=st.sampled_from([RAW, DAG_PB]),
    position=st.integers(min_value=0, max_value=58),
    char=st.sampled_from(_B32_CHARS + "AZ019=b-/."),
    edit=st.sampled_from(["replace", "insert", "delete"]),
)
def test_canonical_cid_pattern_agrees_with_cid_decode(
    digest: bytes, codec: int, position: int, char: str, edit: str
) -> None:
    # Edits of a valid CID (another codec or hash prefix, padding bits set in the last
    # character, a wrong length, a character outside the alphabet): the pattern accepts exactly
    # what cid_decode accepts, so bulk checks (pins, block names) can use it instead.
    cid = cid_encode(codec, digest)
    if edit == "replace":
        mutated = cid[:position] + char + cid[position + 1 :]
    elif edit == "insert":
        mutated = cid[:position] + char + cid[position:]
    else:
        mutated = cid[:position] + cid[position + 1 :]
    assert bool(CANONICAL_CID.fullmatch(mutated)) == is_cid(mutated)


def test_canonical_cid_pattern_rejects_what_cid_decode_rejects() -> None:
    last_with_padding_bits = HELLO_CID[:-1] + "n"  # 'm' + 1: a padding bit set
    for value in (HELLO_CID.upper(), "Qm" + HELLO_CID[2:], last_with_padding_bits, HELLO_CID + "a"):
        assert not is_cid(value)
        assert not CANONICAL_CID.fullmatch(value)


@pytest.mark.parametrize("value", [0, 1, 127, 128, 300, 16383, 16384, 2**63 - 1])
def test_varint_round_trip(value: int) -> None:
    encoded = varint_encode(value)
    assert varint_decode(encoded) == (value, len(encoded))
    assert varint_decode(b"\xff" + encoded, 1) == (value, len(encoded) + 1)


@pytest.mark.parametrize("bad", [b"", b"\x80", b"\x80\x00", b"\xff" * 10])
def test_varint_rejects(bad: bytes) -> None:
    with pytest.raises(ValueError, match="varint"):
        varint_decode(bad)


# --- UnixFS importer: Kubo vectors ---------------------------------------------------------------


def test_vector_small_file_is_one_raw_block() -> None:
    assert len(HELLO) == 27
    assert cid_of_bytes(HELLO) == HELLO_CID


def test_vector_empty_file() -> None:
    assert cid_of_bytes(b"") == EMPTY_CID
    assert cid_of_stream([]) == EMPTY_CID
    assert cid_of_stream([b"", b""]) == EMPTY_CID


def test_vector_10mib_of_zeros() -> None:
    assert cid_of_bytes(bytes(10 * 1024 * 1024)) == ZEROS_10MIB_CID


def test_vector_50mib_two_level_dag(range_50mib: bytes) -> None:
    assert len(range_50mib) == 50 * 1024 * 1024
    assert cid_of_bytes(range_50mib) == RANGE_50MIB_CID


@pytest.mark.parametrize("piece", [1000, 65536, 262143, 262145, 1 << 20, 3_000_001])
def test_50mib_in_pieces_of_any_size(range_50mib: bytes, piece: int) -> None:
    view = memoryview(range_50mib)
    pieces = (view[i : i + piece] for i in range(0, len(view), piece))
    assert cid_of_stream(pieces) == RANGE_50MIB_CID


def test_one_chunk_exactly_is_a_raw_leaf() -> None:
    data = b"\x07" * CHUNK_SIZE
    assert cid_of_bytes(data).startswith("bafkrei")
    assert cid_of_bytes(data + b"\x07").startswith("bafybei")


@pytest.mark.parametrize("size", [0, 1, 27, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1])
def test_cid_of_bytes_shortcut_for_one_chunk_matches_the_importer(size: int) -> None:
    # cid_of_bytes hashes a blob of at most one chunk directly; the importer is the reference.
    data = (bytes(range(251)) * (size // 251 + 1))[:size]
    importer = Importer()
    importer.write(data)
    assert cid_of_bytes(data) == importer.finish().cid
    assert cid_of_bytes(memoryview(bytearray(data))) == importer.finish().cid


def test_writable_buffers_are_copied_not_aliased() -> None:
    # Callers reuse read buffers (readinto); the importer must not keep a view of them.
    expected = cid_of_bytes(HELLO * 3)
    importer = Importer()
    buf = bytearray(HELLO)
    for _ in range(3):
        importer.write(buf)
        buf[:] = b"\x00" * len(buf)
        buf[:] = HELLO
    buf[:] = b"z" * len(buf)
    assert importer.finish().cid == expected
    importer = Importer()
    buf = bytearray(HELLO)
    importer.write(memoryview(buf).toreadonly())
    buf[:] = b"z" * len(buf)
    assert importer.finish().cid == HELLO_CID


def test_finish_is_idempotent_and_write_after_finish_fails() -> None:
    importer = Importer()
    importer.write(HELLO)
    assert importer.finish() == importer.finish() == (HELLO_CID, 27)
    with pytest.raises(RuntimeError):
        importer.write(b"more")


def test_cid_of_file(tmp_path: Path, range_50mib: bytes) -> None:
    path = tmp_path / "blob"
    path.write_bytes(range_50mib[: 3 * CHUNK_SIZE + 5])
    assert cid_of_file(path) == cid_of_bytes(range_50mib[: 3 * CHUNK_SIZE + 5])


# --- the streaming layout against a literal port of Kubo's balanced builder ---------------------


def _kubo_balanced(data: bytes, chunk_size: int, max_links: int) -> str:
    """go-unixfs importer/balanced Layout + fillNodeRec, non-streaming, for small parameters."""
    chunks = [data[i : i + chunk_size] for i in range(0, len(data), chunk_size)] or [b""]
    queue = iter(chunks)
    remaining = [len(chunks)]

    def leaf() -> _Link:
        block = next(queue)
        remaining[0] -= 1
        return _Link(
            cid_to_bytes(cid_encode(RAW, hashlib.sha256(block).digest())), len(block), len(block)
        )

    def node(links: list[_Link]) -> _Link:
        block = encode_file_node(links)
        raw = cid_to_bytes(cid_encode(DAG_PB, hashlib.sha256(block).digest()))
        return _Link(raw, len(block) + sum(x.tsize for x in links), sum(x.filesize for x in links))

    def fill(links: list[_Link], depth: int) -> _Link:
        while len(links) < max_links and remaining[0]:
            links.append(leaf() if depth == 1 else fill([], depth - 1))
        return node(links)

    root = leaf()
    depth = 1
    while remaining[0]:
        root = fill([root], depth)
        depth += 1
    return cid_encode(root.cid[1], root.cid[4:])


@settings(max_examples=150, deadline=None)
@given(
    size=st.integers(min_value=0, max_value=400),
    chunk_size=st.integers(min_value=1, max_value=5),
    max_links=st.integers(min_value=2, max_value=4),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=8),
)
def test_streaming_layout_matches_kubo_balanced(
    size: int, chunk_size: int, max_links: int, cuts: list[int]
) -> None:
    data = bytes((i * 7 + 3) % 251 for i in range(size))
    bounds = sorted({0, size, *(c for c in cuts if c <= size)})
    importer = Importer(chunk_size=chunk_size, max_links=max_links)
    for a, b in itertools.pairwise(bounds):
        importer.write(data[a:b])
    assert importer.finish().cid == _kubo_balanced(data, chunk_size, max_links)


def test_deep_tree_boundaries_match_kubo() -> None:
    # Exactly full trees and one past them, where a level has to be closed and a new one opened.
    for leaves in (1, 2, 3, 4, 8, 9, 10, 27, 28, 81, 82):
        data = bytes(i % 256 for i in range(leaves * 2))
        importer = Importer(chunk_size=2, max_links=3)
        importer.write(data)
        assert importer.finish().cid == _kubo_balanced(data, 2, 3), leaves


def test_blocks_go_to_the_sink_children_first_and_hash_to_their_cids() -> None:
    seen: list[str] = []

    def sink(cid: str, data: bytes) -> None:
        assert block_matches(cid, data)
        assert isinstance(data, bytes)
        if cid.startswith("bafybei"):
            for link in decode_dag_pb(data).links:
                assert link.cid in seen
        seen.append(cid)

    importer = Importer(block_sink=sink, chunk_size=4, max_links=3)
    for piece in (b"abc", b"defghij", b"k" * 40, b"l"):
        importer.write(piece)
    result = importer.finish()
    assert seen[-1] == result.cid
    assert result.size == 51


def test_pending_memory_is_at_most_one_chunk() -> None:
    importer = Importer(chunk_size=10)
    for _ in range(100):
        importer.write(b"123")
        assert importer._pending_len < 10


# --- dag-pb / UnixFS decoding --------------------------------------------------------------------


def test_decode_root_of_10mib_zeros() -> None:
    blocks: dict[str, bytes] = {}
    importer = Importer(block_sink=lambda cid, data: blocks.setdefault(cid, data))
    importer.write(bytes(10 * 1024 * 1024))
    root = importer.finish().cid
    assert root == ZEROS_10MIB_CID
    node = decode_dag_pb(blocks[root])
    assert len(node.links) == 40
    assert {link.name for link in node.links} == {""}
    assert {link.tsize for link in node.links} == {CHUNK_SIZE}
    assert node.data is not None
    fs = decode_unixfs(node.data)
    assert fs.type == UNIXFS_FILE
    assert fs.filesize == 10 * 1024 * 1024
    assert fs.blocksizes == [CHUNK_SIZE] * 40
    assert fs.data == b""
    # Canonical order: the first field in the bytes is a Link (field 2), Data (field 1) is last.
    assert blocks[root][0] == 0x12


def test_decode_accepts_packed_blocksizes() -> None:
    fs = decode_unixfs(b"\x08\x02\x18\x06\x22\x02\x03\x03")
    assert fs.blocksizes == [3, 3]
    assert fs.filesize == 6


@pytest.mark.parametrize(
    "bad",
    [
        b"\x12",  # truncated length
        b"\x12\x05ab",  # length past the end
        b"\x1a\x00",  # unknown field 3
        b"\x0a\x00\x12\x00",  # link after data
        b"\x12\x02\x18\x01",  # link without a hash
        b"\x12\x04\x0a\x02\x01\x55",  # link hash that is not a CID
        b"\x0d\x00\x00\x00\x00",  # fixed32 wire type
    ],
)
def test_decode_dag_pb_rejects(bad: bytes) -> None:
    with pytest.raises(MalformedNode):
        decode_dag_pb(bad)


def test_decode_unixfs_requires_type() -> None:
    with pytest.raises(MalformedNode, match="Type"):
        decode_unixfs(b"\x18\x05")


# --- manage.py cid -----------------------------------------------------------------------------


def test_cid_lines(tmp_path: Path) -> None:
    from storage.management.commands.cid import cid_lines

    hello = tmp_path / "hello.txt"
    hello.write_bytes(HELLO)
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert list(cid_lines(paths=[hello, empty])) == [f"{HELLO_CID} {hello}", f"{EMPTY_CID} {empty}"]


def test_cid_lines_missing_file_fails_before_hashing(tmp_path: Path) -> None:
    from django.core.management.base import CommandError

    from storage.management.commands.cid import cid_lines

    hello = tmp_path / "hello.txt"
    hello.write_bytes(HELLO)
    with pytest.raises(CommandError, match="no such file"):
        list(cid_lines(paths=[hello, tmp_path / "missing"]))
    with pytest.raises(CommandError, match="not a regular file"):
        list(cid_lines(paths=[tmp_path]))


@pytest.fixture
def django_ready() -> None:
    try:
        from django.conf import settings as django_settings

        django_settings.INSTALLED_APPS  # noqa: B018 - raises when settings are not configured
    except Exception as exc:  # pragma: no cover - depends on how pytest was started
        pytest.skip(f"Django settings not available: {exc}")


@pytest.mark.usefixtures("django_ready")
def test_call_command_prints_cid_per_path(tmp_path: Path) -> None:
    from django.core.management import call_command

    hello = tmp_path / "hello.txt"
    hello.write_bytes(HELLO)
    out = io.StringIO()
    call_command("cid", str(hello), str(hello), stdout=out)
    assert out.getvalue().splitlines() == [f"{HELLO_CID} {hello}"] * 2


@pytest.mark.usefixtures("django_ready")
def test_call_command_missing_file_is_one_line_error(tmp_path: Path) -> None:
    from django.core.management import call_command
    from django.core.management.base import CommandError

    with pytest.raises(CommandError) as excinfo:
        call_command("cid", str(tmp_path / "nope"))
    assert "\n" not in str(excinfo.value)
    assert "no such file" in str(excinfo.value)
