"""The labeling lists page with cursors: campaigns, a campaign's imports, an import's rejected
files; and an import's poll reads its rejected count from a column, never its list."""

from __future__ import annotations

import re
from importlib import import_module

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import User
from core.pagination import DEFAULT_PAGE_SIZE
from labeling.models import Campaign, CampaignStatus, ImportJob
from labeling.services import import_job_create, import_job_run, imports

from ..conftest import client_for
from ..pages import assert_bad_page_queries, follow_pages
from .factories import CampaignFactory, ImportJobFactory, png_bytes, zip_bytes

pytestmark = pytest.mark.django_db

# The rejected list as a column of a SELECT (not `rejected_count`).
REJECTED_COLUMN = re.compile(r'"labeling_importjob"\."rejected"(?!_)')


def rejections(n: int, prefix: str = "f") -> list[dict[str, str]]:
    return [{"name": f"{prefix}{i:05d}.png", "reason": f"reason {i}"} for i in range(n)]


def test_campaigns_page_through_every_row_once(contributor: User) -> None:
    campaigns = CampaignFactory.create_batch(7, status=CampaignStatus.ACTIVE)
    client = client_for(contributor)
    pages = follow_pages(client, "/api/campaigns/?page_size=3")
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [c["id"] for p in pages for c in p] == sorted((c.pk for c in campaigns), reverse=True)


def test_a_row_created_while_paging_moves_nothing(contributor: User) -> None:
    """Cursor pages are stable under inserts: a new campaign lands before the first page, and the
    pages after the one in hand neither repeat a row nor skip one."""
    older = CampaignFactory.create_batch(5, status=CampaignStatus.ACTIVE)
    client = client_for(contributor)
    first = client.get("/api/campaigns/", {"page_size": 2}).json()
    CampaignFactory.create(status=CampaignStatus.ACTIVE)
    rest = follow_pages(client, first["next"].replace("http://testserver", ""))
    seen = [c["id"] for c in first["results"]] + [c["id"] for p in rest for c in p]
    assert seen == sorted((c.pk for c in older), reverse=True)


def test_previous_link_returns_the_page_before(contributor: User) -> None:
    CampaignFactory.create_batch(5, status=CampaignStatus.ACTIVE)
    client = client_for(contributor)
    first = client.get("/api/campaigns/", {"page_size": 2}).json()
    second = client.get(first["next"]).json()
    assert "page_size=2" in second["next"]  # the page size travels in the links
    back = client.get(second["previous"]).json()
    assert [c["id"] for c in back["results"]] == [c["id"] for c in first["results"]]


def test_campaigns_default_page_size_and_the_bound(staff: User) -> None:
    CampaignFactory.create_batch(DEFAULT_PAGE_SIZE + 1)
    client = client_for(staff)
    first = client.get("/api/campaigns/").json()
    assert len(first["results"]) == DEFAULT_PAGE_SIZE
    assert first["next"] is not None
    assert len(client.get(first["next"]).json()["results"]) == 1
    everything = client.get("/api/campaigns/", {"page_size": 200}).json()
    assert (len(everything["results"]), everything["next"]) == (DEFAULT_PAGE_SIZE + 1, None)
    assert_bad_page_queries(client, "/api/campaigns/")


def test_campaigns_list_shows_only_what_is_open_to_the_caller(contributor: User) -> None:
    active = CampaignFactory.create_batch(3, status=CampaignStatus.ACTIVE)
    CampaignFactory.create_batch(3, status=CampaignStatus.PAUSED)
    pages = follow_pages(client_for(contributor), "/api/campaigns/?page_size=2")
    assert {c["id"] for p in pages for c in p} == {c.pk for c in active}


def test_imports_page_through_every_job_once(campaign: Campaign) -> None:
    jobs = ImportJobFactory.create_batch(5, campaign=campaign)
    ImportJobFactory.create()  # another campaign's
    client = client_for(campaign.owner)
    url = f"/api/campaigns/{campaign.pk}/imports/"
    pages = follow_pages(client, f"{url}?page_size=2")
    assert [len(p) for p in pages] == [2, 2, 1]
    assert [j["id"] for p in pages for j in p] == sorted((j.pk for j in jobs), reverse=True)
    assert_bad_page_queries(client, url)


