"""What the browser tests do on the storefront's pages, as a shopper would (by role, label and
visible text, the way a screen reader finds things), and what they check behind its back through
the services' own APIs."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import httpx
from playwright.sync_api import Locator, Page, expect

from services.local.platform import LocalPlatform

T = TypeVar("T")
AXE_SCRIPT = Path(__file__).resolve().parent / "node_modules" / "axe-core" / "axe.min.js"
PASSWORD = "correct horse battery"
# axe-core's impact levels that fail a page; minor and moderate ones are listed by the check but
# pass (axe's own guidance: serious and critical barriers block or badly hinder some users).
BLOCKING_IMPACTS = ("serious", "critical")


def price(cents: int) -> str:
    """A price as the storefront shows it: "€12.50"."""
    return f"€{cents // 100}.{cents % 100:02d}"


def new_email(label: str = "shopper") -> str:
    return f"{label}-{uuid.uuid4().hex[:10]}@example.com"


# --- pages -----------------------------------------------------------------------------------


def header_link(page: Page, name: str) -> Locator:
    """A link of the site's header by its name ("Cart" also matches "Cart (2)")."""
    return page.get_by_role("banner").get_by_role("link", name=re.compile(rf"^{re.escape(name)}\b"))


def status(page: Page) -> Locator:
    return page.get_by_role("status")


def alert(page: Page) -> Locator:
    return page.get_by_role("alert")


def cart_count(page: Page) -> Locator:
    return page.locator("#cart-count")


def product_cards(page: Page) -> Locator:
    return page.locator("article.product-card")


def card_of(page: Page, name: str) -> Locator:
    return product_cards(page).filter(has=page.get_by_role("link", name=name, exact=True))


def card_names(page: Page) -> list[str]:
    return [
        text.strip()
        for text in product_cards(page).locator("a[href^='/products/']").all_inner_texts()
        if text.strip()
    ]


def search(page: Page, text: str = "", *, category: str = "", sort: str = "") -> None:
    form = page.get_by_role("search")
    form.get_by_label("Search").fill(text)
    form.get_by_label("Category").select_option(category)  # "": All categories
    if sort:
        form.get_by_label("Sort by").select_option(sort)
    # A GET form: wait for the page it loads before anything reads the results.
    with page.expect_navigation():
        form.get_by_role("button", name="Apply").click()


def fill_registration(page: Page, email: str, name: str, password: str = PASSWORD) -> None:
    page.get_by_label("Name").fill(name)
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Create account").click()


def register(page: Page, email: str, name: str = "Ada Lovelace", password: str = PASSWORD) -> None:
    """Register from the header's link; the shopper is signed in afterwards."""
    page.goto("/")
    header_link(page, "Register").click()
    expect(page).to_have_url(re.compile(r"/register"))
    fill_registration(page, email, name, password)
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()


def sign_in_form(page: Page, email: str, password: str = PASSWORD) -> None:
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("main").get_by_role("button", name="Sign in").click()


def open_product(page: Page, name: str) -> str:
    """Search the catalogue for ``name``, open its page; returns the product's path."""
    page.goto("/")
    search(page, name)
    link = card_of(page, name).get_by_role("link", name=name, exact=True)
    path = link.get_attribute("href")
    assert path and re.fullmatch(r"/products/[^/?#]+", path), path
    link.click()
    expect(page).to_have_url(re.compile(re.escape(path) + "$"))
    expect(page.get_by_role("heading", level=1)).to_have_text(name)
    return path


def add_to_cart(page: Page, quantity: int = 1) -> None:
    """On a product page: add ``quantity``; with htmx the page stays and says so."""
    # As a shopper would: once the page has loaded (htmx set up). A click before that is the
    # no-script form post (to the cart page), which a loaded CI machine once raced into.
    page.wait_for_load_state("load")
    page.get_by_label("Quantity", exact=True).fill(str(quantity))
    page.get_by_role("button", name="Add to cart").click()


def cart_line(page: Page, name: str) -> Locator:
    return page.locator("tr.cart-line").filter(has=page.get_by_role("link", name=name, exact=True))


def set_quantity(page: Page, name: str, quantity: int) -> None:
    page.wait_for_load_state("load")  # see add_to_cart
    line = cart_line(page, name)
    line.get_by_label(f"Quantity for {name}").fill(str(quantity))
    line.get_by_role("button", name="Update").click()


def place_order(page: Page) -> str:
    """From the cart: place the order; returns the order's id from the page it lands on."""
    page.get_by_role("button", name="Place order").click()
    expect(page).to_have_url(re.compile(r"/orders/[^/?#]+$"))
    expect(status(page)).to_contain_text("Thank you! Your order has been placed.")
    return page.url.rstrip("/").rsplit("/", 1)[1]


