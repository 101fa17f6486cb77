"""HTTP routes of the order service: the clean API, the internal route of auth's deletion
cascade, then seed 002's routes as aliases."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, Response, Router, delete, get, post
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import Body, HeaderParameter, Parameter, QueryParameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_204_NO_CONTENT

from services.kit.app import from_state
from services.kit.openapi import SEED_TAG, problems
from services.kit.security import DELETION_CHECKED_BY_HANDLER
from services.kit.tokens import Principal
from services.order.schemas import Order, OrderPage, SeedOrderCreate
from services.order.service import OrderService, Placement

UserIdPath = Annotated[str, Parameter(max_length=64, description="a user id")]
OrderIdPath = Annotated[str, Parameter(max_length=64, description="an order id")]
Page = Annotated[int, Parameter(ge=1, le=100_000, description="1-based page number")]
PageSize = Annotated[int, QueryParameter(name="pageSize", ge=1, le=500, description="per page")]
IdempotencyKey = Annotated[
    str | None,
    HeaderParameter(
        name="Idempotency-Key",
        min_length=1,
        max_length=128,
        pattern=r"^[\x21-\x7e]+$",
        description="Makes a retried checkout return the first checkout's order.",
    ),
]
PLACEMENT_RESPONSES = {
    HTTP_200_OK: ResponseSpec(
        Order, description="The order an earlier checkout with this Idempotency-Key placed."
    )
}


def placement_response(placement: Placement) -> Response[Order]:
    return Response(
        placement.order, status_code=HTTP_201_CREATED if placement.created else HTTP_200_OK
    )


class OrderController(Controller):
    path = "/api/v1/orders"
    tags = ["orders"]

    @post(
        "/",
        operation_id="placeOrder",
        opt=problems(409),
        dependencies=DELETION_CHECKED_BY_HANDLER,
        status_code=HTTP_201_CREATED,
        responses=PLACEMENT_RESPONSES,
    )
    async def place_order(
        self,
        principal: NamedDependency[Principal],
        order_service: NamedDependency[OrderService],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[Order]:
        """Check out your cart: prices are fixed, stock is taken, the ordered lines leave the
        cart."""
        return placement_response(await order_service.place(principal, idempotency_key))

    @get("/", operation_id="listOrders", opt=problems(403))
    async def list_orders(
        self,
        principal: NamedDependency[Principal],
        order_service: NamedDependency[OrderService],
        page: Page = 1,
        pageSize: PageSize = 20,
        user_id: Annotated[
            str | None, QueryParameter(name="userId", max_length=64, description="admins only")
        ] = None,
    ) -> OrderPage:
        """Your orders, newest first (admins may name another user)."""
        return await order_service.list_for(principal, user_id or principal.user_id, page, pageSize)

    @get("/{order_id:str}", operation_id="getOrder", opt=problems(404))
    async def get_order(
        self,
        order_id: OrderIdPath,
        principal: NamedDependency[Principal],
        order_service: NamedDependency[OrderService],
    ) -> Order:
        """One of your orders (admins: anyone's)."""
        return await order_service.get(principal, order_id)


class InternalOrderController(Controller):
    """The deletion cascade's route (internal API key)."""

    path = "/internal/v1/users/{user_id:str}/orders"
    tags = ["internal"]

    @delete("/", operation_id="internalDeleteUserOrders", status_code=HTTP_204_NO_CONTENT)
    async def delete_user_orders(
        self,
        user_id: UserIdPath,
        internal_caller: NamedDependency[str],
        order_service: NamedDependency[OrderService],
    ) -> None:
        await order_service.delete_user(user_id)


class SeedRoutes(Controller):
    """Routes from seed 002, answering as the clean API does."""

    path = "/api/order"
    tags = [SEED_TAG]

    @post(
        "/",
        operation_id="seedCreateOrder",
        opt=problems(403, 409),
        dependencies=DELETION_CHECKED_BY_HANDLER,
        status_code=HTTP_201_CREATED,
        responses=PLACEMENT_RESPONSES,
    )
    async def seed_create(
        self,
        principal: NamedDependency[Principal],
        order_service: NamedDependency[OrderService],
        data: Annotated[SeedOrderCreate | None, Body()] = None,
        idempotency_key: IdempotencyKey = None,
    ) -> Response[Order]:
        """Without items: check out the cart. With ``items``: order exactly those."""
        items = data.items if data else None
        named_user = data.user_id if data else None
        placement = await order_service.place(principal, idempotency_key, items, named_user)
        return placement_response(placement)

    @get("/{user_id:str}", operation_id="seedGetUserOrders", opt=problems(403))
    async def seed_user_orders(
        self,
        user_id: UserIdPath,
        principal: NamedDependency[Principal],
        order_service: NamedDependency[OrderService],
        page: Page = 1,
        pageSize: PageSize = 20,
    ) -> OrderPage:
        return await order_service.list_for(principal, user_id, page, pageSize)

    @delete("/{user_id:str}", operation_id="seedDeleteUserOrders", status_code=HTTP_204_NO_CONTENT)
    async def seed_delete_user_orders(
        self,
        user_id: UserIdPath,
        internal_or_admin: NamedDependency[Principal | None],
        order_service: NamedDependency[OrderService],
    ) -> None:
        await order_service.delete_orders(internal_or_admin, user_id)


router = Router(
    path="/",
    route_handlers=[OrderController, InternalOrderController, SeedRoutes],
    dependencies={"order_service": from_state("order_service")},
)
