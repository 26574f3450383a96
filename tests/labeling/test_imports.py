from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from accounts.models import User
from labeling.models import (
    Campaign,
    ImportJob,
    ImportKind,
    ImportStatus,
    Item,
    ItemStatus,
    TaskType,
)
from labeling.services import import_job_create, import_job_run, imports, task_lease_next
from labeling.services.ingest import Draft
from storage import pins
from storage.models import Pin, PinStatus
from storage.services import get_store
from storage.stores import LocalStore
from storage.unixfs import Importer

from ..accounts.factories import UserFactory
from ..conftest import client_for
from .factories import (
    CampaignFactory,
    ImportJobFactory,
    ItemFactory,
    TextItemFactory,
    png_bytes,
    zip_bytes,
)

pytestmark = pytest.mark.django_db


def images_zip(n: int, bad: int = 0) -> bytes:
    members = {f"img/{i:04d}.png": png_bytes(i) for i in range(n)}
    members.update({f"img/bad{i}.png": b"\x89PNG\r\n\x1a\nnope" for i in range(bad)})
    return zip_bytes(members)


def test_zip_import_through_the_api(campaign: Campaign, django_capture_on_commit_callbacks) -> None:
    client = client_for(campaign.owner)
    upload = SimpleUploadedFile("batch.zip", images_zip(30, bad=2))
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            f"/api/campaigns/{campaign.pk}/imports/", {"file": upload}, format="multipart"
        )
    assert response.status_code == 202, response.content
    job = client.get(f"/api/imports/{response.json()['id']}/").json()
    assert job["status"] == "done"
    assert (job["total"], job["processed"], job["created"], job["duplicates"]) == (32, 32, 30, 0)
    assert job["rejected_count"] == 2
    assert "rejected" not in job  # the poll never carries the list: it is paged on its own
    rejected = client.get(f"/api/imports/{job['id']}/rejected/").json()
    assert sorted(r["name"] for r in rejected["results"]) == [
        "batch.zip/img/bad0.png",
        "batch.zip/img/bad1.png",
    ]
    assert rejected["next"] is None
    assert Item.objects.filter(campaign=campaign, status=ItemStatus.OPEN).count() == 30
    campaign.refresh_from_db()
    assert campaign.item_count == 30
    listed = client.get(f"/api/campaigns/{campaign.pk}/imports/").json()
    assert [j["id"] for j in listed["results"]] == [job["id"]]
    assert listed["next"] is None