def no_horizontal_overflow(page: Page) -> None:
    widths = page.evaluate("() => [document.scrollingElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], f"{page.url}: {widths[0]} px wide in a {widths[1]} px viewport"


# Why the focused element does not visibly show its focus ("" when it does): :focus-visible must
# match and an outline or a ring (a box-shadow) be drawn - not a style that removes the browser's.
FOCUS_PROBLEM = """el => {
    if (!el || el === document.body) return 'nothing is focused';
    const style = getComputedStyle(el);
    const outline = style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) > 0;
    const ring = style.boxShadow !== 'none';
    const what = el.outerHTML.slice(0, 120);
    if (!el.matches(':focus-visible')) return `${what}: no :focus-visible`;
    if (!outline && !ring) return `${what}: no outline or ring`;
    return '';
}"""


def focus_is_visible(page: Page) -> None:
    shown = page.evaluate(f"() => ({FOCUS_PROBLEM})(document.activeElement)")
    assert shown == "", f"{page.url}: {shown}"


def tab_to(page: Page, target: Locator, *, limit: int = 60) -> None:
    """Press Tab until ``target`` has the focus, checking that every stop on the way shows it."""
    handle = target.element_handle()
    for _ in range(limit):
        page.keyboard.press("Tab")
        # Past the last stop the focus leaves the page for the browser's own UI (the body is the
        # active element) before it comes round to the top again.
        reached, problem = page.evaluate(
            f"""target => {{
                const el = document.activeElement;
                const problem = el === document.body ? '' : ({FOCUS_PROBLEM})(el);
                return [el === target, problem];
            }}""",
            handle,
        )
        assert problem == "", f"{page.url}: {problem}"
        if reached:
            return
    raise AssertionError(f"{page.url}: {target} not reached in {limit} presses of Tab")


# --- accessibility ---------------------------------------------------------------------------


def axe_violations(page: Page, axe_script: Path) -> list[str]:
    """Run axe-core on the page as it is; one line per serious or critical violation: the rule,
    its impact, and the elements it found."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        # Evaluated through the DevTools protocol: the shop's Content-Security-Policy (scripts
        # from its own origin only) refuses a <script> tag with axe's source in it, rightly.
        page.evaluate(axe_script.read_text(encoding="utf-8") + "\n;undefined")
    violations: list[dict[str, Any]] = page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
    )
    return [
        f"{page.url} {v['id']} ({v['impact']}): {v['help']} - "
        + ", ".join(" ".join(map(str, node["target"])) for node in v["nodes"][:5])
        for v in violations
        if v.get("impact") in BLOCKING_IMPACTS
    ]


@dataclass
class Screenshots:
    folder: Path
    enabled: bool

    def take(self, page: Page, name: str, *, full_page: bool = False) -> None:
        if self.enabled:
            self.folder.mkdir(parents=True, exist_ok=True)
            # caret="initial": hiding the caret means a <style> injected into the page, which
            # the shop's Content-Security-Policy refuses (and the watcher would report).
            page.screenshot(
                path=str(self.folder / f"{name}.png"), full_page=full_page, caret="initial"
            )


# --- behind the storefront -------------------------------------------------------------------


@dataclass
class Backends:
    """The services' APIs, called directly (not by the browser): the truth the pages must
    show."""

    platform: LocalPlatform
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=15))
    _admin_token: str = ""

    def __enter__(self) -> Backends:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.http.close()

    def url(self, service: str, path: str) -> str:
        return self.platform.urls[service] + path

    def token(self, email: str, password: str = PASSWORD) -> httpx.Response:
        return self.http.post(
            self.url("auth", "/api/v1/auth/token"), json={"email": email, "password": password}
        )

    def register(self, email: str, name: str = "Grace Hopper", password: str = PASSWORD) -> str:
        """An account made through auth's API; returns its user id."""
        response = self.http.post(
            self.url("auth", "/api/v1/auth/register"),
            json={"email": email, "password": password, "name": name},
        )
        assert response.status_code == 201, response.text
        user_id: str = response.json()["id"]
        return user_id

    def signed_in(self, email: str, password: str = PASSWORD) -> tuple[str, str]:
        """(user id, bearer token) of an account."""
        response = self.token(email, password)
        assert response.status_code == 200, response.text
        body = response.json()
        return body["user"]["id"], body["accessToken"]

    @property
    def admin(self) -> dict[str, str]:
        if not self._admin_token:
            _, self._admin_token = self.signed_in(
                self.platform.admin_email, self.platform.admin_password
            )
        return {"Authorization": f"Bearer {self._admin_token}"}

    def products(self, **params: Any) -> dict[str, Any]:
        response = self.http.get(self.url("product", "/api/v1/products"), params=params)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def product(self, name: str) -> dict[str, Any]:
        items = [p for p in self.products(q=name, pageSize=100)["items"] if p["name"] == name]
        assert len(items) == 1, (name, items)
        found: dict[str, Any] = items[0]
        return found

    def new_product(self, *, stock: int, price_cents: int = 4500) -> dict[str, Any]:
        """A product of the test's own (the admin API), so that changing its stock or price
        affects no other test."""
        tag = uuid.uuid4().hex[:8]
        body = {
            "sku": f"T-{tag}",
            "name": f"Limited Print {tag}",
            "category": "art",
            "priceCents": price_cents,
            "stock": stock,
            "description": "A print made for one test.",
        }
        response = self.http.post(
            self.url("product", "/api/v1/products"), json=body, headers=self.admin
        )
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    def update_product(self, product_id: str, **changes: Any) -> None:
        response = self.http.patch(
            self.url("product", f"/api/v1/products/{product_id}"), json=changes, headers=self.admin
        )
        assert response.status_code == 200, response.text

    def orders_of(self, user_id: str) -> list[dict[str, Any]]:
        """Every order of a user, as the admin sees them in the order service."""
        response = self.http.get(
            self.url("order", "/api/v1/orders"),
            params={"userId": user_id, "pageSize": 100},
            headers=self.admin,
        )
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        return items


def stock_text(stock: int) -> str:
    if stock <= 0:
        return "Out of stock"
    return f"Only {stock} left" if stock <= 5 else "In stock"
