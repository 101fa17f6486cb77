"""The watcher every browser test runs under (conftest.py) does see a request that leaves the
storefront, and what the shop's Content-Security-Policy refuses: otherwise its silence in the
other tests would prove nothing."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, Error

from services.local.mongo_server import free_port
from tests.infra.browser import RequestWatcher


def test_the_watcher_sees_requests_elsewhere_and_refusals(
    browser: Browser, storefront: str
) -> None:
    watcher = RequestWatcher(storefront)
    context = browser.new_context(base_url=storefront)
    watcher.watch(context)
    elsewhere = f"http://127.0.0.1:{free_port()}/beacon"  # nothing listens there
    try:
        page = context.new_page()
        page.goto("/")
        assert watcher.urls and not watcher.foreign() and not watcher.page_errors
        # The shop's policy (connect-src 'self') stops a script's fetch before it is sent...
        page.evaluate("url => fetch(url).catch(() => null)", elsewhere)
        assert not watcher.foreign()
        assert any("Content Security Policy" in error for error in watcher.page_errors)
        # ...a navigation it does not govern is seen.
        with pytest.raises(Error, match="ERR_CONNECTION_REFUSED"):
            page.goto(elsewhere)
    finally:
        context.close()
    assert watcher.foreign() == [elsewhere]
