"""Every page and form action of the storefront over HTTP: what it answers signed out and signed
in, its redirects, its refusals (CSRF, bad input) and its pages for failures."""

from __future__ import annotations

import re
import time
import uuid

import httpx
import pytest

from services.local.platform import LocalPlatform
from tests.platform.conftest import eventually
from tests.storefront.conftest import PASSWORD, Visitor, product_ids

SIGNED_IN_PAGES = [
    "/cart",
    "/orders",
    "/orders/0123456789abcdef01234567",
    "/account",
    "/account/delete",
]
ACTIONS = [
    "/cart/items",
    "/cart/items/0123456789abcdef01234567",
    "/cart/items/0123456789abcdef01234567/remove",
    "/checkout",
    "/signin",
    "/register",
    "/signout",
    "/account/delete",
]


def h1(response: httpx.Response) -> str:
    found = re.search(r"<h1>([^<]*)</h1>", response.text)
    return found.group(1) if found else ""


def field(response: httpx.Response, name: str) -> str:
    tag = re.search(rf'<input[^>]* name="{name}"[^>]*>', response.text)
    found = tag and re.search(r'value="([^"]*)"', tag.group(0))
    assert found, f"no {name} field"
    return found.group(1)


def test_public_pages_answer_with_html_and_the_shops_headers(visitor: Visitor) -> None:
    catalogue = visitor.get("/")
    assert catalogue.status_code == 200
    assert catalogue.headers["content-type"].startswith("text/html")
    policy = catalogue.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "script-src 'self'" in policy
    assert catalogue.headers["x-content-type-options"] == "nosniff"
    assert catalogue.headers["cache-control"] == "no-store"
    ids = product_ids(visitor)
    assert len(ids) == 12  # a page of the sample catalogue
    assert "Page 1 of 2" in catalogue.text
    product = visitor.get(f"/products/{ids[0]}")
    assert product.status_code == 200 and "Add to cart" in product.text
    for path in ("/signin", "/register"):
        page = visitor.get(path)
        assert page.status_code == 200 and 'name="_csrf_token"' in page.text
    # Nothing a page refers to is on another host.
    for page in (catalogue, product):
        for url in re.findall(r'(?:src|href|action)="([^"]*)"', page.text):
            assert url.startswith(("/", "#")) and not url.startswith("//"), url


def test_the_catalogue_filters_sorts_and_pages(visitor: Visitor) -> None:
    page = visitor.get("/?q=keyboard")
    assert "Mechanical Keyboard" in page.text and "1 product matching" in page.text
    audio = visitor.get("/?category=audio&sort=-price")
    prices = [
        int(p.replace(",", "").replace(".", ""))
        for p in re.findall(r'class="price">€([\d,.]+)<', audio.text)
    ]
    assert len(prices) == 4 and prices == sorted(prices, reverse=True)
    second = visitor.get("/?page=2")
    assert "Page 2 of 2" in second.text and 'rel="prev"' in second.text
    assert set(product_ids(visitor, "?page=2")).isdisjoint(product_ids(visitor))
    categories = re.findall(r'<option value="([a-z-]+)"', visitor.get("/").text)
    assert "audio" in categories and "peripherals" in categories
    nothing = visitor.get("/?q=no-such-thing-at-all")
    assert "No products match your search" in nothing.text


@pytest.mark.parametrize(
    ("query", "named"), [("?page=0", "page"), ("?sort=cheapest", "sort"), ("?q=" + "x" * 101, "q")]
)
def test_a_bad_catalogue_link_is_a_400_page_naming_the_parameter(
    visitor: Visitor, query: str, named: str
) -> None:
    answer = visitor.get("/" + query)
    assert answer.status_code == 400
    assert h1(answer) == "That link did not work"
    assert named in answer.text and "Traceback" not in answer.text


