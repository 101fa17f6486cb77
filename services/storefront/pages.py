"""The shop's pages and form actions. Every page is complete HTML (the shop works with JavaScript
off); with htmx, adding to the cart and changing it update the page in place. Form actions answer
303 See Other, so a reload never posts twice."""

from __future__ import annotations

import asyncio
import re
import uuid
from typing import Annotated, Any, Literal

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import State
from litestar.exceptions import NotFoundException
from litestar.params import Parameter
from litestar.response import Template

from services.auth.schemas import Token
from services.kit.contracts import MAX_LINE_QUANTITY
from services.kit.http import DependencyUnavailable
from services.storefront.backend import Backend, Refused
from services.storefront.pictures import CATEGORY, SKU, product_picture
from services.storefront.session import (
    FLASH_COOKIE,
    SESSION_COOKIE,
    client_address,
    expired,
    redirect,
    safe_next,
    session_cookie,
    take_flash,
    token_of,
)

Req = Request[Any, Any, Any]
ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_QUANTITY = MAX_LINE_QUANTITY  # of one product in a cart
SortKey = Literal["name", "-name", "price", "-price", "newest"]
SORTS: list[tuple[str, str]] = [
    ("name", "Name (A-Z)"),
    ("-name", "Name (Z-A)"),
    ("price", "Price (low to high)"),
    ("-price", "Price (high to low)"),
    ("newest", "Newest first"),
]


def backend(state: State) -> Backend:
    found: Backend = state.backend
    return found


def secure(state: State) -> bool:
    return bool(state.settings.cookie_secure)


def is_htmx(request: Req) -> bool:
    return request.headers.get("hx-request") == "true"


def checked_id(value: str) -> str:
    """An id from the URL, before it goes into a service's URL: anything else is no page."""
    if not ID.match(value):
        raise NotFoundException()
    return value


async def page(
    request: Req,
    template: str,
    context: dict[str, Any],
    *,
    status: int = 200,
    cart_count: int | None = None,
    headers: dict[str, str] | None = None,
) -> Template:
    """A full page: the template plus what the header shows (signed in or not, the cart's item
    count) and the one-shot message a redirect left."""
    token = token_of(request)
    if token is not None and cart_count is None:
        try:
            cart_count = (await backend(request.app.state).view_cart(token)).item_count
        except DependencyUnavailable:
            cart_count = None  # the header shows no count; the page itself still works
    flash = take_flash(request)
    cookies = [expired(FLASH_COOKIE, secure(request.app.state))] if flash else []
    return Template(
        template_name=template,
        context={
            **context,
            "signed_in": token is not None,
            "cart_count": cart_count,
            "flash": flash,
            "path": request.url.path,
        },
        status_code=status,
        headers={"Cache-Control": "no-store", **(headers or {})},
        cookies=cookies,
    )


def sign_in_first(request: Req, next_path: str) -> Response[Any]:
    target = f"/signin?next={next_path}"
    answer = redirect(target, flash="sign-in-needed", secure=secure(request.app.state))
    if is_htmx(request):
        # htmx would follow a 303 inside the page; HX-Redirect makes the browser go there.
        return Response(
            b"", status_code=204, headers={"HX-Redirect": target}, cookies=answer.cookies
        )
    return answer


def signed_in(state: State, token: Token, next_path: str, *, flash: str) -> Response[Any]:
    """On to ``next_path`` with the session cookie holding the new access token."""
    cookie = session_cookie(token.access_token, token.expires_in, secure(state))
    return redirect(next_path, flash=flash, secure=secure(state), cookies=[cookie])


def form_quantity(form: Any, *, minimum: int = 1) -> int | None:
    raw = str(form.get("quantity", "")).strip()
    if not raw.isdigit():
        return None
    value = int(raw)
    return value if minimum <= value <= MAX_QUANTITY else None


QUANTITY_MESSAGE = f"Quantity must be a whole number from 1 to {MAX_QUANTITY}."


class CataloguePages(Controller):
    @get("/", name="catalogue")
    async def catalogue(
        self,
        request: Req,
        state: State,
        q: Annotated[str | None, Parameter(max_length=100)] = None,
        category: Annotated[str | None, Parameter(max_length=50)] = None,
        sort: SortKey = "name",
        page_number: Annotated[int, Parameter(query="page", ge=1, le=100_000)] = 1,
    ) -> Template:
        shop = backend(state)
        size = state.settings.page_size
        q = (q or "").strip() or None
        category = category or None
        if category is not None and not CATEGORY.match(category):
            category = None
        found, categories = await asyncio.gather(
            shop.products(page=page_number, page_size=size, q=q, category=category, sort=sort),
            shop.categories(),
        )
        return await page(
            request,
            "catalogue.html",
            {
                "products": found.items,
                "total": found.total,
                "page_number": page_number,
                "pages": found.pages,
                "q": q or "",
                "category": category or "",
                "categories": categories,
                "sort": sort,
                "sorts": SORTS,
            },
        )

    @get("/products/{product_id:str}", name="product")
    async def product(self, request: Req, state: State, product_id: str) -> Template:
        found = await backend(state).product_by_id(checked_id(product_id))
        return await page(request, "product.html", {"product": found, "quantity": 1})

    @get("/pictures/{category:str}/{name:str}", name="picture", sync_to_thread=False)
    def picture(self, category: str, name: str) -> Response[str]:
        sku = name.removesuffix(".svg")
        if not name.endswith(".svg") or not CATEGORY.match(category) or not SKU.match(sku):
            raise NotFoundException()
        return Response(
            product_picture(category, sku),
            media_type="image/svg+xml",
            headers={"Cache-Control": "public, max-age=86400"},
        )


