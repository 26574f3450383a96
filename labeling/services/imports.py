"""Import jobs: large uploads validated, stored and inserted by a Celery worker in batches.

Crash-safety: a batch's item rows and the job's progress commit in one transaction, so a worker
that dies resumes exactly after the last committed batch. Items stay STAGED (invisible to
next-task) until the whole source is through, then open in one UPDATE; a job that fails for good
deletes what it staged. So a requester sees all of an import or none of it.

Per batch, not per item (issue 22: 100,000 texts in under 30 s): a batch's texts are stored with
one ``put_many`` (CIDs computed here, blocks written together, one sync), its rows written with
one INSERT that also dedupes (``ON CONFLICT DO NOTHING RETURNING``), and its pin rows with one
more; the pin worker is woken once, when the job finishes.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Generator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing
from datetime import timedelta
from itertools import islice
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from accounts.models import User
from core.errors import ApplicationError
from core.jobs import job_claim, job_done, job_fail
from core.tasks import enqueue_on_commit
from storage.cid import is_cid
from storage.services import blob_put_file, get_store, pins_ensure_many, pins_wake
from storage.validation import Rejected, TextRow, is_zip, iter_text_rows, open_zip

from ..models import Campaign, ImportJob, ImportKind, Item, ItemStatus, TaskType
from ..selectors import blob_visible_to
from .ingest import (
    TEXT_MEDIA_TYPE,
    Draft,
    check_gold,
    image_draft,
    text_draft,
    zip_member_draft,
)

# Units per batch: one transaction, one sync of the store, one INSERT each. A batch of texts is
# held in memory (at most JOB_BATCH x KYODO_MAX_TEXT_CHARS characters).
JOB_BATCH = 2000
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


# What a source yields per row or file: an item to be (a text whose blob is not stored yet, or a
# draft whose blob is), or why it cannot be one.
Unit = tuple[str, Draft | TextRow | Rejected]


def _zip_units(job: ImportJob, path: Path) -> Iterator[Unit]:
    with path.open("rb") as fp:
        archive, members = open_zip(fp, max_members=settings.KYODO_MAX_ZIP_MEMBERS)
        _set_total(job, len(members))
        for info in members[job.processed :]:
            name = f"{job.source_name}/{info.filename}"
            try:
                yield name, zip_member_draft(archive, info, name=name)
            except Rejected as exc:
                yield name, exc


def _text_units(job: ImportJob, path: Path) -> Iterator[Unit]:
    # The first line may be a CSV header; the total is an upper bound until the end.
    _set_total(job, _count_lines(path))
    with path.open("rb") as fp:
        rows = iter_text_rows(fp, name=job.source_name, max_chars=settings.KYODO_MAX_TEXT_CHARS)
        for index, row in enumerate(rows):
            if index < job.processed:
                continue  # already imported by an earlier run: parse, don't store again
            yield job.source_name, row  # stored with its batch (_store_texts)


def _cid_draft(line: str, campaign: Campaign, number: int, *, user: User) -> Draft:
    """An item for a blob already in the store, named by its CID. Only a blob the importing user
    can already read (`labeling.selectors.blob_visible_to`: an item of a campaign they own or a
    task they were given; staff: any) may be imported so: a CID alone proves nothing, since CIDs
    are handed to every buyer and contributor, and importing one would grant its owner's access
    to the blob (issue 15). Any other blob gets the same answer as a missing one, so that the
    import is not an oracle for what the store holds. To import anyone else's data, upload its
    bytes."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise Rejected(f"line {number}: invalid JSON ({exc.msg})") from exc
    cid = obj.get("cid") if isinstance(obj, dict) else None
    if not isinstance(cid, str) or not is_cid(cid):
        raise Rejected(f"line {number}: `cid` must be a CIDv1 (base32)")
    store = get_store()
    if not store.has(cid) or blob_visible_to(user=user, cid=cid) is None:
        raise Rejected(
            f"line {number}: {cid} is not in the content store, or not yours to import "
            "(upload its bytes instead)"
        )
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


def _cid_units(job: ImportJob, path: Path) -> Iterator[Unit]:
    _set_total(job, _count_lines(path))
    with path.open("rb") as fp:
        lines = (raw.decode("utf-8", errors="replace") for raw in fp if raw.strip())
        for number, line in enumerate(lines, start=1):
            if number <= job.processed:
                continue
            try:
                yield f"line {number}", _cid_draft(line, job.campaign, number, user=job.created_by)
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
    created = items_insert_staged(job=job, drafts=drafts)
    # Every item's blob must stay available: a pin row each, in this transaction; the pin worker
    # is woken once, by _finish (the beat's run every minute also finds them).
    pins_ensure_many(cids=created, kind="item", wake=False)
    job.processed += n
    job.created += len(created)
    job.duplicates += len(drafts) - len(created)
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


# The columns a draft fills, in the order of each row of the JSON array sent (see below).
_DRAFT_COLUMNS = ("cid", "media_type", "size", "filename", "text", "gold_label", "metadata")
_FROM_ROW = {
    "cid": "r.v->>0",
    "media_type": "r.v->>1",
    "size": "(r.v->>2)::bigint",
    "filename": "r.v->>3",
    "text": "r.v->>4",
    "gold_label": "r.v->>5",
    "metadata": "(r.v->6)::jsonb",
}


