from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from accounts.models import User
from labeling.models import Campaign, ImportJob, ImportStatus, Item, ItemStatus, TaskType
from labeling.services import import_job_create, import_job_run, imports, task_lease_next
from storage.services import get_store

from ..accounts.factories import UserFactory
from ..conftest import client_for
from .factories import CampaignFactory, png_bytes, zip_bytes

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
    assert Item.objects.get(cid=cids[0]).gold_label == "cat"
    assert set(Item.objects.values_list("cid", flat=True)) == set(cids)


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