class CartPages(Controller):
    @get("/cart", name="cart")
    async def cart(self, request: Req, state: State) -> Response[Any]:
        token = token_of(request)
        if token is None:
            return sign_in_first(request, "/cart")
        return await self.render(request, state, token)

    @staticmethod
    async def render(
        request: Req, state: State, token: str, *, error: str | None = None, status: int = 200
    ) -> Template:
        cart = await backend(state).view_cart(token)
        # A new key for every view of the cart: the form it renders places one order, however
        # often it is submitted (a double click, a reload, the back button).
        return await page(
            request,
            "cart.html",
            {"cart": cart, "idempotency_key": uuid.uuid4().hex, "error": error},
            status=status,
            cart_count=cart.item_count,
        )

    @post("/cart/items", name="add-to-cart")
    async def add(self, request: Req, state: State) -> Response[Any]:
        form = await request.form()
        product_id = checked_id(str(form.get("product_id", "")))
        token = token_of(request)
        if token is None:
            return sign_in_first(request, f"/products/{product_id}")
        shop = backend(state)
        quantity = form_quantity(form)
        error, status = None, 400
        if quantity is None:
            error = QUANTITY_MESSAGE
        else:
            try:
                cart = await shop.add_to_cart(token, product_id, quantity)
            except Refused as refused:
                if refused.status == 404:
                    raise NotFoundException() from refused
                error, status = refused.detail, refused.status
            else:
                if is_htmx(request):
                    return Template(
                        template_name="_added.html",
                        context={"cart_count": cart.item_count, "message": "Added to cart."},
                        headers={"Cache-Control": "no-store"},
                    )
                return redirect("/cart", flash="added", secure=secure(state))
        product = await shop.product_by_id(product_id)
        if is_htmx(request):
            return Template(
                template_name="_added.html",
                context={"cart_count": None, "error": error},
                status_code=status,
                headers={"Cache-Control": "no-store"},
            )
        context = {"product": product, "quantity": quantity or 1, "error": error}
        return await page(request, "product.html", context, status=status)

    @post("/cart/items/{product_id:str}", name="change-quantity")
    async def change(self, request: Req, state: State, product_id: str) -> Response[Any]:
        """A new quantity for a line; 0 removes it."""
        quantity = form_quantity(await request.form(), minimum=0)
        return await self._set_line(request, state, product_id, quantity, flash="updated")

    @post("/cart/items/{product_id:str}/remove", name="remove-from-cart")
    async def remove(self, request: Req, state: State, product_id: str) -> Response[Any]:
        return await self._set_line(request, state, product_id, 0, flash="removed")

    async def _set_line(
        self, request: Req, state: State, product_id: str, quantity: int | None, *, flash: str
    ) -> Response[Any]:
        checked_id(product_id)
        token = token_of(request)
        if token is None:
            return sign_in_first(request, "/cart")
        if quantity is None:
            return await self.render(request, state, token, error=QUANTITY_MESSAGE, status=400)
        try:
            if quantity == 0:
                await backend(state).remove_from_cart(token, product_id)
            else:
                await backend(state).set_quantity(token, product_id, quantity)
        except Refused as refused:
            # A line already gone is removed all the same: the cart shows what is left.
            if not (quantity == 0 and refused.status == 404):
                return await self.render(
                    request, state, token, error=refused.detail, status=refused.status
                )
        return redirect("/cart", flash=flash, secure=secure(state))

    @post("/checkout", name="checkout")
    async def checkout(self, request: Req, state: State) -> Response[Any]:
        token = token_of(request)
        if token is None:
            return sign_in_first(request, "/cart")
        key = str((await request.form()).get("idempotency_key", ""))
        if not re.fullmatch(r"[0-9a-f]{32}", key):
            return await self.render(
                request, state, token, error="The order form was incomplete; try again.", status=400
            )
        try:
            order = await backend(state).place_order(token, key)
        except Refused as refused:
            if refused.status == 409 and refused.detail == "The cart is empty.":
                return redirect("/cart", flash="cart-empty", secure=secure(state))
            if refused.status == 409:
                return await page(
                    request,
                    "out_of_stock.html",
                    {"detail": refused.detail},
                    status=409,
                )
            raise
        return redirect(f"/orders/{order.id}", flash="order-placed", secure=secure(state))


