"""A shopper's whole purchase in the browser: the catalogue (search, filter, sort, pages), a
product, the cart, the order - with the mouse, with the keyboard alone, on a phone, and with
JavaScript switched off. What the pages show is held against the services' own APIs."""

from __future__ import annotations

import math
import re

from playwright.sync_api import Page, expect

from tests.browser.conftest import OpenPage
from tests.browser.shop import (
    Backends,
    Screenshots,
    add_to_cart,
    card_names,
    card_of,
    cart_count,
    cart_line,
    fill_registration,
    focus_is_visible,
    header_link,
    new_email,
    no_horizontal_overflow,
    open_product,
    place_order,
    price,
    product_cards,
    register,
    search,
    set_quantity,
    status,
    stock_text,
    tab_to,
)

CABLE = "USB-C Cable 2m"  # 200 in stock: every journey can buy some
CLEANER = "Screen Cleaning Kit"  # 120 in stock
PAGE_SIZE = 12  # the storefront's default page size (StorefrontSettings.page_size)


def expect_order_page(page: Page, lines: list[tuple[str, int, int]]) -> None:
    """The order's page: heading, status Placed, one line per (name, quantity, unit price) and
    the total."""
    expect(page.get_by_role("heading", level=1)).to_have_text(re.compile(r"^Order"))
    main = page.get_by_role("main")
    expect(main).to_contain_text("Placed")
    for name, quantity, unit in lines:
        row = main.locator(":is(tr, li)").filter(has_text=name)
        expect(row).to_have_count(1)
        expect(row).to_contain_text(re.compile(rf"\b{quantity}\b"))
        expect(row).to_contain_text(price(unit))
        expect(row).to_contain_text(price(unit * quantity))
    total = sum(quantity * unit for _, quantity, unit in lines)
    expect(page.locator("#order-total")).to_contain_text(price(total))