def test_import_list_and_poll_never_select_the_rejected_list(campaign: Campaign) -> None:
    job = ImportJobFactory.create(campaign=campaign, rejected=rejections(3), rejected_count=3)
    client = client_for(campaign.owner)
    for url in (f"/api/imports/{job.pk}/", f"/api/campaigns/{campaign.pk}/imports/"):
        with CaptureQueriesContext(connection) as queries:
            response = client.get(url)
        assert response.status_code == 200
        body = response.json()
        row = body["results"][0] if "results" in body else body
        assert row["rejected_count"] == 3
        assert "rejected" not in row
        job_queries = [q["sql"] for q in queries if '"labeling_importjob"' in q["sql"]]
        assert job_queries
        assert not [sql for sql in job_queries if REJECTED_COLUMN.search(sql)], job_queries


def test_poll_answers_from_the_column(campaign: Campaign) -> None:
    """The count is the column's, not the list's length (the list holds the first few only)."""
    job = ImportJobFactory.create(campaign=campaign, rejected=rejections(2), rejected_count=7)
    assert client_for(campaign.owner).get(f"/api/imports/{job.pk}/").json()["rejected_count"] == 7


def test_rejected_files_page_through_in_order(campaign: Campaign) -> None:
    listed = rejections(450)
    job = ImportJobFactory.create(campaign=campaign, rejected=listed, rejected_count=450)
    client = client_for(campaign.owner)
    url = f"/api/imports/{job.pk}/rejected/"
    pages = follow_pages(client, f"{url}?page_size=200")
    assert [len(p) for p in pages] == [200, 200, 50]
    assert [r for p in pages for r in p] == listed
    default = client.get(url).json()
    assert default["results"] == listed[:DEFAULT_PAGE_SIZE]
    last = client.get(default["next"]).json()
    back = client.get(last["previous"]).json()
    assert back["results"] == default["results"]
    assert_bad_page_queries(client, url)


def test_rejected_files_page_is_sliced_by_the_database(campaign: Campaign) -> None:
    job = ImportJobFactory.create(campaign=campaign, rejected=rejections(300), rejected_count=300)
    client = client_for(campaign.owner)
    with CaptureQueriesContext(connection) as queries:
        body = client.get(f"/api/imports/{job.pk}/rejected/", {"page_size": 5}).json()
    assert [r["name"] for r in body["results"]] == [f"f{i:05d}.png" for i in range(5)]
    sql = " ".join(q["sql"] for q in queries)
    assert "jsonb_path_query_array" in sql
    assert not REJECTED_COLUMN.search(
        sql.replace('jsonb_path_query_array("labeling_importjob"', "")
    )


def test_empty_rejected_list_and_access(campaign: Campaign, contributor: User) -> None:
    job = ImportJobFactory.create(campaign=campaign)
    url = f"/api/imports/{job.pk}/rejected/"
    assert client_for(campaign.owner).get(url).json() == {
        "next": None,
        "previous": None,
        "results": [],
    }
    assert client_for(contributor).get(url).status_code == 403
    assert client_for(campaign.owner).get("/api/imports/999999/rejected/").status_code == 404


def test_a_run_counts_every_rejection_past_the_listed_ones(
    campaign: Campaign, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(imports, "JOB_BATCH", 2)
    monkeypatch.setattr(imports, "MAX_REJECTED_LISTED", 3)
    members = {f"ok{i}.png": png_bytes(i) for i in range(2)}
    members.update({f"bad{i}.png": b"\x89PNG\r\n\x1a\nnope" for i in range(5)})
    upload = SimpleUploadedFile("mixed.zip", zip_bytes(members))
    job = import_job_create(campaign=campaign, user=campaign.owner, upload=upload)
    done = import_job_run(job_id=job.pk)
    assert done is not None
    assert (done.created, done.rejected_count, len(done.rejected)) == (2, 5, 3)


def test_migration_fills_the_count_from_the_lists(campaign: Campaign) -> None:
    fill = import_module("labeling.migrations.0008_import_rejected_count")._FILL
    three = ImportJobFactory.create(campaign=campaign, rejected=rejections(3))
    none = ImportJobFactory.create(campaign=campaign)
    assert three.rejected_count == 0
    with connection.cursor() as cursor:
        cursor.execute(fill)
    counts = dict(ImportJob.objects.values_list("pk", "rejected_count"))
    assert (counts[three.pk], counts[none.pk]) == (3, 0)
