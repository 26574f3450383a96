"""Writes of the datasets app: exports, built by Celery, streamed through temporary files."""

from __future__ import annotations

import mimetypes
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

from django.db import IntegrityError, OperationalError, transaction

from accounts.models import User
from core.jobs import JobStatus, job_claim, job_done, job_fail
from core.tasks import enqueue_on_commit
from labeling import selectors as labeling_selectors
from storage.car import write_car
from storage.directory import Entry, build_directory, dag_tsize
from storage.services import blob_put_file, get_store, pin_ensure
from storage.stores import ContentStore

from .models import Export, ExportKind

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
MAX_ATTEMPTS = 5


def export_request(*, campaign_id: int, user: User, kind: str = ExportKind.RAW_CAR) -> Export:
    """Queue an export, or return the one already queued or running for this campaign and kind."""
    try:
        with transaction.atomic():
            export = Export.objects.create(campaign_id=campaign_id, kind=kind, requested_by=user)
            enqueue_on_commit("datasets.build_export", export.pk)
            return export
    except IntegrityError:
        return Export.objects.get(
            campaign_id=campaign_id,
            kind=kind,
            status__in=[JobStatus.QUEUED, JobStatus.RUNNING],
        )


def _fail(export: Export, reason: str) -> None:
    job_fail(export, reason[:2000])  # an exception's text can run long; the API shows it


def _entry_name(item_id: int, filename: str, media_type: str) -> str:
    stem = _UNSAFE.sub("_", Path(filename).name)[:80] if filename else ""
    if not stem:
        stem = "item" + (mimetypes.guess_extension(media_type.split(";")[0]) or "")
    return f"{item_id:09d}-{stem}"


def _entries(campaign_id: int, store: ContentStore, counter: list[int]) -> Iterator[Entry]:
    for item in labeling_selectors.items_iter(campaign_id=campaign_id):
        _, root_block = next(iter(store.blocks(item.cid)))
        counter[0] += 1
        yield Entry(
            name=_entry_name(item.item_id, item.filename, item.media_type),
            cid=item.cid,
            tsize=dag_tsize(item.cid, {item.cid: root_block}.__getitem__),
        )


def _build_raw_car(export: Export, folder: Path) -> tuple[str, Path, int]:
    """Directory nodes go to a spool file first: the CAR header needs the root before any block."""
    store = get_store()
    spool = folder / "dirs"
    index: list[tuple[str, int, int]] = []
    counter = [0]
    with spool.open("wb") as out:

        def sink(cid: str, block: bytes) -> None:
            index.append((cid, out.tell(), len(block)))
            out.write(block)

        root = build_directory(_entries(export.campaign_id, store, counter), sink)

    def blocks() -> Iterator[tuple[str, bytes]]:
        with spool.open("rb") as dirs:
            for cid, offset, length in reversed(index):  # root first, as `ipfs dag export`
                dirs.seek(offset)
                yield cid, dirs.read(length)
        # Blocks are distinct within an item; across items a shared chunk may repeat, which CARv1
        # allows and `ipfs dag import` accepts. Deduplicating would cost memory per block.
        for item in labeling_selectors.items_iter(campaign_id=export.campaign_id):
            yield from store.blocks(item.cid)

    car_path = folder / "export.car"
    with car_path.open("wb") as out:
        write_car(out, [root], blocks())
    return root, car_path, counter[0]


def export_build(*, export_id: int) -> Export | None:
    """Build a queued export. Safe to rerun: a finished export is left alone."""
    export = job_claim(Export, export_id)
    if export is None:
        return None
    try:
        with tempfile.TemporaryDirectory(prefix=f"kyodo-export-{export.pk}-") as tmp:
            root, car_path, n_items = _build_raw_car(export, Path(tmp))
            with car_path.open("rb") as fp:
                blob = blob_put_file(fp=fp)
    except (OSError, OperationalError):
        if export.attempts < MAX_ATTEMPTS:
            raise  # transient: the task retries, and the rerun claims the row again
        _fail(export, "gave up after repeated storage or database errors")
        raise
    except Exception as exc:
        _fail(export, f"{type(exc).__name__}: {exc}")
        raise
    pin_ensure(cid=blob.cid, kind="export")
    job_done(export, root_cid=root, cid=blob.cid, size=blob.size, item_count=n_items)
    return export