def items_insert_staged(*, job: ImportJob, drafts: list[Draft]) -> list[str]:
    """Insert ``drafts`` as STAGED items of the job's campaign in one statement; return the CIDs
    inserted, in order. A CID already in the campaign, or met earlier in ``drafts``, is skipped
    (a duplicate): the unique (campaign, cid) index decides, so two jobs racing on one campaign
    cannot both insert it.

    The rows go as one JSON array (json.dumps is C; building a model object per row was most of
    an import's database time). Columns a draft does not fill take the model's defaults, so a
    new column with a default needs no change here.
    """
    if not drafts:
        return []
    now = timezone.now()
    fixed = {
        "campaign_id": job.campaign_id,
        "status": ItemStatus.STAGED,
        "import_job_id": job.pk,
    }
    columns: list[str] = []
    select: list[str] = []
    params: list[Any] = []
    for f in Item._meta.concrete_fields:
        if f.primary_key:
            continue
        columns.append(connection.ops.quote_name(f.column or f.attname))
        if f.attname in _FROM_ROW:
            select.append(_FROM_ROW[f.attname])
            continue
        if f.attname in fixed:
            value = fixed[f.attname]
        elif getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False):
            value = now
        else:
            value = f.get_default()
        select.append("%s")
        params.append(f.get_db_prep_save(value, connection))
    rows = json.dumps(
        [[getattr(d, name) for name in _DRAFT_COLUMNS] for d in drafts],
        ensure_ascii=False,
        separators=(",", ":"),
    )
    table = connection.ops.quote_name(Item._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} ({', '.join(columns)}) SELECT {', '.join(select)} "  # noqa: S608
            "FROM json_array_elements(%s::json) WITH ORDINALITY AS r(v, n) ORDER BY r.n "
            "ON CONFLICT (campaign_id, cid) DO NOTHING RETURNING cid",
            [*params, rows],
        )
        inserted = {cid for (cid,) in cursor.fetchall()}
    # RETURNING's order is not promised: the CIDs go back in the drafts' order, each once.
    created: list[str] = []
    for draft in drafts:
        if draft.cid in inserted:
            inserted.discard(draft.cid)
            created.append(draft.cid)
    return created


@transaction.atomic
def _finish(job: ImportJob) -> None:
    opened = Item.objects.filter(import_job=job, status=ItemStatus.STAGED).update(
        status=ItemStatus.OPEN
    )
    Campaign.objects.filter(pk=job.campaign_id).update(item_count=F("item_count") + opened)
    job_done(job, total=job.processed, locked_until=None)
    pins_wake()  # the job's pin rows, written batch by batch (_commit_batch)


@transaction.atomic
def _fail(job: ImportJob, reason: str) -> None:
    Item.objects.filter(import_job=job, status=ItemStatus.STAGED).delete()
    job_fail(job, reason, created=0, locked_until=None)


def _durable_batches(
    units: Iterator[Unit],
) -> Generator[list[tuple[str, Draft | Rejected]], None, None]:
    """Batches of units whose blobs are durable (one group sync) before their rows commit.

    A batch's texts are stored by a second thread while the batch before it commits: the file
    system's work (a file per text) and the database's overlap instead of taking turns. A batch
    is yielded only once its own blobs are synced, so rows still never point at blobs a crash
    could lose, and at most two batches are in memory.
    """
    store = get_store()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="import-store") as writer:
        ahead: Future[list[tuple[str, Draft | Rejected]]] | None = None
        while True:
            try:
                # Zip members and blobs named by CID are stored as they are read, here.
                with store.group_sync():
                    batch = list(islice(units, JOB_BATCH))
            except Rejected:
                if ahead is not None:
                    yield ahead.result()  # the good batch before the bad row commits, as ever
                raise
            current = writer.submit(_store_texts_durably, batch) if batch else None
            if ahead is not None:
                yield ahead.result()  # committed while `current` is being written
            if current is None:
                return
            ahead = current


def _store_texts_durably(units: list[Unit]) -> list[tuple[str, Draft | Rejected]]:
    with get_store().group_sync():  # this thread's writes, one sync
        return _store_texts(units)


def _store_texts(units: list[Unit]) -> list[tuple[str, Draft | Rejected]]:
    """The batch with its texts stored, all in one ``put_many``: each text becomes a draft."""
    texts = [unit for _, unit in units if isinstance(unit, TextRow)]
    if not texts:
        return [(name, unit) for name, unit in units if not isinstance(unit, TextRow)]
    encoded = [row.text.encode("utf-8") for row in texts]
    blobs = iter(get_store().put_many(encoded))
    out: list[tuple[str, Draft | Rejected]] = []
    for name, unit in units:
        if isinstance(unit, TextRow):
            blob = next(blobs)
            unit = Draft(
                cid=blob.cid,
                media_type=TEXT_MEDIA_TYPE,
                size=blob.size,
                filename=name[:255],
                text=unit.text,
                gold_label=unit.gold_label,
                metadata=unit.metadata,
            )
        out.append((name, unit))
    return out


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
        # closing(): whatever ends the loop, the batch being stored ahead is waited for.
        with closing(_durable_batches(units[ImportKind(job.kind)](job, path))) as batches:
            for batch in batches:
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
