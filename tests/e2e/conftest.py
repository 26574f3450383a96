"""Browser fixtures: Python Playwright (sync API) driving Debian's Chromium against `live_server`.

Never `playwright install`: the browser is the system's /usr/bin/chromium (DESIGN.md, "Facts").
Without it, or when it cannot start, the tests skip locally and fail under KYODO_REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, Error, Page, Playwright, sync_playwright

from tests.conftest import need_service

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Generous for a loaded 2-core CI machine; a healthy page answers in milliseconds.
TIMEOUT_MS = 15_000


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    # Playwright's sync API runs its asyncio loop in a greenlet of the test thread and, between
    # calls, marks that loop as running in this thread (playwright/_impl/_greenlets.py). Django then
    # sees "a running event loop" and refuses every ORM call of the test, and of pytest-django's
    # database teardown, with SynchronousOnlyOperation, although nothing here is async. Allowing it
    # is safe: the test thread never touches the database from a coroutine, and the live server
    # answers in threads of its own. The flag is set only once a browser is wanted, and held as long
    # as the loop lives (this fixture is session-scoped), so runs without e2e tests keep the check.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        try:
            pw = sync_playwright().start()
        except (
            Exception
        ) as exc:  # the driver is a Node process: any failure to start means "not available"
            need_service("chromium", f"the Playwright driver did not start: {exc}")
        yield pw
        pw.stop()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    if not os.access(CHROMIUM, os.X_OK):
        need_service("chromium", f"{CHROMIUM} is missing (apt-get install chromium)")
    try:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
    except Error as exc:
        need_service("chromium", f"{CHROMIUM} did not start: {exc.message.splitlines()[0]}")
    yield browser
    browser.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    """A fresh profile per test: no cookies or cache shared between tests."""
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-US")
    context.set_default_timeout(TIMEOUT_MS)
    yield context
    context.close()


@pytest.fixture
def page(context: BrowserContext) -> Iterator[Page]:
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    # An uncaught exception in the page's JavaScript fails the test, even if the flow worked.
    assert not errors, f"JavaScript errors on the page: {errors}"