class OrderPages(Controller):
    @get("/orders", name="orders")
    async def orders(
        self,
        request: Req,
        state: State,
        page_number: Annotated[int, Parameter(query="page", ge=1, le=100_000)] = 1,
    ) -> Response[Any]:
        token = token_of(request)
        if token is None:
            return sign_in_first(request, "/orders")
        size = 20
        found = await backend(state).orders(token, page_number, size)
        return await page(
            request,
            "orders.html",
            {"orders": found.items, "page_number": page_number, "pages": found.pages},
        )

    @get("/orders/{order_id:str}", name="order")
    async def order(self, request: Req, state: State, order_id: str) -> Response[Any]:
        checked_id(order_id)
        token = token_of(request)
        if token is None:
            return sign_in_first(request, f"/orders/{order_id}")
        try:
            found = await backend(state).order_by_id(token, order_id)
        except Refused as refused:
            if refused.status in (403, 404):
                raise NotFoundException() from refused
            raise
        return await page(request, "order.html", {"order": found})


class AccountPages(Controller):
    @get("/signin", name="signin")
    async def signin_form(
        self, request: Req, next_path: Annotated[str | None, Parameter(query="next")] = None
    ) -> Template:
        return await page(request, "signin.html", {"next": safe_next(next_path), "email": ""})

    @post("/signin", name="signin-action")
    async def signin(self, request: Req, state: State) -> Response[Any]:
        form = await request.form()
        email = str(form.get("email", "")).strip()
        password = str(form.get("password", ""))
        next_path = safe_next(str(form.get("next", "")))
        error, status, retry_after = None, 200, None
        if not email or not password:
            error, status = "Enter your email and password.", 400
        else:
            try:
                token = await backend(state).sign_in(email, password, client_address(request))
            except Refused as refused:
                status = refused.status
                if refused.status == 429:
                    retry_after = refused.retry_after or 60
                    error = f"Too many attempts; try again in {retry_after} seconds."
                elif refused.status == 400:
                    error = "Enter a valid email address."
                else:
                    error = "Wrong email or password."
            else:
                return signed_in(state, token, next_path, flash="signed-in")
        context = {"next": next_path, "email": email, "error": error}
        headers = {"Retry-After": str(retry_after)} if retry_after else None
        return await page(request, "signin.html", context, status=status, headers=headers)

    @get("/register", name="register")
    async def register_form(
        self, request: Req, next_path: Annotated[str | None, Parameter(query="next")] = None
    ) -> Template:
        context = {"next": safe_next(next_path), "email": "", "name": "", "errors": {}}
        return await page(request, "register.html", context)

    @post("/register", name="register-action")
    async def register(self, request: Req, state: State) -> Response[Any]:
        form = await request.form()
        email = str(form.get("email", "")).strip()
        name = str(form.get("name", "")).strip()
        password = str(form.get("password", ""))
        next_path = safe_next(str(form.get("next", "")))
        errors: dict[str, str] = {}
        if "@" not in email:
            errors["email"] = "Enter a valid email address."
        if len(password) < 8:
            errors["password"] = "Use at least 8 characters."
        if len(password) > 128:
            errors["password"] = "Use at most 128 characters."
        if len(name) > 100:
            errors["name"] = "Use at most 100 characters."
        status = 400
        if not errors:
            shop = backend(state)
            try:
                await shop.register(email, password, name or None)
                token = await shop.sign_in(email, password, client_address(request))
            except Refused as refused:
                status = refused.status
                if refused.status == 409:
                    errors["email"] = "An account with this email already exists; sign in instead."
                elif refused.status == 429:
                    errors["form"] = "Too many attempts; try again in a minute."
                else:
                    errors["form"] = refused.detail
            else:
                return signed_in(state, token, next_path, flash="registered")
        context = {"next": next_path, "email": email, "name": name, "errors": errors}
        return await page(request, "register.html", context, status=status)

    @post("/signout", name="signout")
    async def signout(self, state: State) -> Response[Any]:
        return redirect(
            "/",
            flash="signed-out",
            secure=secure(state),
            cookies=[expired(SESSION_COOKIE, secure(state))],
        )

    @get("/account", name="account")
    async def account(self, request: Req, state: State) -> Response[Any]:
        return await self.about_me(request, state, "account.html")

    @get("/account/delete", name="account-delete")
    async def confirm_delete(self, request: Req, state: State) -> Response[Any]:
        return await self.about_me(request, state, "account_delete.html")

    @staticmethod
    async def about_me(request: Req, state: State, template: str) -> Response[Any]:
        """A page about the signed-in shopper's account."""
        token = token_of(request)
        if token is None:
            return sign_in_first(request, request.url.path)
        user = await backend(state).whoami(token)
        return await page(request, template, {"user": user})

    @post("/account/delete", name="account-delete-action")
    async def delete(self, request: Req, state: State) -> Response[Any]:
        token = token_of(request)
        if token is None:
            return sign_in_first(request, "/account")
        shop = backend(state)
        user = await shop.whoami(token)
        await shop.delete_account(token, user.id)
        return redirect(
            "/",
            flash="account-deleted",
            secure=secure(state),
            cookies=[expired(SESSION_COOKIE, secure(state))],
        )
