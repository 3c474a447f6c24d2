"""Real-browser tests: headless Chromium (Debian's, installed by `make browser`) driven by
Playwright against a real embedded deployment (tests/stack.py: API process and worker).

Every test's ``page`` enforces, for whatever it visits:
- no console error (a Content-Security-Policy violation is one) and no uncaught exception;
- no request leaving the server's origin (the dashboard and /docs work offline).
It saves a screenshot of the page as it was at the end of the test to
tests/browser/screenshots/<test name>.png (gitignored), pass or fail.

Without Chromium or Playwright the tests skip, saying how to get them; in CI (CI=true, or
TRAINYARD_REQUIRE_SERVICES=1 as .ci/run sets) they fail instead, as services do there.
"""
import os
import re
import shutil
from pathlib import Path

import pytest

from tests.conftest import REQUIRE_SERVICES, _start

CHROMIUM = os.environ.get("TRAINYARD_CHROMIUM", "/usr/bin/chromium")
REQUIRE_BROWSER = REQUIRE_SERVICES or os.environ.get("CI", "").lower() == "true"
SCREENSHOTS = Path(__file__).parent / "screenshots"
# Schemes a page's own scripts produce that never reach a network: Redoc's worker (blob:), inline images (data:).
LOCAL_SCHEMES = ("data:", "blob:")


def _browser_missing() -> str | None:
    if not (shutil.which(CHROMIUM) or os.access(CHROMIUM, os.X_OK)):
        return f"no Chromium at {CHROMIUM}: run `make browser` (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright is not installed: run `make install` (the test extra has it)"
    return None


def require_browser() -> None:
    missing = _browser_missing()
    if missing:
        if REQUIRE_BROWSER:
            pytest.fail(missing)
        pytest.skip(missing)


# Package scope, for this folder's tests only: Playwright's sync API keeps an asyncio loop
# running in the main thread while it is started, where other folders' tests call
# asyncio.run or anyio.run; and the server's processes need not outlive these tests.
@pytest.fixture(scope="package")
def server(tmp_path_factory):
    """One embedded deployment (API process and worker) for every browser test: the pages do
    not depend on the database, so the two deployments of tests/conftest.py's `stack` would
    only double the time."""
    require_browser()
    s = _start("browser", tmp_path_factory.mktemp("browser"), {})
    yield s
    s.stop()


@pytest.fixture(scope="package")
def server_key(server) -> str:
    """An API key of a tenant of the browser tests (Swagger UI's Authorize, the dashboard's sign-in)."""
    return server.new_key("browser")


@pytest.fixture(scope="package")
def browser():
    require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # Playwright passes --no-sandbox itself (chromium_sandbox defaults to off), which
        # Chromium needs to run as root, as it does in CI containers.
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield browser
        browser.close()


class PageRecord:
    """What a page did: its console errors, uncaught exceptions, and every request's URL."""

    def __init__(self, origin: str):
        self.origin = origin
        self.errors: list[str] = []
        self.requests: list[str] = []

    def console(self, message) -> None:
        if message.type == "error":
            self.errors.append(f"console error: {message.text} ({message.location.get('url', '')})")

    def page_error(self, error) -> None:
        self.errors.append(f"uncaught exception: {error}")

    def request(self, request) -> None:
        self.requests.append(request.url)

    def foreign_requests(self) -> list[str]:
        return [url for url in self.requests
                if not (url.startswith(self.origin + "/") or url.startswith(LOCAL_SCHEMES))]


@pytest.fixture
def page_record(server) -> PageRecord:
    return PageRecord(server.url)


@pytest.fixture
def page(browser, server, page_record, request):
    """A fresh browser context and page on the server (``page.goto("/docs")``), checked at the end."""
    context = browser.new_context(base_url=server.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(10_000)
    page = context.new_page()
    page.on("console", page_record.console)
    page.on("pageerror", page_record.page_error)
    page.on("request", page_record.request)
    try:
        yield page
    finally:
        SCREENSHOTS.mkdir(exist_ok=True)
        try:
            page.screenshot(path=SCREENSHOTS / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', request.node.name)}.png",
                            full_page=False)
        finally:
            context.close()
    problems = page_record.errors + [f"request left {server.url}: {url}" for url in page_record.foreign_requests()]
    if problems:
        pytest.fail("the page misbehaved:\n" + "\n".join(problems), pytrace=False)
