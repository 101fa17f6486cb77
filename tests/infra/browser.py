"""Headless Chromium for the tests: Debian's package, driven by Playwright (test tools cannot
download a browser here), and a watcher of every request a browser context makes. Used by the
storefront's browser tests (tests/browser) and its journey through the kind ingress
(tests/e2e_kind)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Request,
    sync_playwright,
)

# As root Chromium needs --no-sandbox; the rest keep it from calling Google's services (refused by
# a closed network, and not traffic a test should make).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
]


def missing(what: str, how: str) -> None:
    """Outside CI a missing prerequisite skips the browser tests; under CI=true it fails them."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} is missing under CI=true ({how})")
    pytest.skip(f"{what} is missing ({how})")


def chromium_executable() -> str:
    """Debian's chromium (or $CHROMIUM); missing, the test skips - or fails under CI=true."""
    path = os.environ.get("CHROMIUM") or shutil.which("chromium")
    if not path:
        missing("chromium", "Debian: apt-get install chromium; make test installs it as root")
    assert path is not None
    return path


@contextmanager
def launched_chromium() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium_executable(), args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


class RequestWatcher:
    """Every URL a browser context asked for; ``foreign()`` lists those that went anywhere but
    the storefront (``data:``/``blob:``/``about:`` URLs stay inside the browser)."""

    def __init__(self, storefront: str) -> None:
        self.own = urlsplit(storefront).netloc
        self.urls: list[str] = []
        self.page_errors: list[str] = []

    def watch(self, context: BrowserContext) -> None:
        context.on("request", self._record)
        context.on("page", self._watch_page)

    def _record(self, request: Request) -> None:
        self.urls.append(request.url)

    def _watch_page(self, page: Page) -> None:
        page.on("pageerror", lambda error: self.page_errors.append(f"{page.url}: {error}"))
        page.on("console", lambda message: self._console(page, message))

    def _console(self, page: Page, message: ConsoleMessage) -> None:
        # Chromium reports what the shop's Content-Security-Policy refused (an inline style or
        # script, another origin) only here; a refused style or script silently breaks the page.
        if message.type == "error" and "Content Security Policy" in message.text:
            self.page_errors.append(f"{page.url}: {message.text}")

    def foreign(self) -> list[str]:
        outside = []
        for url in self.urls:
            parts = urlsplit(url)
            if parts.scheme in ("data", "blob", "about"):
                continue
            if parts.scheme not in ("http", "https", "ws", "wss") or parts.netloc != self.own:
                outside.append(url)
        return outside