def test_stock_is_shown_as_a_shopper_reads_it(
    shop: LocalPlatform, visitor: Visitor, admin: httpx.Client
) -> None:
    ids = product_ids(visitor, "?q=keyboard")
    product_url = shop.urls["product"] + f"/api/v1/products/{ids[0]}"
    try:
        admin.patch(product_url, json={"stock": 3}).raise_for_status()
        assert "Only 3 left" in visitor.get(f"/products/{ids[0]}").text
        admin.patch(product_url, json={"stock": 0}).raise_for_status()
        page = visitor.get(f"/products/{ids[0]}")
        assert "Out of stock" in page.text
        assert re.search(r'<button type="submit" class="primary" disabled>Add to cart', page.text)
    finally:
        admin.patch(product_url, json={"stock": 25}).raise_for_status()


@pytest.mark.parametrize("path", SIGNED_IN_PAGES)
def test_signed_in_pages_send_a_visitor_to_sign_in_and_back(visitor: Visitor, path: str) -> None:
    answer = visitor.get(path)
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/signin?next={path}"
    form = visitor.get(answer.headers["location"])
    assert field(form, "next") == path
    assert "Please sign in to continue." in form.text


def test_adding_to_the_cart_signed_out_asks_to_sign_in_first(visitor: Visitor) -> None:
    pid = product_ids(visitor)[0]
    answer = visitor.post("/cart/items", {"product_id": pid, "quantity": "1"})
    assert (
        answer.status_code == 303 and answer.headers["location"] == f"/signin?next=/products/{pid}"
    )
    htmx = visitor.post(
        "/cart/items", {"product_id": pid, "quantity": "1"}, headers={"HX-Request": "true"}
    )
    assert (
        htmx.status_code == 204 and htmx.headers["hx-redirect"] == f"/signin?next=/products/{pid}"
    )
    assert "Please sign in to continue." in visitor.get(htmx.headers["hx-redirect"]).text


@pytest.mark.parametrize("path", ACTIONS)
def test_every_form_action_refuses_a_post_without_the_csrf_token(
    visitor: Visitor, path: str
) -> None:
    visitor.get("/")  # the CSRF cookie is set
    missing = visitor.http.post(path, data={"quantity": "1"})
    assert missing.status_code == 403 and h1(missing) == "This form has expired"
    forged = visitor.http.post(path, data={"_csrf_token": "f" * 64 + "0" * 64})
    assert forged.status_code == 403


def test_a_form_from_another_browser_is_refused(shop: LocalPlatform, visitor: Visitor) -> None:
    token = visitor.csrf()
    with httpx.Client(base_url=shop.urls["storefront"]) as other:
        other.get("/")
        assert other.post("/signout", data={"_csrf_token": token}).status_code == 403


