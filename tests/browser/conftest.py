"""The storefront in a real headless Chromium (Debian's package, driven by Playwright; test tools
cannot download a browser here), against the whole platform running as local processes.

One platform and one browser per test session (per pytest-xdist worker); each test gets fresh
browser contexts (its own cookies), and every request those contexts make is checked, when the
test ends, to have gone to the storefront's own host and port: the pages load nothing from
anywhere else (no CDN, no fonts, no analytics). An uncaught JavaScript error, or anything the
shop's Content-Security-Policy refused, fails the test too.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Page,
)
from playwright.sync_api import (
    Error as PlaywrightError,
)

from services.local.mongo_server import MongoServer
from services.local.platform import LocalPlatform
from tests.browser.shop import AXE_SCRIPT, Backends, Screenshots
from tests.infra.browser import RequestWatcher, chromium_executable, launched_chromium, missing
from tests.storefront.conftest import shop_platform as start_shop

DESKTOP = {"width": 1280, "height": 800}
# Actions wait this long (ms) for an element or a navigation: ample on a loaded 2-core machine,
# short enough that a missing element fails in seconds rather than Playwright's default 30 s.
ACTION_TIMEOUT_MS = 15_000
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def chromium_path() -> str:
    return chromium_executable()


@pytest.fixture(scope="session")
def axe_script() -> Path:
    if not AXE_SCRIPT.is_file():
        missing("axe-core", "make browser runs npm ci in tests/browser")
    return AXE_SCRIPT


@pytest.fixture(scope="session")
def shop_platform(
    mongo_server: MongoServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalPlatform]:
    """Every service and the storefront, with the sample catalogue loaded."""
    with start_shop(mongo_server, tmp_path_factory.mktemp("shop"), "b") as running:
        yield running


@pytest.fixture(scope="session")
def storefront(shop_platform: LocalPlatform) -> str:
    return shop_platform.urls["storefront"]


@pytest.fixture(scope="session")
def backends(shop_platform: LocalPlatform) -> Iterator[Backends]:
    """The services' own APIs, for what a test checks behind the storefront's back."""
    with Backends(shop_platform) as api:
        yield api


@pytest.fixture(scope="module")
def browser(chromium_path: str) -> Iterator[Browser]:
    # One per test module, not per session: while Playwright's sync API is open it marks its
    # event loop as running in this thread, and an asyncio test that pytest-xdist runs in this
    # worker after the module would find it ("Runner.run() cannot be called from a running
    # event loop").
    with launched_chromium() as launched:
        yield launched


OpenPage = Callable[..., Page]


@pytest.fixture
def open_page(
    browser: Browser,
    storefront: str,
    shop_platform: LocalPlatform,
    request: pytest.FixtureRequest,
) -> Iterator[OpenPage]:
    """``open_page(**context_options)``: a page in a new browser context (its own cookies) with
    the storefront as base URL, a desktop viewport unless told otherwise, and its requests
    watched. Every context is closed and checked when the test ends."""
    watcher = RequestWatcher(storefront)
    contexts: list[BrowserContext] = []

    def open_one(**options: Any) -> Page:
        options.setdefault("viewport", DESKTOP)
        options.setdefault("locale", "en-GB")
        context = browser.new_context(base_url=storefront, **options)
        context.set_default_timeout(ACTION_TIMEOUT_MS)
        watcher.watch(context)
        contexts.append(context)
        return context.new_page()

    yield open_one
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        # What the shopper was looking at, and what the shop logged, next to the failure.
        for context in contexts:
            for open_tab in context.pages:
                try:
                    text = open_tab.locator("body").inner_text(timeout=2000)[:2000]
                except PlaywrightError as exc:
                    text = f"(unreadable: {exc.message})"
                print(f"\n=== {open_tab.url} ===\n{text}")
        print(f"\n=== storefront log ===\n{shop_platform.services['storefront'].log_tail(4000)}")
    for context in contexts:
        context.close()
    assert watcher.urls, "the browser made no request at all"
    assert not watcher.foreign(), f"requests that left the storefront: {watcher.foreign()}"
    assert not watcher.page_errors, f"JavaScript errors, CSP refusals: {watcher.page_errors}"


@pytest.fixture
def page(open_page: OpenPage) -> Page:
    return open_page()


@pytest.fixture(scope="session")
def screenshots() -> Screenshots:
    """Writes docs/screenshots/*.png only when CHECKOUT_SCREENSHOTS=1, so that ordinary runs
    leave the tree as it was."""
    return Screenshots(ROOT / "docs" / "screenshots", os.environ.get("CHECKOUT_SCREENSHOTS") == "1")
