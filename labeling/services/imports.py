"""Import jobs: large uploads validated, stored and inserted by a Celery worker in batches.

Crash-safety: a batch's item rows and the job's progress commit in one transaction, so a worker
that dies resumes exactly after the last committed batch. Items stay STAGED (invisible to
next-task) until the whole source is through, then open in one UPDATE; a job that fails for good
deletes what it staged. So a requester sees all of an import or none of it.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from datetime import timedelta
from itertools import islice
from pathlib import Path
from typing import IO

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from accounts.models import User
from core.errors import ApplicationError
from core.jobs import job_claim, job_done, job_fail
from core.tasks import enqueue_on_commit
from storage.cid import is_cid
from storage.services import blob_put_file, get_store
from storage.validation import Rejected, TextRow, is_zip, iter_text_rows, open_zip

from ..models import Campaign, ImportJob, ImportKind, Item, ItemStatus, TaskType
from .ingest import (
    Draft,
    UploadResult,
    check_gold,
    image_draft,
    insert_batch,
    text_draft,
    zip_member_draft,
)

JOB_BATCH = 500
# A run's claim on its job; each committed batch renews it.
LEASE = timedelta(seconds=300)
MAX_REJECTED_LISTED = 100_000


def _guess_kind(campaign: Campaign, fp: IO[bytes]) -> str:
    is_text = campaign.task_type in (TaskType.TEXT_CLASSIFICATION, TaskType.TEXT_SPANS)
    if is_zip(fp):
        if is_text:
            raise ApplicationError(
                "this is a text campaign: import a CSV or JSONL of texts", code="wrong_upload_kind"
            )
        return ImportKind.IMAGES_ZIP
    fp.seek(0)
    head = fp.read(4096)
    fp.seek(0)
    if b'"cid"' in head.split(b"\n", 1)[0]:
        return ImportKind.CIDS
    if not is_text:
        raise ApplicationError(
            "an image campaign imports a zip of images or a JSONL of CIDs", code="wrong_upload_kind"
        )
    return ImportKind.TEXTS


@transaction.atomic
def import_job_create(*, campaign: Campaign, user: User, upload: UploadedFile) -> ImportJob:
    """Keep the uploaded file as a blob and queue its import. The file streams: never in memory."""
    fp: IO[bytes] = upload.file  # type: ignore[assignment]
    name = (upload.name or "upload")[:255]
    kind = _guess_kind(campaign, fp)
    source = blob_put_file(fp=fp)
    job = ImportJob.objects.create(
        campaign=campaign, created_by=user, kind=kind, source_cid=source.cid, source_name=name
    )
    enqueue_on_commit("labeling.run_import", job.pk)
    return job


def _copy_source(job: ImportJob, folder: Path) -> Path:
    path = folder / "source"
    with path.open("wb") as out:
        for chunk in get_store().open(job.source_cid):
            out.write(chunk)
    return path


def _count_lines(path: Path) -> int:
    with path.open("rb") as fp:
        return sum(1 for line in fp if line.strip())


def _zip_units(job: ImportJob, path: Path) -> Iterator[tuple[str, Draft | Rejected]]:
    with path.open("rb") as fp:
        archive, members = open_zip(fp, max_members=settings.KYODO_MAX_ZIP_MEMBERS)
        _set_total(job, len(members))
        for info in members[job.processed :]:
            name = f"{job.source_name}/{info.filename}"
            try:
                yield name, zip_member_draft(archive, info, name=name)
            except Rejected as exc:
                yield name, exc


def _text_units(job: ImportJob, path: Path) -> Iterator[tuple[str, Draft | Rejected]]:
    # The first line may be a CSV header; the total is an upper bound until the end.
    _set_total(job, _count_lines(path))
    with path.open("rb") as fp:
        rows = iter_text_rows(fp, name=job.source_name, max_chars=settings.KYODO_MAX_TEXT_CHARS)
        for index, row in enumerate(rows):
            if index < job.processed:
                continue  # already imported by an earlier run: parse, don't store again
            yield job.source_name, text_draft(row, name=job.source_name)


def _cid_draft(line: str, campaign: Campaign, number: int) -> Draft:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise Rejected(f"line {number}: invalid JSON ({exc.msg})") from exc
    cid = obj.get("cid") if isinstance(obj, dict) else None
    if not isinstance(cid, str) or not is_cid(cid):
        raise Rejected(f"line {number}: `cid` must be a CIDv1 (base32)")
    store = get_store()
    if not store.has(cid):
        raise Rejected(f"line {number}: {cid} is not in the content store")
    size = store.size(cid)
    name = str(obj.get("filename") or cid)[:255]
    gold = obj.get("gold_label") or ""
    if campaign.task_type in (TaskType.TEXT_CLASSIFICATION, TaskType.TEXT_SPANS):
        if size > settings.KYODO_MAX_TEXT_CHARS * 4:
            raise Rejected(f"line {number}: text blob of {size} bytes is too long")
        try:
            text = store.read_bytes(cid).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise Rejected(f"line {number}: {cid} is not UTF-8 text") from exc
        draft = text_draft(TextRow(text=text, gold_label=gold), name=name)
    else:
        with tempfile.SpooledTemporaryFile(max_size=4 * 1024 * 1024) as blob:
            for chunk in store.open(cid):
                blob.write(chunk)
            draft = image_draft(blob, name=name, size=size)
        draft.gold_label = gold
    return draft


def _cid_units(job: ImportJob, path: Path) -> Iterator[tuple[str, Draft | Rejected]]:
    _set_total(job, _count_lines(path))
    with path.open("rb") as fp:
        lines = (raw.decode("utf-8", errors="replace") for raw in fp if raw.strip())
        for number, line in enumerate(lines, start=1):
            if number <= job.processed:
                continue
            try:
                yield f"line {number}", _cid_draft(line, job.campaign, number)
            except Rejected as exc:
                yield f"line {number}", exc


def _set_total(job: ImportJob, total: int) -> None:
    if job.total != total:
        job.total = total
        ImportJob.objects.filter(pk=job.pk).update(total=total)


@transaction.atomic
def _commit_batch(
    job: ImportJob, drafts: list[Draft], rejected: list[dict[str, str]], n: int
) -> None:
    result = UploadResult()
    insert_batch(job.campaign, drafts, result, job=job)
    job.processed += n
    job.created += result.created
    job.duplicates += result.duplicates
    job.rejected = (job.rejected + rejected)[:MAX_REJECTED_LISTED]
    # Every rejection counts, listed or not; in the batch's transaction, so a resumed run never
    # counts a batch twice.
    job.rejected_count += len(rejected)
    job.locked_until = timezone.now() + LEASE
    job.save(
        update_fields=[
            "processed",
            "created",
            "duplicates",
            "rejected",
            "rejected_count",
            "locked_until",
            "updated_at",
        ]
    )


@transaction.atomic
def _finish(job: ImportJob) -> None:
    opened = Item.objects.filter(import_job=job, status=ItemStatus.STAGED).update(
        status=ItemStatus.OPEN
    )
    Campaign.objects.filter(pk=job.campaign_id).update(item_count=F("item_count") + opened)
    job_done(job, total=job.processed, locked_until=None)


@transaction.atomic
def _fail(job: ImportJob, reason: str) -> None:
    Item.objects.filter(import_job=job, status=ItemStatus.STAGED).delete()
    job_fail(job, reason, created=0, locked_until=None)


def _durable_batches(
    units: Iterator[tuple[str, Draft | Rejected]],
) -> Iterator[list[tuple[str, Draft | Rejected]]]:
    """Batches of units whose blobs are durable (one group sync) before their rows commit."""
    while True:
        with get_store().group_sync():
            batch = list(islice(units, JOB_BATCH))
        if not batch:
            return
        yield batch


def import_job_run(*, job_id: int) -> ImportJob | None:
    """Run (or resume) an import. Safe to call twice: a finished or claimed job is left alone."""
    job = job_claim(ImportJob, job_id, lease=LEASE)
    if job is None:
        return None
    units = {
        ImportKind.IMAGES_ZIP: _zip_units,
        ImportKind.TEXTS: _text_units,
        ImportKind.CIDS: _cid_units,
    }
    folder = Path(tempfile.mkdtemp(prefix=f"kyodo-import-{job.pk}-"))
    try:
        path = _copy_source(job, folder)
        for batch in _durable_batches(units[ImportKind(job.kind)](job, path)):
            drafts: list[Draft] = []
            rejected: list[dict[str, str]] = []
            for name, unit in batch:
                if isinstance(unit, Rejected):
                    rejected.append({"name": name, "reason": unit.reason})
                else:
                    check_gold(job.campaign, unit)
                    drafts.append(unit)
            _commit_batch(job, drafts, rejected, len(batch))
        if job.created == 0 and job.duplicates == 0:
            _fail(job, "no file could be imported")
        else:
            _finish(job)
    except Rejected as exc:
        # The source as a whole is bad (not a zip, a bad row in a text file): all or nothing.
        _fail(job, exc.reason)
    except Exception:
        # Transient (store, database): release the claim so the retry resumes at once.
        ImportJob.objects.filter(pk=job.pk).update(locked_until=None)
        raise
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    job.refresh_from_db()
    return job
