"""The labeling page in a real browser: sign in, label with the keyboard only, check the database.

Debian's Chromium through Playwright against pytest-django's live server (see conftest.py).
"""

from __future__ import annotations

from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile, UploadedFile
from playwright.sync_api import Page

from accounts.models import Role, User
from labeling import services as labeling_services
from labeling.models import (
    Annotation,
    Assignment,
    AssignmentStatus,
    Campaign,
    CampaignStatus,
    Item,
    TaskType,
)
from labeling.schema import normalize_schema
from tests.accounts.factories import PASSWORD, UserFactory
from tests.labeling.factories import png_bytes

pytestmark = pytest.mark.services

CLASSES = ["cat", "dog", "bird"]
KEY_FOR = {name: str(n) for n, name in enumerate(CLASSES, start=1)}
# A fixed, well-known name, so a person can look at the page after a run; it holds nothing secret.
SCREENSHOT = "/tmp/kyodo-label.png"  # noqa: S108
# Waits on #workspace: label.js sets its data-state and data-item-id.
NEXT_ITEM_JS = """(previous) => {
  const w = document.getElementById("workspace");
  const state = w.dataset.state;
  return state === "done" || (state === "ready" && w.dataset.itemId !== previous);
}"""


def make_campaign(*, owner: User, task_type: str, **extra: Any) -> Campaign:
    return Campaign.objects.create(
        owner=owner,
        title=extra.pop("title", "Pets"),
        instructions=extra.pop("instructions", "Pick the animal in the picture."),
        task_type=task_type,
        label_schema=normalize_schema(CLASSES, task_type=task_type),
        min_labels=2,
        max_labels=3,
        **extra,
    )


def upload_images(campaign: Campaign, count: int) -> dict[int, str]:
    """Real PNGs through the upload service; returns {item id: cid}."""
    files: list[UploadedFile] = [
        SimpleUploadedFile(f"pet{i}.png", png_bytes(i, size=(320, 240)), content_type="image/png")
        for i in range(count)
    ]
    result = labeling_services.items_upload(campaign=campaign, files=files)
    assert (result.created, result.rejected) == (count, [])
    return dict(Item.objects.filter(campaign=campaign).values_list("id", "cid"))


def sign_in(page: Page, base_url: str, user: User) -> None:
    page.goto(f"{base_url}/login/")
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(f"{base_url}/")


def wait_for_next(page: Page, previous: str | None) -> tuple[str, str | None]:
    """(state, item id) once the page shows an item other than `previous`, or says it is done."""
    page.wait_for_function(NEXT_ITEM_JS, arg=previous)
    workspace = page.locator("#workspace")
    state = workspace.get_attribute("data-state")
    assert state is not None
    return state, workspace.get_attribute("data-item-id")


def label_with_keys(page: Page, keys: list[str], on_item: Any = None) -> list[tuple[int, str]]:
    """Press one key per item, waiting for each next item; returns [(item id, key)] in order."""
    pressed: list[tuple[int, str]] = []
    state, item_id = wait_for_next(page, None)
    for key in keys:
        assert state == "ready", f"page is {state} with keys left to press"
        assert item_id is not None
        if on_item is not None:
            on_item(int(item_id))
        page.keyboard.press(key)
        pressed.append((int(item_id), key))
        state, item_id = wait_for_next(page, item_id)
    return pressed


def assert_stored(*, campaign: Campaign, worker: User, pressed: list[tuple[int, str]]) -> None:
    by_key = {key: name for name, key in KEY_FOR.items()}
    expected = {item_id: by_key[key] for item_id, key in pressed}
    assert len(expected) == len(pressed), f"an item was shown twice: {pressed}"
    stored = Annotation.objects.filter(item__campaign=campaign)
    assert {a.item_id: a.label for a in stored} == expected
    assert {a.worker_id for a in stored} == {worker.pk}
    assert all(a.value == {"label": a.label} and a.duration_ms is not None for a in stored)
    # Exactly these leases were submitted, all by this worker: nothing was labeled behind the page.
    submitted = Assignment.objects.filter(campaign=campaign, status=AssignmentStatus.SUBMITTED)
    assert sorted(submitted.values_list("item_id", "worker_id")) == sorted(
        (i, worker.pk) for i in expected
    )


@pytest.fixture
def requester_user(transactional_db: None) -> User:
    return UserFactory.create(role=Role.REQUESTER)


@pytest.fixture
def worker(transactional_db: None) -> User:
    return UserFactory.create(role=Role.CONTRIBUTOR)


