"""The shop on the kind cluster, in headless Chromium through the ingress: the storefront pod
serves the pages at "/" of the sample's host, the services answer behind it, and nothing the
browser loads comes from anywhere else. Chromium resolves ``*.localhost`` to this machine, where
kind maps the ingress controller's port."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from tests.browser.shop import (
    add_to_cart,
    cart_line,
    header_link,
    new_email,
    open_product,
    place_order,
    register,
    set_quantity,
    status,
)
from tests.e2e_kind.conftest import Platform, explain_if_failed
from tests.infra.browser import RequestWatcher, launched_chromium
from tests.infra.kind import record_figure

pytestmark = pytest.mark.e2e

PRODUCT = "Wireless Mouse"


@pytest.fixture
def explained(platform: Platform, request: pytest.FixtureRequest) -> Iterator[Platform]:
    """The sample platform; its status, events and logs (the storefront's among them, with the
    request id an error page shows) are printed when the test fails."""
    yield platform
    explain_if_failed(platform, request)


def test_a_shopper_buys_in_chromium_through_the_ingress(explained: Platform) -> None:
    platform = explained
    platform.wait_settled()
    shop = f"http://{platform.host}:{platform.port}"
    began = time.monotonic()
    watcher = RequestWatcher(shop)
    with launched_chromium() as browser:
        context = browser.new_context(base_url=shop, viewport={"width": 1280, "height": 800})
        context.set_default_timeout(30_000)
        watcher.watch(context)
        page = context.new_page()
        answer = page.goto("/")
        assert answer is not None and answer.status == 200
        expect(page.locator("article.product-card").first).to_be_visible()

        register(page, new_email("kind"))
        open_product(page, PRODUCT)
        add_to_cart(page, 1)
        expect(status(page)).to_contain_text("Added to cart")
        header_link(page, "Cart").click()
        expect(cart_line(page, PRODUCT)).to_be_visible()
        set_quantity(page, PRODUCT, 2)
        # htmx swaps the cart in place: its message and the header's count say it is done.
        expect(status(page)).to_contain_text("Cart updated.")
        expect(page.locator("#cart-count")).to_have_text("2")
        total = page.locator("#cart-total").inner_text()
        order_id = place_order(page)
        assert re.fullmatch(r"[0-9a-f]{24}", order_id)
        expect(page.locator("#order-total")).to_have_text(total)
        expect(page.locator("tr.order-line")).to_contain_text(PRODUCT)

        header_link(page, "Orders").click()
        expect(page.get_by_role("link", name=re.compile(r"^Order "))).to_have_count(1)
        context.close()
    assert watcher.urls, "the browser made no request"
    assert not watcher.foreign(), f"requests that left the shop: {watcher.foreign()}"
    assert not watcher.page_errors, f"JavaScript errors, CSP refusals: {watcher.page_errors}"
    record_figure(
        f"cluster storefront: a purchase in Chromium through the ingress in "
        f"{time.monotonic() - began:.1f} s ({len(watcher.urls)} requests, all to {platform.host})"
    )
