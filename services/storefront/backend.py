"""The storefront's view of the four services: one typed method per call a page makes.

Every call goes through the kit's :class:`ServiceClient` (timeouts, retries of what is safe to
retry, the request id passed along) and acts as the shopper: their bearer token, and their
address in ``X-Forwarded-For`` so the services' per-client limits count shoppers, not the
storefront (the services trust it as a proxy where the platform says so).

Answers are read into the services' own response types. A service's refusal becomes
:class:`Refused` (the page shows its message); a 401 on a shopper's call means the token has
expired or was revoked (:class:`SessionExpired`: the shopper signs in again and keeps their cart);
a service that is down raises the kit's ``DependencyUnavailable`` (the friendly 503 page).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, TypeVar

import httpx
import msgspec

from services.auth.schemas import Token, TokenCheck, User
from services.cart.schemas import Cart
from services.kit.http import IDEMPOTENCY_HEADER, ServiceClient
from services.order.schemas import Order, OrderPage
from services.product.schemas import CategoryList, Product, ProductPage

T = TypeVar("T")

# Categories change when products are created or deleted (an admin's act): the catalogue's
# filter may show them this long after.
CATEGORIES_TTL_SECONDS = 60.0


class SessionExpired(Exception):
    """The shopper's token was refused: they sign in again."""


class Refused(Exception):
    """A service refused the request (4xx other than 401); ``detail`` is its problem detail."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        errors: list[dict[str, Any]] | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = errors or []
        self.retry_after = retry_after


class _Problem(msgspec.Struct):
    detail: str = ""
    errors: list[dict[str, Any]] = msgspec.field(default_factory=list)


def _refusal(response: httpx.Response) -> Refused:
    try:
        problem = msgspec.json.decode(response.content, type=_Problem)
    except msgspec.DecodeError:
        problem = _Problem(detail=response.reason_phrase)
    retry_after = response.headers.get("Retry-After", "")
    return Refused(
        response.status_code,
        problem.detail,
        errors=problem.errors,
        retry_after=int(retry_after) if retry_after.isdigit() else None,
    )


class Backend:
    def __init__(
        self, clients: Mapping[str, ServiceClient], *, password_timeout: float | None = None
    ) -> None:
        self.auth = clients["auth"]
        self.password_timeout = password_timeout
        self.product = clients["product"]
        self.cart = clients["cart"]
        self.order = clients["order"]
        self._categories: tuple[float, list[str]] | None = None

    async def _call(
        self,
        client: ServiceClient,
        method: str,
        path: str,
        answer: type[T],
        *,
        token: str | None = None,
        client_address: str | None = None,
        json: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        read_timeout: float | None = None,
    ) -> T:
        sent = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        if client_address:
            sent["X-Forwarded-For"] = client_address
        response = await client.request(
            method, path, json=json, params=params, headers=sent, read_timeout=read_timeout
        )
        status = response.status_code
        if 200 <= status < 300:
            if answer is type(None):
                return None  # type: ignore[return-value,unused-ignore]
            return client.decode(response, answer)
        if status == 401 and token is not None:
            raise SessionExpired
        if 400 <= status < 500:
            raise _refusal(response)
        raise client.unexpected(response)

    # --- auth ------------------------------------------------------------------------------
    async def sign_in(self, email: str, password: str, client_address: str) -> Token:
        return await self._call(
            self.auth,
            "POST",
            "/api/v1/auth/token",
            Token,
            json={"email": email, "password": password},
            client_address=client_address,
            read_timeout=self.password_timeout,
        )

    async def register(self, email: str, password: str, name: str | None) -> User:
        body: dict[str, Any] = {"email": email, "password": password}
        if name:
            body["name"] = name
        return await self._call(
            self.auth,
            "POST",
            "/api/v1/auth/register",
            User,
            json=body,
            read_timeout=self.password_timeout,
        )

    async def whoami(self, token: str) -> User:
        return (
            await self._call(self.auth, "GET", "/api/v1/auth/verify", TokenCheck, token=token)
        ).user

    async def delete_account(self, token: str, user_id: str) -> None:
        await self._call(self.auth, "DELETE", f"/api/v1/users/{user_id}", type(None), token=token)

    # --- product ---------------------------------------------------------------------------
    async def products(
        self, *, page: int, page_size: int, q: str | None, category: str | None, sort: str
    ) -> ProductPage:
        params: dict[str, Any] = {"page": page, "pageSize": page_size, "sort": sort}
        if q:
            params["q"] = q
        if category:
            params["category"] = category
        return await self._call(self.product, "GET", "/api/v1/products", ProductPage, params=params)

    async def product_by_id(self, product_id: str) -> Product:
        return await self._call(self.product, "GET", f"/api/v1/products/{product_id}", Product)

    async def categories(self) -> list[str]:
        now = time.monotonic()
        if self._categories is not None and now - self._categories[0] < CATEGORIES_TTL_SECONDS:
            return self._categories[1]
        found = await self._call(self.product, "GET", "/api/v1/categories", CategoryList)
        self._categories = (now, found.items)
        return found.items

    # --- cart ------------------------------------------------------------------------------
    async def view_cart(self, token: str) -> Cart:
        return await self._call(self.cart, "GET", "/api/v1/cart", Cart, token=token)

    async def add_to_cart(self, token: str, product_id: str, quantity: int) -> Cart:
        body = {"productId": product_id, "quantity": quantity}
        return await self._call(
            self.cart, "POST", "/api/v1/cart/items", Cart, token=token, json=body
        )

    async def set_quantity(self, token: str, product_id: str, quantity: int) -> Cart:
        return await self._call(
            self.cart,
            "PATCH",
            f"/api/v1/cart/items/{product_id}",
            Cart,
            token=token,
            json={"quantity": quantity},
        )

    async def remove_from_cart(self, token: str, product_id: str) -> None:
        await self._call(
            self.cart, "DELETE", f"/api/v1/cart/items/{product_id}", type(None), token=token
        )

    # --- order -----------------------------------------------------------------------------
    async def place_order(self, token: str, idempotency_key: str) -> Order:
        return await self._call(
            self.order,
            "POST",
            "/api/v1/orders",
            Order,
            token=token,
            headers={IDEMPOTENCY_HEADER: idempotency_key},
        )

    async def orders(self, token: str, page: int, page_size: int) -> OrderPage:
        params = {"page": page, "pageSize": page_size}
        return await self._call(
            self.order, "GET", "/api/v1/orders", OrderPage, token=token, params=params
        )

    async def order_by_id(self, token: str, order_id: str) -> Order:
        return await self._call(self.order, "GET", f"/api/v1/orders/{order_id}", Order, token=token)