def test_a_visitor_browses_registers_and_buys(
    page: Page, backends: Backends, screenshots: Screenshots
) -> None:
    response = page.goto("/")
    assert response is not None and response.status == 200
    for name in ("Shop", "Cart", "Orders", "Account", "Sign in", "Register"):
        expect(header_link(page, name)).to_be_visible()
    expect(page.get_by_role("button", name="Sign out")).to_have_count(0)

    # The first page, in the order the sort box says, as the product service has it.
    total = backends.products()["total"]
    pages = math.ceil(total / PAGE_SIZE)
    sort = page.get_by_label("Sort by").input_value()
    first = backends.products(pageSize=PAGE_SIZE, sort=sort or "name")["items"]
    assert card_names(page) == [p["name"] for p in first]
    pagination = page.get_by_role("navigation", name="Pagination")
    expect(pagination).to_contain_text(f"Page 1 of {pages}")
    for product in first:
        card = card_of(page, product["name"])
        expect(card).to_contain_text(price(product["priceCents"]))
        expect(card).to_contain_text(stock_text(product["stock"]))
        expect(card.get_by_role("link", name=product["name"], exact=True)).to_have_attribute(
            "href", f"/products/{product['id']}"
        )
        assert (card.locator("img").get_attribute("src") or "").startswith("/pictures/")
    screenshots.take(page, "catalogue")

    pagination.get_by_role("link", name="Next").click()
    expect(pagination).to_contain_text(f"Page 2 of {pages}")
    second = backends.products(pageSize=PAGE_SIZE, sort=sort or "name", page=2)["items"]
    assert card_names(page) == [p["name"] for p in second]
    pagination.get_by_role("link", name="Previous").click()
    expect(pagination).to_contain_text(f"Page 1 of {pages}")

    # Filter and sort: a GET form, so the URL says what is shown.
    search(page, category="audio", sort="-price")
    expect(page).to_have_url(re.compile(r"category=audio"))
    audio = backends.products(category="audio", sort="-price", pageSize=PAGE_SIZE)["items"]
    assert card_names(page) == [p["name"] for p in audio]
    earbuds = backends.product("Wireless Earbuds")  # one left in the sample catalogue
    expect(card_of(page, "Wireless Earbuds")).to_contain_text(stock_text(earbuds["stock"]))

    search(page, "cable")
    expected = backends.products(q="cable", pageSize=PAGE_SIZE)["items"]
    assert card_names(page) == [p["name"] for p in expected]
    assert CABLE in card_names(page)

    path = open_product(page, CABLE)
    cable = backends.product(CABLE)
    main = page.get_by_role("main")
    expect(main).to_contain_text(price(cable["priceCents"]))
    expect(main).to_contain_text(cable["description"])
    expect(main).to_contain_text(stock_text(cable["stock"]))
    screenshots.take(page, "product")

    # Signed out, adding asks the visitor to sign in and remembers where they were.
    add_to_cart(page, 1)
    expect(page).to_have_url(
        re.compile(r"/signin\?next=" + re.escape(path).replace("/", "(/|%2F)"))
    )
    page.get_by_role("main").get_by_role("link", name="Create an account").click()
    email = new_email()
    fill_registration(page, email, "Ada Lovelace")
    expect(page).to_have_url(re.compile(re.escape(path) + "$"))
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()

    # With htmx the product page stays where it is: no page load, the count changes.
    page.evaluate("() => { window.stillHere = true; }")
    add_to_cart(page, 2)
    expect(page.locator("#cart-status")).to_contain_text("Added to cart")
    expect(cart_count(page)).to_have_text(re.compile(r"\b2\b"))
    assert page.evaluate("() => window.stillHere === true"), "adding to the cart reloaded the page"

    header_link(page, "Cart").click()
    expect(page).to_have_url(re.compile(r"/cart$"))
    line = cart_line(page, CABLE)
    expect(line).to_have_count(1)
    expect(line).to_contain_text(price(cable["priceCents"]))
    expect(line.get_by_label(f"Quantity for {CABLE}")).to_have_value("2")
    expect(line).to_contain_text(price(2 * cable["priceCents"]))
    expect(page.locator("#cart-total")).to_contain_text(price(2 * cable["priceCents"]))
    screenshots.take(page, "cart")

    set_quantity(page, CABLE, 3)
    expect(cart_line(page, CABLE).get_by_label(f"Quantity for {CABLE}")).to_have_value("3")
    expect(page.locator("#cart-total")).to_contain_text(price(3 * cable["priceCents"]))
    expect(cart_count(page)).to_have_text(re.compile(r"\b3\b"))

    order_id = place_order(page)
    expect_order_page(page, [(CABLE, 3, cable["priceCents"])])
    screenshots.take(page, "order")

    # The order service has it, as shown.
    user_id, _ = backends.signed_in(email)
    orders = backends.orders_of(user_id)
    assert [o["id"] for o in orders] == [order_id]
    assert orders[0]["totalCents"] == 3 * cable["priceCents"]
    assert backends.product(CABLE)["stock"] == cable["stock"] - 3

    header_link(page, "Orders").click()
    expect(page).to_have_url(re.compile(r"/orders$"))
    expect(page.locator(f"main a[href='/orders/{order_id}']")).to_have_count(1)
    header_link(page, "Cart").click()
    expect(page.get_by_role("main")).to_contain_text("Your cart is empty.")
    expect(cart_count(page)).to_have_text(re.compile(r"\b0\b"))

    # The token never reaches the page's scripts.
    assert "session=" not in page.evaluate("() => document.cookie")
    session = [c for c in page.context.cookies() if c["name"] == "session"]
    assert len(session) == 1 and session[0]["httpOnly"] and session[0]["sameSite"] == "Lax"


def test_a_returning_shopper_signs_in_and_lands_where_they_were(
    page: Page, backends: Backends
) -> None:
    email = new_email("returning")
    backends.register(email)
    path = open_product(page, CLEANER)
    add_to_cart(page, 1)
    expect(page).to_have_url(re.compile(r"/signin\?next="))

    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("main").get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("Wrong email or password.")

    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill("correct horse battery")
    page.get_by_role("main").get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(re.escape(path) + "$"))
    add_to_cart(page, 1)
    expect(page.locator("#cart-status")).to_contain_text("Added to cart")

    page.get_by_role("button", name="Sign out").click()
    expect(header_link(page, "Sign in")).to_be_visible()
    page.goto("/cart")  # signed out: the cart asks who you are first
    expect(page).to_have_url(re.compile(r"/signin\?next=(/|%2F)cart$"))


