"""What the shopper sees when something is wrong: a backend stopped mid-session, a page that does
not exist - a page of the shop's own, accessible, never a stack trace."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import Page, expect

from services.local.platform import LocalPlatform
from tests.browser.shop import (
    add_to_cart,
    axe_violations,
    cart_line,
    header_link,
    new_email,
    open_product,
    register,
)

STACK_TRACE = re.compile(r"Traceback \(most recent call last\)|File \"[^\"]+\.py\", line")


def test_a_stopped_backend_is_a_friendly_page_and_try_again_recovers(
    page: Page, shop_platform: LocalPlatform, axe_script: Path
) -> None:
    register(page, new_email("outage"))
    open_product(page, "Desk Lamp")
    add_to_cart(page, 1)
    expect(page.locator("#cart-status")).to_contain_text("Added to cart")

    shop_platform.stop_service("cart")
    try:
        response = page.goto("/cart")
        assert response is not None and response.status == 503
        retry_after = response.headers.get("retry-after", "")
        assert retry_after.isdigit(), response.headers
        expect(page.get_by_role("heading", level=1)).to_have_text(
            "Something is temporarily unavailable"
        )
        assert not STACK_TRACE.search(page.content())
        try_again = page.get_by_role("link", name="Try again")
        assert (try_again.get_attribute("href") or "").rstrip("/").endswith("/cart")
        assert axe_violations(page, axe_script) == []
    finally:
        shop_platform.start_service("cart")

    try_again.click()
    expect(page).to_have_url(re.compile(r"/cart$"))
    expect(cart_line(page, "Desk Lamp")).to_have_count(1)
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()


def test_an_unknown_page_is_a_404_of_the_shop(page: Page, axe_script: Path) -> None:
    response = page.goto("/no/such/page")
    assert response is not None and response.status == 404
    expect(page.get_by_role("heading", level=1)).to_have_text("Page not found")
    expect(header_link(page, "Shop")).to_be_visible()
    assert not STACK_TRACE.search(page.content())
    assert axe_violations(page, axe_script) == []

    response = page.goto("/products/000000000000000000000000")
    assert response is not None and response.status == 404
    assert not STACK_TRACE.search(page.content())
