"""axe-core (pinned in tests/browser/package-lock.json) on every page of the shop, in the states a
shopper meets them: no serious or critical violation anywhere. The 503 page is checked where a
backend is stopped (test_errors.py)."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import Page, expect

from tests.browser.shop import (
    add_to_cart,
    axe_violations,
    new_email,
    open_product,
    place_order,
    register,
)


def test_every_page_passes_axe(page: Page, axe_script: Path) -> None:
    found: dict[str, list[str]] = {}

    def check(name: str) -> None:
        page.wait_for_load_state()
        found[name] = axe_violations(page, axe_script)

    page.goto("/")
    check("catalogue")
    page.goto("/?q=zzzz-nothing-matches")
    check("catalogue with no results")
    page.goto("/register")
    check("register")
    page.goto("/signin")
    check("sign in")
    page.get_by_label("Email").fill(new_email("nobody"))
    page.get_by_label("Password").fill("wrong password")
    page.get_by_role("main").get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_be_visible()
    check("sign in with an error")

    email = new_email("axe")
    register(page, email)
    page.goto("/cart")
    expect(page.get_by_role("main")).to_contain_text("Your cart is empty.")
    check("empty cart")
    page.goto("/orders")
    expect(page.get_by_role("main")).to_contain_text("No orders yet.")
    check("no orders")
    open_product(page, "Laptop Stand")
    check("product")
    add_to_cart(page, 2)
    expect(page.locator("#cart-status")).to_contain_text("Added to cart")
    check("product after adding (htmx)")
    page.goto("/cart")
    check("cart with lines")
    place_order(page)
    check("order detail")
    page.goto("/orders")
    check("orders")
    page.goto("/account")
    check("account")
    page.goto("/account/delete")
    check("delete confirmation")
    response = page.goto("/no-such-page")
    assert response is not None and response.status == 404
    check("404")
    expect(page).to_have_url(re.compile(r"/no-such-page$"))

    failures = [line for lines in found.values() for line in lines]
    assert not failures, "serious or critical axe violations:\n" + "\n".join(failures)