def test_registering_signs_in_with_an_httponly_lax_cookie(visitor: Visitor) -> None:
    answer = visitor.post(
        "/register",
        {
            "email": f"new-{uuid.uuid4().hex[:8]}@example.test",
            "password": PASSWORD,
            "name": "Nia",
            "next": "/cart",
        },
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/cart"
    cookie = next(c for c in answer.headers.get_list("set-cookie") if c.startswith("session="))
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Max-Age=" in cookie
    assert "Secure" not in cookie  # plain HTTP here; COOKIE_SECURE=true under TLS
    page = visitor.get("/cart")
    assert "Your account is ready and you are signed in." in page.text
    assert "Sign out" in page.text and "Your cart is empty." in page.text


def test_registration_problems_are_shown_and_what_was_typed_is_kept(visitor: Visitor) -> None:
    answer = visitor.post(
        "/register", {"email": "not-an-email", "password": "short", "name": "Kim"}
    )
    assert answer.status_code == 400
    assert (
        "Enter a valid email address." in answer.text
        and "Use at least 8 characters." in answer.text
    )
    assert 'value="not-an-email"' in answer.text and 'value="Kim"' in answer.text
    assert 'value="short"' not in answer.text  # a password is never sent back
    email = visitor.register()
    visitor.post("/signout", {})
    again = visitor.post("/register", {"email": email, "password": PASSWORD})
    assert again.status_code == 409 and "already exists" in again.text


def test_sign_in_says_what_went_wrong(visitor: Visitor) -> None:
    email = visitor.register()
    visitor.post("/signout", {})
    wrong = visitor.post("/signin", {"email": email, "password": "not the password"})
    assert wrong.status_code == 401 and "Wrong email or password." in wrong.text
    assert field(wrong, "email") == email
    # The per-email limit (10 a minute) then answers with the wait. The windows are fixed (a
    # minute on the clock): attempts that straddle a window's end can need up to 21.
    for _ in range(21):
        last = visitor.post("/signin", {"email": email, "password": "still wrong"})
        if last.status_code == 429:
            break
    assert last.status_code == 429
    assert re.search(r"Too many attempts; try again in \d+ seconds\.", last.text)
    assert int(last.headers["retry-after"]) >= 1


def test_sign_in_goes_back_where_the_visitor_was_and_never_elsewhere(visitor: Visitor) -> None:
    email = visitor.register()
    visitor.post("/signout", {})
    for evil in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
        page = visitor.get("/signin", params={"next": evil})
        assert field(page, "next") == "/"
    answer = visitor.post(
        "/signin", {"email": email, "password": PASSWORD, "next": "//evil.example"}
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/"
    visitor.post("/signout", {})
    answer = visitor.post("/signin", {"email": email, "password": PASSWORD, "next": "/orders"})
    assert answer.headers["location"] == "/orders"


def test_cart_actions_redirect_to_the_cart_and_htmx_gets_a_fragment(visitor: Visitor) -> None:
    visitor.register()
    kb, ms = product_ids(visitor, "?q=keyboard")[0], product_ids(visitor, "?q=mouse")[0]
    added = visitor.post("/cart/items", {"product_id": kb, "quantity": "2"})
    assert added.status_code == 303 and added.headers["location"] == "/cart"
    fragment = visitor.post(
        "/cart/items", {"product_id": ms, "quantity": "1"}, headers={"HX-Request": "true"}
    )
    assert fragment.status_code == 200 and "<html" not in fragment.text
    assert "Added to cart." in fragment.text
    assert re.search(r'<span id="cart-count" hx-swap-oob="true">3</span>', fragment.text)
    cart = visitor.get("/cart")
    assert (
        cart.text.count('class="cart-line"') == 2
        and 'Cart (<span id="cart-count">3</span>)' in cart.text
    )
    changed = visitor.post(f"/cart/items/{kb}", {"quantity": "4"})
    assert changed.status_code == 303
    assert 'id="cart-total">€' in visitor.get("/cart").text
    assert visitor.post(f"/cart/items/{kb}", {"quantity": "lots"}).status_code == 400
    assert visitor.post(f"/cart/items/{ms}/remove", {}).status_code == 303
    assert visitor.post(f"/cart/items/{ms}/remove", {}).status_code == 303  # already gone: fine
    zero = visitor.post(f"/cart/items/{kb}", {"quantity": "0"})  # zero removes the line
    assert zero.status_code == 303 and "Your cart is empty." in visitor.get("/cart").text


def test_bad_quantities_are_refused_on_the_product_page(visitor: Visitor) -> None:
    visitor.register()
    kb = product_ids(visitor, "?q=keyboard")[0]
    for quantity in ("0", "-1", "1.5", "100", ""):
        answer = visitor.post("/cart/items", {"product_id": kb, "quantity": quantity})
        assert answer.status_code == 400, quantity
        assert "Quantity must be a whole number from 1 to 99." in answer.text
    too_many = visitor.post("/cart/items", {"product_id": kb, "quantity": "99"})
    assert too_many.status_code == 409 and "Not enough stock" in too_many.text
    assert "Your cart is empty." in visitor.get("/cart").text


def test_the_cart_notes_price_changes_and_stock_that_ran_out(
    shop: LocalPlatform, visitor: Visitor, admin: httpx.Client
) -> None:
    visitor.register()
    pid = product_ids(visitor, "?q=monitor")[0]
    url = shop.urls["product"] + f"/api/v1/products/{pid}"
    before = admin.get(url).json()
    visitor.post("/cart/items", {"product_id": pid, "quantity": "2"})
    try:
        admin.patch(
            url, json={"priceCents": before["priceCents"] + 1000, "stock": 1}
        ).raise_for_status()
        # The cart shows product facts up to 2 s old (cart's product_facts_max_age_seconds).
        cart = eventually(lambda: "Out of stock:" in (page := visitor.get("/cart").text) and page)
        assert re.search(r"Price changed from €[\d,.]+ to €[\d,.]+ since you added it\.", cart)
        assert "Out of stock: lower the quantity or remove it." in cart
        placed = visitor.post(
            "/checkout", {"idempotency_key": field(visitor.get("/cart"), "idempotency_key")}
        )
        assert placed.status_code == 409 and h1(placed) == "Some items ran out of stock"
        assert 'href="/cart"' in placed.text
        assert visitor.get("/cart").text.count('class="cart-line"') == 1  # nothing lost
    finally:
        admin.patch(url, json={"priceCents": before["priceCents"], "stock": before["stock"]})


def test_one_cart_view_places_one_order_however_often_it_is_sent(
    shop: LocalPlatform, visitor: Visitor
) -> None:
    visitor.register()
    kb = product_ids(visitor, "?q=keyboard")[0]
    visitor.post("/cart/items", {"product_id": kb, "quantity": "1"})
    key = field(visitor.get("/cart"), "idempotency_key")
    first = visitor.post("/checkout", {"idempotency_key": key})
    second = visitor.post("/checkout", {"idempotency_key": key})
    assert first.status_code == second.status_code == 303
    assert first.headers["location"] == second.headers["location"]
    assert re.fullmatch(r"/orders/[0-9a-f]{24}", first.headers["location"])
    detail = visitor.get(first.headers["location"])
    assert "Thank you! Your order has been placed." in detail.text
    assert h1(detail).startswith("Order ")
    assert "Mechanical Keyboard" in detail.text and "Placed" in detail.text
    orders = visitor.get("/orders")
    assert orders.text.count('class="order-row"') == 1
    # A checkout with the cart now empty (a new view's key) says so.
    empty = visitor.post("/checkout", {"idempotency_key": uuid.uuid4().hex})
    assert empty.status_code == 303 and empty.headers["location"] == "/cart"
    assert "Your cart is empty: there is nothing to order." in visitor.get("/cart").text
    assert visitor.post("/checkout", {"idempotency_key": "not-a-key"}).status_code == 400


def test_someone_elses_order_is_no_page(visitor: Visitor, shop: LocalPlatform) -> None:
    visitor.register()
    kb = product_ids(visitor, "?q=keyboard")[0]
    visitor.post("/cart/items", {"product_id": kb, "quantity": "1"})
    placed = visitor.post(
        "/checkout", {"idempotency_key": field(visitor.get("/cart"), "idempotency_key")}
    )
    with httpx.Client(base_url=shop.urls["storefront"]) as http:
        other = Visitor(http)
        other.register()
        answer = other.get(placed.headers["location"])
        assert answer.status_code == 404 and h1(answer) == "Page not found"


def test_an_expired_session_signs_in_again_and_keeps_the_cart(visitor: Visitor) -> None:
    email = visitor.register()
    kb = product_ids(visitor, "?q=keyboard")[0]
    visitor.post("/cart/items", {"product_id": kb, "quantity": "1"})
    visitor.http.cookies.set(
        "session", visitor.token[:-4] + "AAAA", domain=visitor.http.base_url.host
    )
    answer = visitor.get("/cart")
    assert answer.status_code == 303 and answer.headers["location"] == "/signin?next=/cart"
    assert any(
        c.startswith('session=""') and "Max-Age=0" in c
        for c in answer.headers.get_list("set-cookie")
    )
    page = visitor.get(answer.headers["location"])
    assert "Your session has expired; please sign in again. Your cart is kept." in page.text
    back = visitor.post("/signin", {"email": email, "password": PASSWORD, "next": "/cart"})
    assert back.headers["location"] == "/cart"
    assert visitor.get("/cart").text.count('class="cart-line"') == 1


def test_account_deletion_asks_first_then_signs_out(shop: LocalPlatform, visitor: Visitor) -> None:
    email = visitor.register()
    account = visitor.get("/account")
    assert email in account.text and 'href="/account/delete"' in account.text
    confirm = visitor.get("/account/delete")
    assert confirm.status_code == 200 and "Delete my account permanently" in confirm.text
    deleted = visitor.post("/account/delete", {})
    assert deleted.status_code == 303 and deleted.headers["location"] == "/"
    assert not visitor.token
    assert "Your account has been deleted." in visitor.get("/").text
    gone = visitor.post("/signin", {"email": email, "password": PASSWORD})
    assert gone.status_code == 401


def test_unknown_pages_and_ids_are_the_404_page(visitor: Visitor) -> None:
    for path in (
        "/no-such-page",
        "/products/0123456789abcdef01234567",
        "/products/bad!id",
        "/pictures/audio/x.png",
    ):
        answer = visitor.get(path)
        assert answer.status_code == 404, path
        assert h1(answer) == "Page not found" and answer.headers["content-type"].startswith(
            "text/html"
        )
    assert visitor.http.delete("/cart").status_code == 405


def test_a_service_that_is_down_gives_the_friendly_page_and_the_shop_recovers(
    shop: LocalPlatform, visitor: Visitor
) -> None:
    visitor.register()
    shop.stop_service("product")
    try:
        down = visitor.get("/?q=keyboard")
        assert down.status_code == 503 and int(down.headers["retry-after"]) >= 1
        assert h1(down) == "Something is temporarily unavailable"
        assert 'href="/?q=keyboard"' in down.text and "Try again" in down.text
        assert "Traceback" not in down.text and "product" not in h1(down)
        assert visitor.get("/orders").status_code == 200  # the rest of the shop still works
    finally:
        shop.start_service("product")
    assert visitor.get("/?q=keyboard").status_code == 200
    assert visitor.get("/cart").status_code == 200  # still signed in


def test_pictures_are_drawn_here_and_cacheable(visitor: Visitor) -> None:
    answer = visitor.get("/pictures/audio/HP-010.svg")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("image/svg+xml")
    assert "max-age=86400" in answer.headers["cache-control"]
    assert "http://www.w3.org/2000/svg" in answer.text
    assert not re.search(r'(?:href|src)="', answer.text)  # it refers to nothing
    assert answer.text == visitor.get("/pictures/audio/HP-010.svg").text
    assert answer.text != visitor.get("/pictures/audio/HP-011.svg").text


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics"])
def test_probes_and_metrics_are_no_page_for_a_request_through_a_proxy(
    visitor: Visitor, path: str
) -> None:
    # The ingress routes "/" here and sets X-Forwarded-For; the kubelet and Prometheus do not.
    for relayed in ({"X-Forwarded-For": "203.0.113.9"}, {"Forwarded": "for=203.0.113.9"}):
        answer = visitor.get(path, headers=relayed)
        assert answer.status_code == 404 and h1(answer) == "Page not found"


def test_probes_and_metrics(visitor: Visitor) -> None:
    assert visitor.get("/healthz").json() == {"status": "ok", "checks": {}}
    assert visitor.get("/readyz").status_code == 200
    visitor.get("/")
    deadline = time.monotonic() + 5
    served = re.compile(r'checkout_requests_total\{app_name="storefront",method="GET",path="/",')
    while not served.search(visitor.get("/metrics").text):
        assert time.monotonic() < deadline
        time.sleep(0.1)
