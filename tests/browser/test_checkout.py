"""Placing an order from the browser: exactly once however often the form is sent; what the
cart and the checkout say when the catalogue changed under the shopper; and what a cancelled
order shows."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from bson import ObjectId
from playwright.sync_api import Page, expect
from pymongo import MongoClient
from pymongo.collection import Collection

from services.local.platform import LocalPlatform
from services.order.service import RESERVATION_LOST
from tests.browser.shop import (
    Backends,
    add_to_cart,
    axe_violations,
    cart_line,
    header_link,
    new_email,
    place_order,
    price,
    register,
    status,
)


def buy_page(page: Page, product: dict[str, object], quantity: int) -> None:
    page.goto(f"/products/{product['id']}")
    add_to_cart(page, quantity)
    expect(page.locator("#cart-status")).to_contain_text("Added to cart")


def test_a_double_click_and_a_resubmitted_form_make_one_order(
    page: Page, backends: Backends
) -> None:
    product = backends.new_product(stock=10)
    email = new_email("twice")
    register(page, email)
    buy_page(page, product, 2)
    page.goto("/cart")
    form = page.locator("form[action='/checkout']")
    key = form.locator("input[name='idempotency_key']").input_value()
    assert key, "the checkout form carries no idempotency key"
    # This view of the cart as the browser got it, to be sent again as a second tab or the back
    # button would send it: the same key, the same CSRF token.
    seen = form.evaluate("f => f.outerHTML")
    posts: list[str] = []
    page.context.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)

    # A second tab with the same view, sent while the first tab's double click is under way.
    # (Chromium itself sends a double-clicked form once; the second tab makes it two requests.)
    twin = page.context.new_page()
    twin.goto("/cart")
    twin.locator("form[action='/checkout']").evaluate("(f, html) => { f.outerHTML = html; }", seen)
    form.get_by_role("button", name="Place order").dblclick()
    twin.get_by_role("button", name="Place order").click()
    for tab in (page, twin):
        expect(tab).to_have_url(re.compile(r"/orders/[^/]+$"))
        expect(status(tab)).to_contain_text("Thank you! Your order has been placed.")
    assert twin.url == page.url
    assert len([url for url in posts if url.endswith("/checkout")]) >= 2, posts
    order_url = page.url

    page.go_back()
    expect(page).to_have_url(re.compile(r"/cart$"))
    # The cart is empty now; the old view's form is sent once more.
    page.get_by_role("main").evaluate(
        "(main, html) => { main.insertAdjacentHTML('beforeend', html); }", seen
    )
    resubmitted = page.locator("form[action='/checkout']").last
    assert resubmitted.locator("input[name='idempotency_key']").input_value() == key
    resubmitted.get_by_role("button", name="Place order").click()
    expect(page).to_have_url(order_url)

    user_id, _ = backends.signed_in(email)
    orders = backends.orders_of(user_id)
    assert len(orders) == 1, orders
    assert backends.product(product["name"])["stock"] == 8
    header_link(page, "Orders").click()
    expect(page).to_have_url(re.compile(r"/orders$"))
    expect(page.locator("main a[href^='/orders/']")).to_have_count(1)


def test_the_cart_says_what_changed_and_checkout_refuses_what_ran_out(
    page: Page, backends: Backends
) -> None:
    repriced = backends.new_product(stock=10, price_cents=4500)
    withdrawn = backends.new_product(stock=10)
    scarce = backends.new_product(stock=2)
    register(page, new_email("changes"))
    for product in (repriced, withdrawn, scarce):
        buy_page(page, product, 1 if product is not scarce else 2)

    backends.update_product(repriced["id"], priceCents=5000)
    backends.update_product(scarce["id"], stock=0)
    deleted = backends.http.delete(
        backends.url("product", f"/api/v1/products/{withdrawn['id']}"), headers=backends.admin
    )
    assert deleted.status_code == 204, deleted.text

    # The cart shows product facts up to 2 s old (cart's product_facts_max_age_seconds).
    page.goto("/cart")
    deadline = time.monotonic() + 7.0
    while "Out of stock" not in cart_line(page, scarce["name"]).inner_text():
        assert time.monotonic() < deadline, "the cart never showed the stock that ran out"
        time.sleep(0.2)
        page.reload()
    expect(cart_line(page, repriced["name"])).to_contain_text(
        f"Price changed from {price(4500)} to {price(5000)}"
    )
    expect(page.locator("tr.cart-line").filter(has_text="No longer available")).to_have_count(1)
    expect(cart_line(page, scarce["name"])).to_contain_text("Out of stock")

    # Only what ran out stops the checkout; take the withdrawn line out to reach that answer.
    withdrawn_line = page.locator("tr.cart-line").filter(has_text="No longer available")
    withdrawn_line.get_by_role("button", name="Remove").click()
    expect(page.locator("tr.cart-line")).to_have_count(2)
    with page.expect_response(lambda r: r.url.endswith("/checkout")) as answer:
        page.get_by_role("button", name="Place order").click()
    assert answer.value.status == 409
    expect(page.get_by_role("heading", level=1)).to_have_text("Some items ran out of stock")
    page.get_by_role("main").get_by_role("link", name=re.compile("cart", re.IGNORECASE)).click()
    expect(page).to_have_url(re.compile(r"/cart$"))


def test_a_cancelled_order_says_why(
    page: Page, backends: Backends, shop_platform: LocalPlatform, axe_script: Path
) -> None:
    """An order is cancelled only by the order service's own worker (its stock reservation was
    lost before it was confirmed); the test marks one so, in the order database, as that worker
    does (OrderRepository.cancel)."""
    register(page, new_email("cancelled"))
    buy_page(page, backends.new_product(stock=5), 1)
    page.goto("/cart")
    order_id = place_order(page)
    assert shop_platform.mongo is not None
    client: MongoClient[dict[str, Any]]
    with MongoClient(shop_platform.mongo.uri) as client:
        orders: Collection[dict[str, Any]] = client[f"{shop_platform.db_prefix}order"].orders
        changed = orders.update_one(
            {"_id": ObjectId(order_id)},
            {"$set": {"status": "cancelled", "cancelReason": RESERVATION_LOST}},
        )
        assert changed.modified_count == 1

    page.reload()
    main = page.get_by_role("main")
    expect(main).to_contain_text(re.compile(r"Status\s*Cancelled"))
    expect(main).to_contain_text(RESERVATION_LOST)
    assert axe_violations(page, axe_script) == []
    header_link(page, "Orders").click()
    expect(page.locator("tr.order-row")).to_contain_text("Cancelled")
