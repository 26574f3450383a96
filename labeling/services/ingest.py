"""Upload items: validate every file from its bytes, store it, create items in bulk; dedupe by CID.

A file that fails validation is never stored and is reported by name with its reason. Item rows are
written in one transaction, so a failure part-way leaves no items behind. (Blobs already stored for
valid files stay in the content store: they are content-addressed, harmless and reused on retry.)
"""

from __future__ import annotations

import tempfile
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.db.models import F

from core.errors import ApplicationError
from storage.services import blob_put_bytes, blob_put_file, get_store, pins_ensure_many
from storage.validation import (
    Rejected,
    TextRow,
    is_zip,
    iter_text_rows,
    open_zip,
    validate_image,
)

from ..models import Campaign, ImportJob, Item, ItemStatus, TaskType

BATCH = 1000
COPY_CHUNK = 256 * 1024
TEXT_MEDIA_TYPE = "text/plain; charset=utf-8"


@dataclass
class UploadResult:
    created: int = 0
    duplicates: int = 0
    rejected: list[dict[str, str]] = field(default_factory=list)


@dataclass
class Draft:
    """An item to be: its blob is stored, its row not yet written."""

    cid: str
    media_type: str
    size: int
    filename: str
    text: str = ""
    gold_label: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)


def image_draft(fp: IO[bytes], *, name: str, size: int) -> Draft:
    info = validate_image(
        fp,
        size=size,
        max_bytes=settings.KYODO_MAX_IMAGE_BYTES,
        max_pixels=settings.KYODO_MAX_IMAGE_PIXELS,
    )
    blob = blob_put_file(fp=fp)
    return Draft(
        cid=blob.cid,
        media_type=info.mime,
        size=blob.size,
        filename=name[:255],
        metadata={"width": info.width, "height": info.height},
    )


def zip_member_draft(archive: zipfile.ZipFile, info: zipfile.ZipInfo, *, name: str) -> Draft:
    """Validate and store one zip member; raises Rejected with the reason."""
    if info.file_size > settings.KYODO_MAX_IMAGE_BYTES:
        raise Rejected(
            f"file is {info.file_size} bytes; the limit is {settings.KYODO_MAX_IMAGE_BYTES}"
        )
    # Spool the member to a temporary file: the declared size may lie, so copy with a cap.
    with tempfile.SpooledTemporaryFile(max_size=4 * 1024 * 1024) as member:
        try:
            with archive.open(info) as src:
                copied = 0
                while chunk := src.read(COPY_CHUNK):
                    copied += len(chunk)
                    if copied > settings.KYODO_MAX_IMAGE_BYTES:
                        raise Rejected("decompressed size is over the limit")
                    member.write(chunk)
        except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as exc:
            raise Rejected(f"unreadable zip entry: {exc}") from exc
        return image_draft(member, name=name, size=copied)


def _zip_drafts(fp: IO[bytes], *, zip_name: str, result: UploadResult) -> Iterator[Draft]:
    archive, members = open_zip(fp, max_members=settings.KYODO_MAX_ZIP_MEMBERS)
    for info in members:
        name = f"{zip_name}/{info.filename}"
        try:
            yield zip_member_draft(archive, info, name=name)
        except Rejected as exc:
            result.rejected.append({"name": name, "reason": exc.reason})


def _image_drafts(files: Iterable[UploadedFile], result: UploadResult) -> Iterator[Draft]:
    for upload in files:
        name = upload.name or "unnamed"
        fp: IO[bytes] = upload.file  # type: ignore[assignment]
        if is_zip(fp):
            try:
                yield from _zip_drafts(fp, zip_name=name, result=result)
            except Rejected as exc:
                result.rejected.append({"name": name, "reason": exc.reason})
            continue
        try:
            yield image_draft(fp, name=name, size=upload.size or 0)
        except Rejected as exc:
            result.rejected.append({"name": name, "reason": exc.reason})


def text_draft(row: TextRow, *, name: str) -> Draft:
    data = row.text.encode("utf-8")
    blob = blob_put_bytes(data=data)
    return Draft(
        cid=blob.cid,
        media_type=TEXT_MEDIA_TYPE,
        size=len(data),
        filename=name[:255],
        text=row.text,
        gold_label=row.gold_label,
        metadata=row.metadata,
    )