def test_a_crash_mid_job_resumes_without_duplicates(
    campaign: Campaign, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(imports, "JOB_BATCH", 5)
    job = import_job_create(
        campaign=campaign, user=campaign.owner, upload=SimpleUploadedFile("z.zip", images_zip(23))
    )
    real_commit = imports._commit_batch
    calls = {"n": 0}

    def crash_on_third(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("worker lost its disk")
        return real_commit(*args, **kwargs)

    monkeypatch.setattr(imports, "_commit_batch", crash_on_third)
    with pytest.raises(OSError, match="disk"):
        import_job_run(job_id=job.pk)
    job.refresh_from_db()
    assert (job.status, job.processed, job.created) == (ImportStatus.RUNNING, 10, 10)
    # Half an import is invisible: staged items are never leased.
    assert Item.objects.filter(campaign=campaign, status=ItemStatus.STAGED).count() == 10
    assert task_lease_next(campaign=campaign, worker=UserFactory.create()) is None

    monkeypatch.setattr(imports, "_commit_batch", real_commit)
    finished = import_job_run(job_id=job.pk)
    assert finished is not None
    assert (finished.status, finished.processed, finished.created, finished.duplicates) == (
        ImportStatus.DONE,
        23,
        23,
        0,
    )
    assert finished.attempts == 2
    assert Item.objects.filter(campaign=campaign, status=ItemStatus.OPEN).count() == 23
    assert import_job_run(job_id=job.pk) is None  # a finished job is left alone


def test_a_bad_text_file_rolls_back_everything(
    requester: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(imports, "JOB_BATCH", 3)
    campaign = CampaignFactory.create(owner=requester, task_type=TaskType.TEXT_CLASSIFICATION)
    rows = "\n".join(f"text number {i}" for i in range(10))
    csv_bytes = f"text\n{rows}\n,\n".encode()  # the last row is empty: the file is rejected
    job = import_job_create(
        campaign=campaign, user=requester, upload=SimpleUploadedFile("t.csv", csv_bytes)
    )
    done = import_job_run(job_id=job.pk)
    assert done is not None
    assert done.status == ImportStatus.FAILED
    assert "empty" in done.error
    assert done.processed == 9  # three batches had committed before the bad row
    assert not Item.objects.filter(campaign=campaign).exists()


def test_import_existing_cids(campaign: Campaign) -> None:
    store = get_store()
    cids = [store.put_bytes(png_bytes(i)).cid for i in range(3)]
    text_blob = store.put_bytes(b"not an image").cid
    # Blobs of the requester's own: items of another campaign of theirs.
    mine = CampaignFactory.create(owner=campaign.owner)
    for cid in [*cids, text_blob]:
        ItemFactory.create(campaign=mine, cid=cid)
    lines = [
        json.dumps({"cid": c, "filename": f"f{i}.png", "gold_label": "cat" if i == 0 else ""})
        for i, c in enumerate(cids)
    ]
    lines += [
        json.dumps({"cid": text_blob}),
        json.dumps({"cid": "bafkreinotarealcid"}),
        json.dumps({"cid": "bafkreihzg3z2b4qviggswvajxfwmsbyndfvhbn3np4ilx4dqs66sfq6rxm"}),
    ]
    upload = SimpleUploadedFile("cids.jsonl", "\n".join(lines).encode())
    job = import_job_create(campaign=campaign, user=campaign.owner, upload=upload)
    assert job.kind == "cids"
    done = import_job_run(job_id=job.pk)
    assert done is not None
    assert (done.status, done.created) == (ImportStatus.DONE, 3)
    reasons = [r["reason"] for r in done.rejected]
    assert "not an image" in reasons[0]
    assert "CIDv1" in reasons[1]
    assert "not in the content store" in reasons[2]
    assert Item.objects.get(campaign=campaign, cid=cids[0]).gold_label == "cat"
    assert set(Item.objects.filter(campaign=campaign).values_list("cid", flat=True)) == set(cids)


def test_a_cid_alone_does_not_import_someone_elses_blob(
    campaign: Campaign, requester: User
) -> None:
    """Issue 15, item 1: requester Y imports requester X's CID into Y's own campaign; before the
    fix the import took it and /ipfs/{cid} then served X's image to Y. The answer is the one for
    a CID the store does not hold, so that the import is no oracle either."""
    theirs = CampaignFactory.create()  # requester X's, with an uploaded image
    secret = get_store().put_bytes(png_bytes(7)).cid
    ItemFactory.create(campaign=theirs, cid=secret)
    assert client_for(requester).get(f"/ipfs/{secret}").status_code == 404
    missing = "bafkreihzg3z2b4qviggswvajxfwmsbyndfvhbn3np4ilx4dqs66sfq6rxm"
    lines = [json.dumps({"cid": secret}), json.dumps({"cid": missing})]
    upload = SimpleUploadedFile("cids.jsonl", "\n".join(lines).encode())
    job = import_job_create(campaign=campaign, user=requester, upload=upload)
    done = import_job_run(job_id=job.pk)
    assert done is not None
    assert (done.status, done.created) == (ImportStatus.FAILED, 0)
    assert done.error == "no file could be imported"
    reasons = [r["reason"] for r in done.rejected]
    assert reasons[0].replace(secret, "CID").replace("line 1", "line N") == reasons[1].replace(
        missing, "CID"
    ).replace("line 2", "line N")
    assert "not yours to import" in reasons[0]
    assert not Item.objects.filter(campaign=campaign).exists()
    assert client_for(requester).get(f"/ipfs/{secret}").status_code == 404


def test_import_input_errors(campaign: Campaign, contributor: User) -> None:
    owner = client_for(campaign.owner)
    url = f"/api/campaigns/{campaign.pk}/imports/"
    assert owner.post(url, {}, format="multipart").json()["error"]["code"] == "no_files"
    wrong = owner.post(
        url, {"file": SimpleUploadedFile("t.csv", b"text\nhello\n")}, format="multipart"
    )
    assert wrong.json()["error"]["code"] == "wrong_upload_kind"
    denied = client_for(contributor).post(
        url, {"file": SimpleUploadedFile("z.zip", images_zip(1))}, format="multipart"
    )
    assert denied.status_code == 403
    assert not ImportJob.objects.exists()
    assert owner.get("/api/imports/999/").status_code == 404


# -- texts, a batch at a time (issue 22) ---------------------------------------------------------

HELLO_TEXT = "hello dapp reward manifest\n"  # DESIGN.md's 27-byte vector
HELLO_CID = "bafkreihzg3z2b4qviggswvajxfwmsbyndfvhbn3np4ilx4dqs66sfq6rxm"


def kubo_cid(text: str) -> str:
    # The streaming importer, not the one-chunk shortcut the import takes.
    importer = Importer()
    importer.write(text.encode("utf-8"))
    return importer.finish().cid


def jsonl(*rows: object) -> bytes:
    return "\n".join(json.dumps(row) for row in rows).encode() + b"\n"


@pytest.fixture
def text_campaign(requester: User) -> Campaign:
    return CampaignFactory.create(owner=requester, task_type=TaskType.TEXT_CLASSIFICATION)


def test_text_import_through_the_api_dedupes_across_and_within_batches(
    text_campaign: Campaign,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Any,
) -> None:
    monkeypatch.setattr(imports, "JOB_BATCH", 4)
    TextItemFactory.create(
        campaign=text_campaign, text="already here", cid=kubo_cid("already here")
    )
    emoji = 'naïve 東京 \U0001f600 \u2028 tab\tquote" backslash\\'
    rows = [
        {"text": "first", "gold_label": "cat", "source": "a", "n": 1},
        {"text": HELLO_TEXT},
        {"text": "first", "source": "a repeat in its own batch"},
        {"text": emoji, "nested": {"k": [1, "two", None]}},
        # second batch
        {"text": "already here"},
        {"text": "fifth"},
        {"text": HELLO_TEXT},  # met in the first batch
        {"text": "seventh"},
        # third batch
        {"text": "ninth"},
    ]
    client = client_for(text_campaign.owner)
    upload = SimpleUploadedFile("texts.jsonl", jsonl(*rows))
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            f"/api/campaigns/{text_campaign.pk}/imports/", {"file": upload}, format="multipart"
        )
    assert response.status_code == 202, response.content
    job = client.get(f"/api/imports/{response.json()['id']}/").json()
    assert job["status"] == "done"
    assert (job["total"], job["processed"], job["created"], job["duplicates"]) == (9, 9, 6, 3)
    assert job["rejected_count"] == 0

    imported = list(
        Item.objects.filter(campaign=text_campaign, import_job_id=job["id"]).order_by("id")
    )
    # In the file's order, the first of each text kept, every one open and Kubo's CID.
    assert [i.text for i in imported] == ["first", HELLO_TEXT, emoji, "fifth", "seventh", "ninth"]
    assert {i.status for i in imported} == {ItemStatus.OPEN}
    assert [i.cid for i in imported] == [kubo_cid(i.text) for i in imported]
    assert imported[1].cid == HELLO_CID
    first, _, unicode_item, *_ = imported
    assert (first.gold_label, first.metadata) == ("cat", {"source": "a", "n": 1})
    assert unicode_item.metadata == {"nested": {"k": [1, "two", None]}}
    assert unicode_item.size == len(emoji.encode("utf-8"))
    assert (first.filename, first.media_type) == ("texts.jsonl", "text/plain; charset=utf-8")
    assert (first.priority, first.slots_taken, first.label_count, first.completed_at) == (
        0,
        0,
        0,
        None,
    )
    assert first.created_at is not None
    store = get_store()
    assert all(store.read_bytes(i.cid) == i.text.encode("utf-8") for i in imported)
    # A pin row per new item, made good by the one ensure_pins the job queued (eager here).
    pins = Pin.objects.filter(cid__in=[i.cid for i in imported])
    assert sorted(p.cid for p in pins) == sorted(i.cid for i in imported)
    assert {p.status for p in pins} == {PinStatus.PINNED}
    text_campaign.refresh_from_db()
    assert text_campaign.item_count == 6


def test_a_text_import_wakes_the_pin_worker_once(
    text_campaign: Campaign, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(imports, "JOB_BATCH", 2)
    queued: list[str] = []
    monkeypatch.setattr(pins, "enqueue_on_commit", lambda name, *args: queued.append(name))
    upload = SimpleUploadedFile("t.jsonl", jsonl(*({"text": f"t{i}"} for i in range(7))))
    job = import_job_create(campaign=text_campaign, user=text_campaign.owner, upload=upload)
    done = import_job_run(job_id=job.pk)
    assert done is not None
    assert (done.status, done.created) == (ImportStatus.DONE, 7)
    assert queued == ["storage.ensure_pins"]  # four batches of pin rows, one wake at the end
    assert Pin.objects.filter(status=PinStatus.PENDING).count() == 7


def test_a_crash_while_storing_texts_resumes_without_duplicates(
    text_campaign: Campaign, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(imports, "JOB_BATCH", 3)
    upload = SimpleUploadedFile("t.jsonl", jsonl(*({"text": f"text {i}"} for i in range(8))))
    job = import_job_create(campaign=text_campaign, user=text_campaign.owner, upload=upload)
    real_put_many = LocalStore.put_many
    calls = {"n": 0}

    def crash_on_second(self: LocalStore, blobs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("disk gone")
        return real_put_many(self, blobs)

    monkeypatch.setattr(LocalStore, "put_many", crash_on_second)
    with pytest.raises(OSError, match="disk gone"):
        import_job_run(job_id=job.pk)
    job.refresh_from_db()
    assert (job.status, job.processed, job.created) == (ImportStatus.RUNNING, 3, 3)
    assert Item.objects.filter(campaign=text_campaign, status=ItemStatus.STAGED).count() == 3

    finished = import_job_run(job_id=job.pk)
    assert finished is not None
    assert (finished.status, finished.processed, finished.created, finished.duplicates) == (
        ImportStatus.DONE,
        8,
        8,
        0,
    )
    items = Item.objects.filter(campaign=text_campaign).order_by("id")
    assert [i.text for i in items] == [f"text {i}" for i in range(8)]
    assert Pin.objects.filter(cid__in=[i.cid for i in items]).count() == 8


@pytest.mark.parametrize(
    ("bad_row", "reason"),
    [
        ({"text": "a NUL \u0000 inside"}, "line 5: a value contains a NUL character"),
        ({"text": "fine", "meta": {"k": "\u0000"}}, "line 5: a value contains a NUL character"),
        ({"text": "   "}, "line 5: text is empty or missing"),
    ],
)
def test_a_bad_row_in_a_later_batch_fails_the_import_and_leaves_nothing(
    text_campaign: Campaign,
    monkeypatch: pytest.MonkeyPatch,
    bad_row: dict[str, object],
    reason: str,
) -> None:
    monkeypatch.setattr(imports, "JOB_BATCH", 2)
    rows = [{"text": f"ok {i}"} for i in range(4)] + [bad_row, {"text": "after"}]
    upload = SimpleUploadedFile("t.jsonl", jsonl(*rows))
    job = import_job_create(campaign=text_campaign, user=text_campaign.owner, upload=upload)
    done = import_job_run(job_id=job.pk)
    assert done is not None
    assert done.status == ImportStatus.FAILED
    assert reason in done.error
    assert not Item.objects.filter(campaign=text_campaign).exists()


def test_a_literal_backslash_u0000_is_text_not_nul(text_campaign: Campaign) -> None:
    text = "the escape \\u0000 written out"
    upload = SimpleUploadedFile("t.jsonl", jsonl({"text": text}))
    job = import_job_create(campaign=text_campaign, user=text_campaign.owner, upload=upload)
    done = import_job_run(job_id=job.pk)
    assert done is not None
    assert done.status == ImportStatus.DONE
    assert Item.objects.get(campaign=text_campaign).text == text


def draft(text: str, **fields: Any) -> Draft:
    data = text.encode()
    return Draft(
        cid=kubo_cid(text),
        media_type="text/plain",
        size=len(data),
        filename="f",
        text=text,
        **fields,
    )


def test_items_insert_staged_skips_what_the_campaign_has(text_campaign: Campaign) -> None:
    job = ImportJobFactory.create(campaign=text_campaign, kind=ImportKind.TEXTS)
    other_campaign = CampaignFactory.create(task_type=TaskType.TEXT_CLASSIFICATION)
    TextItemFactory.create(campaign=text_campaign, text="old", cid=kubo_cid("old"))
    TextItemFactory.create(campaign=other_campaign, text="elsewhere", cid=kubo_cid("elsewhere"))
    drafts = [
        draft("b", gold_label="cat", metadata={"x": 1}),
        draft("old"),
        draft("a"),
        draft("b", metadata={"x": 2}),  # a repeat: the first one wins
        draft("elsewhere"),  # in another campaign only: not a duplicate here
    ]
    created = imports.items_insert_staged(job=job, drafts=drafts)
    assert created == [kubo_cid("b"), kubo_cid("a"), kubo_cid("elsewhere")]
    rows = list(Item.objects.filter(import_job=job).order_by("id"))
    assert [r.text for r in rows] == ["b", "a", "elsewhere"]
    assert {(r.status, r.campaign_id) for r in rows} == {(ItemStatus.STAGED, text_campaign.pk)}
    assert (rows[0].gold_label, rows[0].metadata) == ("cat", {"x": 1})
    assert imports.items_insert_staged(job=job, drafts=drafts) == []  # everything is there now
    assert imports.items_insert_staged(job=job, drafts=[]) == []
    assert Item.objects.filter(campaign=text_campaign).count() == 4


def test_rows_commit_only_after_their_blobs_are_synced(
    text_campaign: Campaign, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Texts are stored a batch ahead, in a second thread, while the batch before commits; the
    # order that makes a crash safe must hold all the same: a row never commits before the sync
    # that makes its blob durable.
    from storage import blockstore

    monkeypatch.setattr(imports, "JOB_BATCH", 3)
    written: set[str] = set()
    synced: set[str] = set()
    threads: set[str] = set()
    real_put_many = blockstore.FlatFsBlockstore.put_many

    def recording_put_many(self: Any, blocks: Any) -> int:
        blocks = list(blocks)
        threads.add(threading.current_thread().name)
        written.update(cid for cid, _ in blocks)
        return real_put_many(self, blocks)

    def recording_sync(root: Any) -> None:
        synced.update(written)

    real_commit = imports._commit_batch

    def checking_commit(job: Any, drafts: Any, rejected: Any, n: int) -> None:
        assert drafts
        assert {d.cid for d in drafts} <= synced
        real_commit(job, drafts, rejected, n)

    monkeypatch.setattr(blockstore.FlatFsBlockstore, "put_many", recording_put_many)
    monkeypatch.setattr(blockstore, "_sync_filesystem", recording_sync)
    monkeypatch.setattr(imports, "_commit_batch", checking_commit)
    before = threading.active_count()
    upload = SimpleUploadedFile("t.jsonl", jsonl(*({"text": f"s{i}"} for i in range(10))))
    job = import_job_create(campaign=text_campaign, user=text_campaign.owner, upload=upload)
    done = import_job_run(job_id=job.pk)
    assert done is not None
    assert (done.status, done.created) == (ImportStatus.DONE, 10)
    assert len(synced) == 10
    assert all(name.startswith("import-store") for name in threads)
    assert threading.active_count() == before  # the writer thread is gone with its job


def test_a_bad_gold_label_stops_the_import_and_its_writer(
    text_campaign: Campaign, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(imports, "JOB_BATCH", 2)
    rows = [{"text": f"g{i}", "gold_label": "cat"} for i in range(5)]
    rows.append({"text": "bad gold", "gold_label": "unicorn"})
    rows += [{"text": f"after {i}"} for i in range(5)]
    before = threading.active_count()
    upload = SimpleUploadedFile("t.jsonl", jsonl(*rows))
    job = import_job_create(campaign=text_campaign, user=text_campaign.owner, upload=upload)
    done = import_job_run(job_id=job.pk)
    assert done is not None
    assert done.status == ImportStatus.FAILED
    assert "unicorn" in done.error
    assert not Item.objects.filter(campaign=text_campaign).exists()
    assert threading.active_count() == before
