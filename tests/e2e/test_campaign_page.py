"""The requester's campaign page in a real browser: uploads, progress bars, results, live counters.

Debian's Chromium through Playwright against pytest-django's live server (see conftest.py). Celery
is eager in tests: the import job runs when the upload's transaction commits, inside the request, so
the page sees a 202 for a job that is already finished by its first poll; it must handle that.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, Route

from accounts.models import Role, User
from labeling.models import Campaign, ImportJob, ImportStatus, Item, ItemStatus, TaskType
from tests.accounts.factories import UserFactory
from tests.e2e.test_label_page import make_campaign, sign_in
from tests.labeling.factories import png_bytes, set_label_count, zip_bytes

pytestmark = pytest.mark.services

# A fixed, well-known name, so a person can look at the page after a run; it holds nothing secret.
SCREENSHOT = "/tmp/kyodo-campaign.png"  # noqa: S108
GARBAGE_PNG = b"\x89PNG\r\n\x1a\n" + b"garbage after the header" * 40
# Records what the page shows while it works: every upload state and every bar value, in order.
WATCH_JS = """() => {
  window.__seen = { states: [], upload: [], import: [] };
  const record = (list, value) => {
    if (value !== null && list[list.length - 1] !== value) list.push(value);
  };
  const panel = document.getElementById("upload");
  const bars = {
    upload: document.getElementById("upload-bar"),
    import: document.getElementById("import-bar"),
  };
  new MutationObserver(() => {
    record(window.__seen.states, panel.dataset.state);
    record(window.__seen.upload, bars.upload.getAttribute("aria-valuenow"));
    record(window.__seen.import, bars.import.getAttribute("aria-valuenow"));
  }).observe(panel, { subtree: true, attributes: true });
}"""
# The bar's fill really covers the bar (a CSS clash once hid it while aria-valuenow said 100).
FILLED_JS = """(id) => {
  const bar = document.getElementById(id);
  const fill = bar.querySelector(".fill").getBoundingClientRect().width;
  const width = bar.getBoundingClientRect().width;
  return width > 100 && fill >= width - 0.5;
}"""
SETTLED_JS = """() => {
  return ["done", "failed", "error"].includes(document.getElementById("upload").dataset.state);
}"""


@pytest.fixture
def owner(transactional_db: None) -> User:
    return UserFactory.create(role=Role.REQUESTER)


def update_campaign(campaign: Campaign, **fields: Any) -> None:
    """Write as another process would, while the page polls the live server."""
    Campaign.objects.filter(pk=campaign.pk).update(**fields)


def open_campaign_page(page: Page, base_url: str, campaign: Campaign) -> None:
    sign_in(page, base_url, campaign.owner)
    page.goto(f"{base_url}/campaigns/{campaign.pk}/")
    page.evaluate(WATCH_JS)


def upload_and_wait(page: Page, files: list[Path]) -> str:
    """Choose the files, press Upload, wait until the panel settles; returns its final state."""
    page.set_input_files("#files", [str(f) for f in files])
    upload = page.get_by_role("button", name="Upload")
    assert upload.is_enabled()
    upload.click()
    page.wait_for_function(SETTLED_JS)
    return page.locator("#upload").get_attribute("data-state") or ""


def result(page: Page) -> tuple[str, str, str]:
    return (
        page.locator("#result-created").inner_text(),
        page.locator("#result-duplicates").inner_text(),
        page.locator("#result-rejected").inner_text(),
    )


def rejected_rows(page: Page) -> list[tuple[str, str]]:
    rows = page.locator("#rejected-rows tr")
    return [
        (row.locator("td").nth(0).inner_text(), row.locator("td").nth(1).inner_text())
        for row in rows.all()
    ]


def wait_for_stat(page: Page, stat: str, value: str) -> None:
    page.wait_for_function(
        "([id, v]) => document.getElementById(id).textContent === v", arg=[f"stat-{stat}", value]
    )


def wait_for_imports(page: Page, count: int, newest: str) -> None:
    """The recent-imports list refreshes after an upload settles: wait for `count` rows."""
    page.wait_for_function(
        """([count, newest]) => {
          const rows = document.querySelectorAll("#import-rows tr");
          return rows.length === count && rows[0].dataset.status === newest;
        }""",
        arg=[count, newest],
    )


def test_upload_a_zip_through_the_page(
    page: Page, live_server: Any, owner: User, tmp_path: Path
) -> None:
    campaign = make_campaign(owner=owner, task_type=TaskType.IMAGE_CLASSIFICATION)
    members = {f"img/pet{i:02}.png": png_bytes(i, size=(64, 48)) for i in range(20)}
    members["img/broken.png"] = GARBAGE_PNG
    members["notes.txt"] = b"not an image at all\n"
    archive = tmp_path / "batch.zip"
    archive.write_bytes(zip_bytes(members))
    open_campaign_page(page, live_server.url, campaign)
    assert page.locator("#stat-items").inner_text() == "0"
    assert page.locator("#no-imports").is_visible()

    page.set_input_files("#files", str(archive))
    assert "batch.zip" in page.locator("#selection").inner_text()
    assert "imported in the background" in page.locator("#selection").inner_text()
    page.get_by_role("button", name="Upload").click()
    page.wait_for_function(SETTLED_JS)
    assert page.locator("#upload").get_attribute("data-state") == "done"

    # Bytes first, then the job: both bars went to 100%, through the states in order.
    seen = page.evaluate("window.__seen")
    assert seen["states"][:3] == ["uploading", "importing", "done"], seen
    assert seen["upload"][-1] == "100", seen
    assert seen["import"][-1] == "100", seen
    assert page.locator("#upload-bar").get_attribute("aria-valuenow") == "100"
    assert page.locator("#import-bar").get_attribute("aria-valuenow") == "100"
    assert page.locator("#import-text").inner_text() == "22 of 22 files · 100%"
    page.wait_for_function(FILLED_JS, arg="upload-bar")
    page.wait_for_function(FILLED_JS, arg="import-bar")
    assert "of" in page.locator("#upload-text").inner_text()

    # The result: 20 items, and both bad files by name with a reason.
    assert result(page) == ("20", "0", "2")
    rejected = dict(rejected_rows(page))
    assert set(rejected) == {"batch.zip/img/broken.png", "batch.zip/notes.txt"}
    assert all(reason for reason in rejected.values())
    assert page.locator("#rejected").is_visible()
    assert not page.locator("#upload-error").is_visible()

    # The campaign's counters and the imports list caught up without a reload.
    wait_for_stat(page, "items", "20")
    assert page.locator("#stat-open").inner_text() == "20"
    assert page.locator("#stat-completed").inner_text() == "0"
    wait_for_imports(page, 1, "done")
    assert "batch.zip" in page.locator("#import-rows tr").first.inner_text()
    assert not page.locator("#no-imports").is_visible()
    page.screenshot(path=SCREENSHOT, full_page=True)

    job = ImportJob.objects.get(campaign=campaign)
    assert (job.status, job.created, len(job.rejected), job.rejected_count) == (
        ImportStatus.DONE,
        20,
        2,
        2,
    )
    assert Item.objects.filter(campaign=campaign, status=ItemStatus.OPEN).count() == 20

    # The same zip again: every image is a duplicate, and the page says so.
    assert upload_and_wait(page, [archive]) == "done"
    assert result(page) == ("0", "20", "2")
    wait_for_imports(page, 2, "done")

    # Any import's outcome can be looked at again from the list.
    page.locator("#import-rows tr").nth(1).get_by_role("button", name="Details").click()
    page.wait_for_function(
        "(id) => document.getElementById('import-title').textContent.startsWith(`Import #${id} `)",
        arg=job.pk,
    )
    page.wait_for_function(SETTLED_JS)
    assert result(page) == ("20", "0", "2")
    assert len(rejected_rows(page)) == 2
    assert Item.objects.filter(campaign=campaign).count() == 20


def test_upload_loose_images_through_the_page(
    page: Page, live_server: Any, owner: User, tmp_path: Path
) -> None:
    campaign = make_campaign(owner=owner, task_type=TaskType.IMAGE_CLASSIFICATION)
    files = []
    for i in range(6):
        path = tmp_path / f"cat{i}.png"
        path.write_bytes(png_bytes(100 + i, size=(80, 60)))
        files.append(path)
    fake = tmp_path / "fake.png"
    fake.write_bytes(GARBAGE_PNG)
    open_campaign_page(page, live_server.url, campaign)

    # A zip goes on its own: mixed with images, the page says why it will not send them.
    archive = tmp_path / "more.zip"
    archive.write_bytes(zip_bytes({"a.png": png_bytes(1)}))
    page.set_input_files("#files", [str(files[0]), str(archive)])
    assert "on its own" in page.locator("#selection").inner_text()
    assert page.get_by_role("button", name="Upload").is_disabled()

    assert upload_and_wait(page, [*files, fake]) == "done"
    assert result(page) == ("6", "0", "1")
    assert [name for name, _ in rejected_rows(page)] == ["fake.png"]
    assert page.locator("#upload-bar").get_attribute("aria-valuenow") == "100"
    assert not page.locator("#import-meter").is_visible()  # stored within the request: no job
    wait_for_stat(page, "items", "6")
    assert Item.objects.filter(campaign=campaign).count() == 6
    # The form is ready for the next upload.
    assert page.locator("#selection").inner_text() == ""
    assert page.get_by_role("button", name="Upload").is_disabled()

    # Contributors label meanwhile: the page refreshes its counters and bar on its own.
    update_campaign(campaign, completed_count=3)
    set_label_count(campaign, 7)
    wait_for_stat(page, "completed", "3")
    assert page.locator("#stat-labels").inner_text() == "7"
    assert page.locator("#stat-open").inner_text() == "3"
    assert page.locator("#campaign-bar").get_attribute("aria-valuenow") == "50"
    assert page.locator("#bar-done").get_attribute("width") == "50"


def test_dropped_files_are_uploaded(page: Page, live_server: Any, owner: User) -> None:
    campaign = make_campaign(owner=owner, task_type=TaskType.IMAGE_CLASSIFICATION)
    open_campaign_page(page, live_server.url, campaign)
    images = [base64.b64encode(png_bytes(200 + i)).decode() for i in range(3)]
    page.evaluate(
        """(images) => {
          const dt = new DataTransfer();
          images.forEach((b64, i) => {
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            dt.items.add(new File([bytes], `dropped${i}.png`, { type: "image/png" }));
          });
          const zone = document.getElementById("dropzone");
          const init = { dataTransfer: dt, bubbles: true, cancelable: true };
          zone.dispatchEvent(new DragEvent("dragover", init));
          zone.dispatchEvent(new DragEvent("drop", init));
        }""",
        images,
    )
    assert "3 images" in page.locator("#selection").inner_text()
    assert page.evaluate("document.activeElement.id") == "upload-button"
    page.keyboard.press("Enter")
    page.wait_for_function(SETTLED_JS)
    assert result(page) == ("3", "0", "0")
    assert not page.locator("#rejected").is_visible()
    wait_for_stat(page, "items", "3")


def test_api_errors_read_as_messages(
    page: Page, live_server: Any, owner: User, tmp_path: Path
) -> None:
    campaign = make_campaign(owner=owner, task_type=TaskType.IMAGE_CLASSIFICATION)
    open_campaign_page(page, live_server.url, campaign)

    # Nothing could be imported (400 all_files_rejected): the message, and every file's reason.
    bad = [tmp_path / "a.png", tmp_path / "b.jpg"]
    for path in bad:
        path.write_bytes(GARBAGE_PNG)
    assert upload_and_wait(page, bad) == "failed"
    assert page.get_by_role("alert").inner_text() == "No file could be imported"
    assert result(page) == ("0", "0", "2")
    assert [name for name, _ in rejected_rows(page)] == ["a.png", "b.jpg"]

    # A CSV sent to an image campaign: the API's own sentence, not JSON or a bare status.
    texts = tmp_path / "texts.csv"
    texts.write_text("text\nhello\n")
    assert upload_and_wait(page, [texts]) == "error"
    assert page.get_by_role("alert").inner_text() == (
        "An image campaign imports a zip of images or a JSONL of CIDs"
    )
    assert not page.locator("#result").is_visible()

    # A zip of nothing usable: the job fails, and says why.
    archive = tmp_path / "junk.zip"
    archive.write_bytes(zip_bytes({"junk.txt": b"junk"}))
    assert upload_and_wait(page, [archive]) == "failed"
    assert page.get_by_role("alert").inner_text() == "The import failed: no file could be imported."
    assert [name for name, _ in rejected_rows(page)] == ["junk.zip/junk.txt"]
    wait_for_imports(page, 1, "failed")
    assert Item.objects.filter(campaign=campaign).count() == 0


def test_import_progress_while_a_worker_runs(
    page: Page, live_server: Any, owner: User, tmp_path: Path
) -> None:
    """With a real worker the first polls see the job queued, then running: the bar follows it.

    Celery is eager here, so the job is done by the first poll; the first answers are replaced by
    what a worker part-way through would report, then the real API answers.
    """
    campaign = make_campaign(owner=owner, task_type=TaskType.IMAGE_CLASSIFICATION)
    archive = tmp_path / "slow.zip"
    archive.write_bytes(zip_bytes({f"p{i}.png": png_bytes(300 + i) for i in range(4)}))
    open_campaign_page(page, live_server.url, campaign)
    stages: list[dict[str, Any]] = [
        {"status": "running", "total": None, "processed": 0},
        {"status": "running", "total": 4, "processed": 2},
    ]
    polls: list[str] = []

    def poll(route: Route) -> None:
        polls.append(route.request.url)
        if len(polls) > len(stages):
            route.continue_()
            return
        real: dict[str, Any] = route.fetch().json()
        route.fulfill(json={**real, **stages[len(polls) - 1], "created": 0, "rejected_count": 0})

    page.route("**/api/imports/*/", poll)
    assert upload_and_wait(page, [archive]) == "done"
    seen = page.evaluate("window.__seen")
    # queued (the 202) → unknown total (no value: indeterminate) → 50% → 100%
    assert seen["import"][-2:] == ["50", "100"], seen
    assert len(polls) == 3
    assert result(page) == ("4", "0", "0")


def test_a_long_list_of_rejected_files_pages_in_with_a_click(
    page: Page, live_server: Any, owner: User, tmp_path: Path
) -> None:
    """An import shows its first page of rejected files; "Show more rejected files" brings the
    rest from the import's paged list (GET /api/imports/{id}/rejected/), then goes away."""
    campaign = make_campaign(owner=owner, task_type=TaskType.IMAGE_CLASSIFICATION)
    members = {f"notes/{i:03}.txt": f"not an image {i}\n".encode() for i in range(205)}
    members["img/pet.png"] = png_bytes(7, size=(32, 32))
    archive = tmp_path / "many.zip"
    archive.write_bytes(zip_bytes(members))
    open_campaign_page(page, live_server.url, campaign)

    assert upload_and_wait(page, [archive]) == "done"
    assert result(page) == ("1", "0", "205")
    more = page.get_by_role("button", name="Show more rejected files")
    more.wait_for(state="visible")
    assert len(rejected_rows(page)) == 200

    more.click()
    more.wait_for(state="hidden")
    names = [name for name, _ in rejected_rows(page)]
    assert len(names) == 205
    assert len(set(names)) == 205
    assert names[-1] == "many.zip/notes/204.txt"
