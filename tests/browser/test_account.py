"""The shopper's account in the browser: what it shows, deleting it (and everything the platform
held about them), and what signing in says when it fails."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.browser.shop import (
    Backends,
    add_to_cart,
    alert,
    header_link,
    new_email,
    open_product,
    place_order,
    register,
    sign_in_form,
    status,
)
from tests.platform.conftest import eventually


def test_deleting_the_account_takes_the_orders_with_it(page: Page, backends: Backends) -> None:
    email = new_email("leaving")
    register(page, email, "Grace Hopper")
    open_product(page, "Mouse Pad XL")
    add_to_cart(page, 1)
    expect(page.locator("#cart-status")).to_contain_text("Added to cart")
    page.goto("/cart")
    place_order(page)
    user_id, _ = backends.signed_in(email)
    assert len(backends.orders_of(user_id)) == 1

    header_link(page, "Account").click()
    expect(page).to_have_url(re.compile(r"/account$"))
    main = page.get_by_role("main")
    expect(main).to_contain_text(email)
    expect(main).to_contain_text("Grace Hopper")

    # A link, then a confirmation page: nothing is deleted by one stray click.
    main.get_by_role("link", name="Delete my account").click()
    expect(page).to_have_url(re.compile(r"/account/delete$"))
    assert backends.token(email).status_code == 200
    page.get_by_role("button", name="Delete my account permanently").click()

    expect(page).to_have_url(re.compile(r"/$"))
    expect(status(page)).to_contain_text("Your account has been deleted.")
    expect(header_link(page, "Sign in")).to_be_visible()
    expect(page.get_by_role("button", name="Sign out")).to_have_count(0)

    header_link(page, "Sign in").click()
    sign_in_form(page, email)
    expect(alert(page)).to_have_text("Wrong email or password.")
    assert backends.token(email).status_code == 401
    # The cascade reaches the order service (through auth's outbox): no order is left.
    eventually(lambda: backends.orders_of(user_id) == [])


def test_signing_in_says_what_went_wrong_and_when_to_stop(page: Page, backends: Backends) -> None:
    email = new_email("guessed")
    backends.register(email)
    page.goto("/signin")
    sign_in_form(page, email, "wrong guess")
    expect(alert(page)).to_have_text("Wrong email or password.")
    expect(page.get_by_label("Email")).to_have_value(email)

    # The per-email limit (10 attempts a window by default) ends the guessing. The windows are
    # fixed (a minute on the clock), so attempts that straddle a window's end can need up to 21
    # before one window has seen 11 (a CI run stopped at 13 with 5 and 8 on either side).
    for _ in range(21):
        with page.expect_navigation():  # the answer is a page of its own: read that one
            sign_in_form(page, email, "another guess")
        expect(alert(page)).to_be_visible()
        if alert(page).inner_text().startswith("Too many attempts"):
            break
    expect(alert(page)).to_have_text(re.compile(r"^Too many attempts"))