def test_the_keyboard_alone_buys_with_the_focus_in_sight(page: Page, backends: Backends) -> None:
    """Tab, Enter, Space and typing only: every stop on the way shows where the focus is."""
    keys = page.keyboard
    page.goto("/")
    tab_to(page, header_link(page, "Register"))
    keys.press("Enter")
    expect(page).to_have_url(re.compile(r"/register"))
    email = new_email("keyboard")
    for label, text in (
        ("Name", "Alan Turing"),
        ("Email", email),
        ("Password", "correct horse battery"),
    ):
        tab_to(page, page.get_by_label(label))
        keys.type(text)
    tab_to(page, page.get_by_role("button", name="Create account"))
    keys.press("Space")
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()

    page.goto("/")
    tab_to(page, page.get_by_role("search").get_by_label("Search"))
    keys.type("cleaning")
    keys.press("Enter")  # submits the search form
    expect(page).to_have_url(re.compile(r"q=cleaning"))
    tab_to(page, product_cards(page).get_by_role("link", name=CLEANER, exact=True))
    keys.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text(CLEANER)

    tab_to(page, page.get_by_label("Quantity", exact=True))
    keys.press("Control+A")
    keys.type("2")
    tab_to(page, page.get_by_role("button", name="Add to cart"))
    keys.press("Enter")
    expect(page.locator("#cart-status")).to_contain_text("Added to cart")

    tab_to(page, header_link(page, "Cart"))
    keys.press("Enter")
    expect(page).to_have_url(re.compile(r"/cart$"))
    tab_to(page, page.get_by_label(f"Quantity for {CLEANER}"))
    keys.press("Control+A")
    keys.type("4")
    keys.press("Enter")  # submits that line's form
    expect(page.get_by_label(f"Quantity for {CLEANER}")).to_have_value("4")
    cleaner = backends.product(CLEANER)
    expect(page.locator("#cart-total")).to_contain_text(price(4 * cleaner["priceCents"]))

    tab_to(page, page.get_by_role("button", name="Place order"))
    keys.press("Space")
    expect(page).to_have_url(re.compile(r"/orders/[^/]+$"))
    expect(status(page)).to_contain_text("Thank you! Your order has been placed.")
    expect_order_page(page, [(CLEANER, 4, cleaner["priceCents"])])

    tab_to(page, page.get_by_role("button", name="Sign out"))
    focus_is_visible(page)
    keys.press("Enter")
    expect(header_link(page, "Sign in")).to_be_visible()


def test_a_phone_buys_and_nothing_overflows(
    open_page: OpenPage, backends: Backends, screenshots: Screenshots
) -> None:
    page = open_page(
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
    )
    page.goto("/")
    no_horizontal_overflow(page)
    screenshots.take(page, "mobile-catalogue")

    header_link(page, "Register").tap()
    expect(page).to_have_url(re.compile(r"/register$"))
    no_horizontal_overflow(page)
    page.get_by_label("Name").fill("Hedy Lamarr")
    page.get_by_label("Email").fill(new_email("phone"))
    page.get_by_label("Password").fill("correct horse battery")
    page.get_by_role("button", name="Create account").tap()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()

    page.goto("/")
    form = page.get_by_role("search")
    form.get_by_label("Search").fill("cable")
    form.get_by_role("button", name="Apply").tap()
    expect(page).to_have_url(re.compile(r"q=cable"))
    no_horizontal_overflow(page)
    product_cards(page).get_by_role("link", name=CABLE, exact=True).tap()
    expect(page.get_by_role("heading", level=1)).to_have_text(CABLE)
    no_horizontal_overflow(page)
    page.get_by_label("Quantity", exact=True).fill("1")
    page.get_by_role("button", name="Add to cart").tap()
    expect(page.locator("#cart-status")).to_contain_text("Added to cart")

    header_link(page, "Cart").tap()
    expect(cart_line(page, CABLE)).to_have_count(1)
    no_horizontal_overflow(page)
    page.get_by_role("button", name="Place order").tap()
    expect(status(page)).to_contain_text("Thank you! Your order has been placed.")
    no_horizontal_overflow(page)
    cable = backends.product(CABLE)
    expect_order_page(page, [(CABLE, 1, cable["priceCents"])])
    for path in ("/orders", "/account", "/account/delete"):
        page.goto(path)
        no_horizontal_overflow(page)


def test_the_shop_works_with_javascript_off(open_page: OpenPage, backends: Backends) -> None:
    """Every action is a real form post: without htmx adding goes to the cart page."""
    page = open_page(java_script_enabled=False)
    register(page, new_email("nojs"), "Katherine Johnson")

    open_product(page, CABLE)
    add_to_cart(page, 1)
    expect(page).to_have_url(re.compile(r"/cart$"))
    open_product(page, CLEANER)
    add_to_cart(page, 2)
    expect(page).to_have_url(re.compile(r"/cart$"))
    expect(page.locator("tr.cart-line")).to_have_count(2)
    expect(cart_count(page)).to_have_text(re.compile(r"\b3\b"))

    cart_line(page, CABLE).get_by_role("button", name="Remove").click()
    expect(page.locator("tr.cart-line")).to_have_count(1)
    set_quantity(page, CLEANER, 3)
    cleaner = backends.product(CLEANER)
    expect(page.locator("#cart-total")).to_contain_text(price(3 * cleaner["priceCents"]))

    place_order(page)
    expect_order_page(page, [(CLEANER, 3, cleaner["priceCents"])])