def test_label_images_with_the_keyboard(
    page: Page, live_server: Any, requester_user: User, worker: User
) -> None:
    campaign = make_campaign(owner=requester_user, task_type=TaskType.IMAGE_CLASSIFICATION)
    cids = upload_images(campaign, 6)
    sign_in(page, live_server.url, worker)
    page.goto(f"{live_server.url}/label/{campaign.pk}/")

    # The hotkeys are on the buttons, and the buttons say what they do.
    for name, key in KEY_FOR.items():
        button = page.get_by_role("button", name=name)
        assert button.get_attribute("aria-keyshortcuts") == key
        assert button.locator("kbd").inner_text() == key

    media = page.locator("#media")

    def check_image(item_id: int) -> None:
        assert media.get_attribute("src") == f"/ipfs/{cids[item_id]}"
        size = media.evaluate("img => [img.complete, img.naturalWidth, img.naturalHeight]")
        assert size == [True, 320, 240], f"item {item_id}: the image did not render ({size})"
        assert media.is_visible()
        if len(shown) == 2:
            page.screenshot(path=SCREENSHOT, full_page=True)
        shown.append(item_id)

    shown: list[int] = []
    keys = ["1", "2", "3", "1", "2", "3"]
    pressed = label_with_keys(page, keys, on_item=check_image)

    # Six items, six keys: nothing is left for this contributor.
    workspace = page.locator("#workspace")
    assert workspace.get_attribute("data-state") == "done"
    assert page.locator("#empty").is_visible()
    assert "Nothing left for you to label" in page.locator("#empty").inner_text()
    assert page.locator("button.cls:disabled").count() == len(CLASSES)
    page.wait_for_function(
        "() => /You labeled 6 items here/.test(document.getElementById('progress').textContent)"
    )
    assert len(set(shown)) == len(shown) == 6
    assert_stored(campaign=campaign, worker=worker, pressed=pressed)
    assert {item_id for item_id, _ in pressed} == set(cids)

    # A reload neither re-serves a labeled item nor loses the count.
    page.reload()
    page.wait_for_function("() => document.getElementById('workspace').dataset.state === 'done'")
    assert "You labeled 6 items here" in page.locator("#progress").inner_text()


def test_label_texts_with_the_keyboard(
    page: Page, live_server: Any, requester_user: User, worker: User
) -> None:
    campaign = make_campaign(
        owner=requester_user, task_type=TaskType.TEXT_CLASSIFICATION, title="Reviews"
    )
    texts = [
        "The cat sat on the mat.",
        'A dog said "woof" — twice, in Ünïcödé.',
        "<b>Not bold</b> & <script>alert(1)</script>",
        "A bird.\nOn two lines.",
    ]
    csv_text = "text,source\n" + "".join('"{}",test\n'.format(t.replace('"', '""')) for t in texts)
    upload = SimpleUploadedFile("texts.csv", csv_text.encode(), content_type="text/csv")
    result = labeling_services.items_upload(campaign=campaign, text_file=upload)
    assert result.created == len(texts)
    text_of = dict(Item.objects.filter(campaign=campaign).values_list("id", "text"))

    sign_in(page, live_server.url, worker)
    page.goto(f"{live_server.url}/label/{campaign.pk}/")
    shown: dict[int, str] = {}

    def check_text(item_id: int) -> None:
        # textContent, never markup: the <script> must arrive as text and do nothing.
        shown[item_id] = page.locator("#text").text_content() or ""
        assert page.locator("#text").is_visible()
        assert not page.locator("#media").is_visible()

    pressed = label_with_keys(page, ["3", "1", "2"], on_item=check_text)
    assert shown == {item_id: text_of[item_id] for item_id, _ in pressed}
    assert page.locator("#stage b, #stage script").count() == 0
    assert page.locator("#workspace").get_attribute("data-state") == "ready"  # one text is left
    assert_stored(campaign=campaign, worker=worker, pressed=pressed)


def test_api_errors_read_as_messages(
    page: Page, live_server: Any, requester_user: User, worker: User
) -> None:
    campaign = make_campaign(owner=requester_user, task_type=TaskType.IMAGE_CLASSIFICATION)
    upload_images(campaign, 2)
    sign_in(page, live_server.url, worker)
    page.goto(f"{live_server.url}/label/{campaign.pk}/")
    state, item_id = wait_for_next(page, None)
    assert state == "ready"

    # The requester pauses the campaign mid-session: the label is saved, the next task is refused.
    Campaign.objects.filter(pk=campaign.pk).update(status=CampaignStatus.PAUSED)
    page.keyboard.press("2")
    page.wait_for_function("() => document.getElementById('workspace').dataset.state === 'error'")
    assert page.get_by_role("alert").is_visible()
    # The API's {"error": {"code", "message"}} as its sentence, not raw JSON or a bare status code.
    assert page.locator("#error-text").inner_text() == "This campaign is not open to you"
    assert page.locator("button.cls:disabled").count() == len(CLASSES)

    # Resumed: "Try again" (focused, so Enter presses it) brings the next item.
    Campaign.objects.filter(pk=campaign.pk).update(status=CampaignStatus.ACTIVE)
    retry = page.get_by_role("button", name="Try again")
    assert retry.evaluate("b => b === document.activeElement")
    page.keyboard.press("Enter")
    state, next_id = wait_for_next(page, item_id)
    assert state == "ready"
    assert next_id != item_id
    assert not page.get_by_role("alert").is_visible()
    assert_stored(campaign=campaign, worker=worker, pressed=[(int(item_id or 0), "2")])