def _text_drafts(upload: UploadedFile) -> Iterator[Draft]:
    name = upload.name or "texts"
    if (upload.size or 0) > settings.KYODO_MAX_TEXT_FILE_BYTES:
        raise Rejected(
            f"file is {upload.size} bytes; the limit is {settings.KYODO_MAX_TEXT_FILE_BYTES}"
        )
    fp: IO[bytes] = upload.file  # type: ignore[assignment]
    for row in iter_text_rows(fp, name=name, max_chars=settings.KYODO_MAX_TEXT_CHARS):
        yield text_draft(row, name=name)


def insert_batch(
    campaign: Campaign, drafts: list[Draft], result: UploadResult, *, job: ImportJob | None = None
) -> None:
    """Insert the drafts not already in the campaign; count the rest as duplicates.

    Items of an import job are written STAGED and opened when the job finishes.
    """
    unique: dict[str, Draft] = {}
    for draft in drafts:
        if draft.cid in unique:
            result.duplicates += 1
        else:
            unique[draft.cid] = draft
    existing = set(
        Item.objects.filter(campaign=campaign, cid__in=list(unique)).values_list("cid", flat=True)
    )
    result.duplicates += len(existing)
    rows = [
        Item(
            campaign=campaign,
            cid=d.cid,
            media_type=d.media_type,
            size=d.size,
            filename=d.filename,
            text=d.text,
            gold_label=d.gold_label,
            metadata=d.metadata,
            status=ItemStatus.STAGED if job is not None else ItemStatus.OPEN,
            import_job=job,
        )
        for cid, d in unique.items()
        if cid not in existing
    ]
    Item.objects.bulk_create(rows, batch_size=BATCH)
    # Every item's blob must stay available: a pin row each, made good by storage.ensure_pins.
    pins_ensure_many(cids=[row.cid for row in rows], kind="item")
    result.created += len(rows)


def check_gold(campaign: Campaign, draft: Draft) -> None:
    if draft.gold_label and draft.gold_label not in campaign.class_names:
        raise Rejected(f"gold_label {draft.gold_label!r} is not one of {campaign.class_names}")


@transaction.atomic
def items_upload(
    *,
    campaign: Campaign,
    files: Sequence[UploadedFile] | None = None,
    text_file: UploadedFile | None = None,
) -> UploadResult:
    """Create items from uploaded images (files or zips) or a CSV/JSONL of texts."""
    result = UploadResult()
    is_text = campaign.task_type in (TaskType.TEXT_CLASSIFICATION, TaskType.TEXT_SPANS)
    if is_text and files:
        raise ApplicationError(
            "this is a text campaign: upload a CSV or JSONL as `file`", code="wrong_upload_kind"
        )
    if not is_text and text_file is not None:
        raise ApplicationError(
            "this is an image campaign: upload images or a zip as `files`", code="wrong_upload_kind"
        )
    if not files and text_file is None:
        raise ApplicationError(
            "no files: send `files` (images or a zip) or `file` (CSV/JSONL)", code="no_files"
        )

    # One sync of the store for the whole upload, before the rows commit (see group_sync).
    with get_store().group_sync():
        _upload_into(campaign, result, files, text_file)
    if result.created == 0 and result.duplicates == 0:
        raise ApplicationError(
            "no file could be imported",
            code="all_files_rejected",
            extra={"created": 0, "duplicates": 0, "rejected": result.rejected},
        )
    Campaign.objects.filter(pk=campaign.pk).update(item_count=F("item_count") + result.created)
    return result


def _upload_into(
    campaign: Campaign,
    result: UploadResult,
    files: Sequence[UploadedFile] | None,
    text_file: UploadedFile | None,
) -> None:
    batch: list[Draft] = []
    if text_file is not None:
        try:
            for draft in _text_drafts(text_file):
                check_gold(campaign, draft)
                batch.append(draft)
                if len(batch) >= BATCH:
                    insert_batch(campaign, batch, result)
                    batch = []
        except Rejected as exc:
            # A text file is one unit: a bad row rejects the file, and the transaction rolls back.
            raise ApplicationError(
                f"{text_file.name}: {exc.reason}",
                code="file_rejected",
                extra={"rejected": [{"name": text_file.name or "file", "reason": exc.reason}]},
            ) from exc
    else:
        for draft in _image_drafts(files or [], result):
            batch.append(draft)
            if len(batch) >= BATCH:
                insert_batch(campaign, batch, result)
                batch = []
    if batch:
        insert_batch(campaign, batch, result)
