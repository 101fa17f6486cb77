"""HTTP routes of the cart service: the clean API (its handlers also answer seed 000's routes that
behave the same, ``with_seed_paths``), the internal routes used by order and by auth's deletion
cascade, then the one seed route of its own."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, Router, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import JSONBody, Parameter, QueryParameter
from litestar.status_codes import HTTP_202_ACCEPTED, HTTP_204_NO_CONTENT

from services.cart.schemas import Cart, CartItemCreate, CartItemUpdate
from services.cart.service import CartService
from services.kit.app import from_state
from services.kit.contracts import MAX_LINE_QUANTITY, CartContents, CartRemoval
from services.kit.errors import BadRequest
from services.kit.openapi import SEED_TAG, problems, with_seed_paths
from services.kit.security import DELETION_CHECKED_BY_HANDLER, authenticate
from services.kit.tokens import Principal

ProductIdPath = Annotated[str, Parameter(max_length=64, description="a product id")]
UserIdPath = Annotated[str, Parameter(max_length=64, description="a user id")]


class CartController(Controller):
    path = "/api"
    tags = ["cart"]

    # Litestar ignores a trailing slash, so the seed's ``/api/cart/get-cart/`` answers here too.
    @get(
        **with_seed_paths("getCart", "/v1/cart", seedGetCart="/cart/get-cart"),
        dependencies=DELETION_CHECKED_BY_HANDLER,
    )
    async def get_cart(
        self, principal: NamedDependency[Principal], cart_service: NamedDependency[CartService]
    ) -> Cart:
        """Your cart, with current prices, line totals and a total."""
        return await cart_service.view(principal.user_id)

    @delete("/v1/cart", operation_id="clearCart", status_code=HTTP_204_NO_CONTENT)
    async def clear_cart(
        self, principal: NamedDependency[Principal], cart_service: NamedDependency[CartService]
    ) -> None:
        """Empty your cart."""
        await cart_service.clear(principal.user_id)

    @post(
        **with_seed_paths("addCartItem", "/v1/cart/items", seedAddToCart="/cart/add-to-cart"),
        opt=problems(404, 409),
        status_code=200,
        dependencies=DELETION_CHECKED_BY_HANDLER,
    )
    async def add_item(
        self,
        data: JSONBody[CartItemCreate],
        principal: NamedDependency[Principal],
        cart_service: NamedDependency[CartService],
    ) -> Cart:
        """Add units of a product (in stock); adding a product again raises its quantity."""
        return await cart_service.add(principal.user_id, data)

    @patch(
        "/v1/cart/items/{product_id:str}",
        operation_id="updateCartItem",
        opt=problems(404, 409),
        dependencies=DELETION_CHECKED_BY_HANDLER,
    )
    async def update_item(
        self,
        product_id: ProductIdPath,
        data: JSONBody[CartItemUpdate],
        principal: NamedDependency[Principal],
        cart_service: NamedDependency[CartService],
    ) -> Cart:
        """Set the quantity of a product in your cart."""
        return await cart_service.set_quantity(principal.user_id, product_id, data.quantity)

    @delete(
        **with_seed_paths(
            "removeCartItem",
            "/v1/cart/items/{product_id:str}",
            seedDeleteCartItem="/cart/delete-cart/{product_id:str}",
        ),
        opt=problems(404),
        status_code=204,
    )
    async def remove_item(
        self,
        product_id: ProductIdPath,
        principal: NamedDependency[Principal],
        cart_service: NamedDependency[CartService],
    ) -> None:
        """Take a product out of your cart."""
        await cart_service.remove(principal.user_id, product_id)


class InternalCartController(Controller):
    """Routes for other services (internal API key): order reads and trims carts; auth's
    deletion cascade deletes them."""

    path = "/internal/v1/users/{user_id:str}/cart"
    tags = ["internal"]

    @get("/", operation_id="internalGetCart")
    async def contents(
        self,
        user_id: UserIdPath,
        internal_caller: NamedDependency[str],
        cart_service: NamedDependency[CartService],
    ) -> CartContents:
        return await cart_service.contents(user_id)

    @post("/removals", operation_id="internalRemoveOrderedLines", status_code=HTTP_204_NO_CONTENT)
    async def remove_ordered(
        self,
        user_id: UserIdPath,
        data: JSONBody[CartRemoval],
        internal_caller: NamedDependency[str],
        cart_service: NamedDependency[CartService],
    ) -> None:
        await cart_service.take_out(user_id, data)

    @delete(
        "/",
        operation_id="internalDeleteUserCart",
        status_code=HTTP_204_NO_CONTENT,
        responses={
            HTTP_202_ACCEPTED: ResponseSpec(
                None,
                description="Deleted, not yet settled: call again after deletionSettleSeconds.",
            )
        },
    )
    async def delete_user_cart(
        self,
        user_id: UserIdPath,
        internal_caller: NamedDependency[str],
        cart_service: NamedDependency[CartService],
    ) -> Response[None]:
        """Delete the user's cart: 204 once settled; 202 while a write that began before the
        deletion may still be running (the caller calls again later)."""
        settled = await cart_service.delete_user(user_id)
        return Response(None, status_code=HTTP_204_NO_CONTENT if settled else HTTP_202_ACCEPTED)


def looks_like_jwt(value: str) -> bool:
    # A JWT is three base64url parts, the first a JSON header ("{" encodes to "ey").
    return value.startswith("eyJ") and value.count(".") == 2


class SeedRoutes(Controller):
    """Seed 000's route with no clean twin: a quantity change by GET, the token in the path."""

    path = "/api/cart"
    tags = [SEED_TAG]

    @get(
        "/edit-quantity/{token:str}",
        operation_id="seedEditQuantity",
        opt=problems(401, 404, 409, authenticates=True),
    )
    async def seed_edit_quantity(
        self,
        request: Request[Any, Any, Any],
        token: Annotated[str, Parameter(max_length=4096)],
        quantity: Annotated[int, QueryParameter(ge=1, le=MAX_LINE_QUANTITY)],
        cart_service: NamedDependency[CartService],
        product_id: Annotated[str | None, QueryParameter(name="productId", max_length=64)] = None,
    ) -> Cart:
        """The path value is the bearer token when it is a JWT (the product id then comes from
        ``?productId=``); otherwise it is the product id and the token comes from the
        Authorization header."""
        if looks_like_jwt(token):
            principal = await authenticate(request, token, check_revoked=False)
            if not product_id:
                raise BadRequest("Give the product id as ?productId=<productId>.")
        else:
            principal = await authenticate(request, check_revoked=False)
            if product_id and product_id != token:
                raise BadRequest("The path and ?productId= name different products.")
            product_id = token
        return await cart_service.set_quantity(principal.user_id, product_id, quantity)


router = Router(
    path="/",
    route_handlers=[CartController, InternalCartController, SeedRoutes],
    dependencies={"cart_service": from_state("cart_service")},
)
