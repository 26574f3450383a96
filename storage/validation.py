"""Upload validation: decide from the bytes, never from the file name, before anything is stored."""

from __future__ import annotations

import codecs
import csv
import json
import warnings
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import IO, Any

from PIL import Image, UnidentifiedImageError

SNIFF_BYTES = 32
# Magic numbers of the image formats Kyodo serves to browsers.
_SIGNATURES: list[tuple[bytes, str]] = [
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"BM", "image/bmp"),
]
_PIL_MIME = {
    "PNG": "image/png",
    "JPEG": "image/jpeg",
    "GIF": "image/gif",
    "BMP": "image/bmp",
    "WEBP": "image/webp",
}


class Rejected(Exception):
    """A file that cannot become an item; `reason` is shown to the requester next to its name."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class ImageInfo:
    mime: str
    width: int
    height: int


@dataclass
class TextRow:
    text: str
    gold_label: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)


def sniff_image_mime(head: bytes) -> str | None:
    for magic, mime in _SIGNATURES:
        if head.startswith(magic):
            return mime
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return None


def validate_image(fp: IO[bytes], *, size: int, max_bytes: int, max_pixels: int) -> ImageInfo:
    """Check that `fp` is one real, fully decodable image within the size and pixel caps."""
    if size == 0:
        raise Rejected("empty file")
    if size > max_bytes:
        raise Rejected(f"file is {size} bytes; the limit is {max_bytes}")
    fp.seek(0)
    sniffed = sniff_image_mime(fp.read(SNIFF_BYTES))
    if sniffed is None:
        raise Rejected("not an image (PNG, JPEG, GIF, BMP or WebP)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            fp.seek(0)
            with Image.open(fp) as img:
                width, height = img.size
                if width * height > max_pixels:
                    raise Rejected(f"{width}x{height} pixels is over the limit of {max_pixels}")
                fmt = img.format or ""
                img.verify()
            # verify() checks structure only; decoding catches truncated or garbage pixel data.
            fp.seek(0)
            with Image.open(fp) as img:
                img.load()
    except Rejected:
        raise
    except UnidentifiedImageError as exc:
        # Pillow's own message embeds the file object's repr: say it plainly instead.
        raise Rejected("corrupt or unreadable image: no decoder recognises its content") from exc
    except (
        OSError,
        SyntaxError,
        ValueError,
        Image.DecompressionBombError,
        Image.DecompressionBombWarning,
        EOFError,
    ) as exc:
        raise Rejected(f"corrupt or unreadable image: {exc}") from exc
    finally:
        fp.seek(0)
    mime = _PIL_MIME.get(fmt)
    if mime is None or mime != sniffed:
        raise Rejected(f"image format {fmt or 'unknown'} does not match its content")
    return ImageInfo(mime=mime, width=width, height=height)


def is_zip(fp: IO[bytes]) -> bool:
    fp.seek(0)
    head = fp.read(4)
    fp.seek(0)
    return head == b"PK\x03\x04"


def open_zip(fp: IO[bytes], *, max_members: int) -> tuple[zipfile.ZipFile, list[zipfile.ZipInfo]]:
    """The archive and its regular files, skipping folders and OS metadata (__MACOSX, dot files)."""
    try:
        archive = zipfile.ZipFile(fp)
    except zipfile.BadZipFile as exc:
        raise Rejected(f"not a readable zip: {exc}") from exc
    infos = archive.infolist()
    if len(infos) > max_members:
        raise Rejected(f"zip has {len(infos)} entries; the limit is {max_members}")
    members = []
    for info in infos:
        path = PurePosixPath(info.filename)
        if info.is_dir() or path.parts[0] == "__MACOSX" or path.name.startswith("."):
            continue
        members.append(info)
    return archive, members


def _decode_utf8(fp: IO[bytes]) -> Iterator[str]:
    """Decode lines incrementally, rejecting invalid UTF-8 with the line where it appears."""
    fp.seek(0)
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    for number, raw in enumerate(fp, start=1):
        try:
            yield decoder.decode(raw)
        except UnicodeDecodeError as exc:
            raise Rejected(f"line {number} is not valid UTF-8") from exc


def iter_text_rows(fp: IO[bytes], *, name: str, max_chars: int) -> Iterator[TextRow]:
    """Rows of a CSV (header with a `text` column) or JSONL (objects with "text") file."""
    fp.seek(0)
    first = fp.read(1)
    fp.seek(0)
    if not first:
        raise Rejected("empty file")
    lines = _decode_utf8(fp)
    is_jsonl = first == b"{" or name.lower().endswith((".jsonl", ".ndjson"))
    rows = (
        _jsonl_rows(lines, max_chars=max_chars)
        if is_jsonl
        else _csv_rows(lines, max_chars=max_chars)
    )
    count = 0
    for row in rows:
        count += 1
        yield row
    if count == 0:
        raise Rejected("nothing to import: the file has no texts")


def _row(text: Any, gold: Any, metadata: dict[str, Any], where: str, max_chars: int) -> TextRow:
    if not isinstance(text, str) or not text.strip():
        raise Rejected(f"{where}: text is empty or missing")
    if len(text) > max_chars:
        raise Rejected(f"{where}: text has {len(text)} characters; the limit is {max_chars}")
    if "\x00" in text:
        # PostgreSQL text cannot hold NUL: refused here by name, not as a failed INSERT later.
        raise Rejected(f"{where}: text contains a NUL character")
    if gold is not None and not isinstance(gold, str):
        raise Rejected(f"{where}: gold_label must be a string")
    return TextRow(text=text, gold_label=(gold or "").strip(), metadata=metadata)


def _jsonl_rows(lines: Iterator[str], *, max_chars: int) -> Iterator[TextRow]:
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise Rejected(f"line {number}: invalid JSON ({exc.msg})") from exc
        if not isinstance(obj, dict):
            raise Rejected(f"line {number}: expected a JSON object")
        if "\\u0000" in line and _holds_nul(obj):  # the escape is the only way JSON spells NUL
            raise Rejected(f"line {number}: a value contains a NUL character (\\u0000)")
        text = obj.pop("text", None)
        gold = obj.pop("gold_label", None)
        yield _row(text, gold, obj, f"line {number}", max_chars)


def _holds_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(k) or _holds_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_holds_nul(v) for v in value)
    return False


def _csv_rows(lines: Iterator[str], *, max_chars: int) -> Iterator[TextRow]:
    reader = csv.DictReader(lines)
    try:
        header = reader.fieldnames
    except csv.Error as exc:
        raise Rejected(f"unreadable CSV header: {exc}") from exc
    if not header:
        raise Rejected("empty file")
    if "text" not in header:
        raise Rejected(f"CSV needs a 'text' column; found {header}")
    try:
        for row in reader:
            metadata = {k: v for k, v in row.items() if k not in ("text", "gold_label") and k}
            yield _row(
                row.get("text"),
                row.get("gold_label"),
                metadata,
                f"row {reader.line_num}",
                max_chars,
            )
    except csv.Error as exc:
        raise Rejected(f"row {reader.line_num}: {exc}") from exc
