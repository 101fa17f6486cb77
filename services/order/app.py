"""The order service app: orders with price snapshots, placed from the cart."""

from __future__ import annotations

from litestar import Litestar

from services.kit.app import ServiceDefinition, create_service_app, every
from services.kit.revocation import DeletedUsers, is_user_deleted
from services.order.clients import CartClient, StockReservations
from services.order.controllers import router
from services.order.repository import create_indexes
from services.order.service import OrderService
from services.order.settings import OrderSettings


async def _build_service(app: Litestar) -> None:
    settings: OrderSettings = app.state.settings
    app.state.deleted_users = DeletedUsers(app.state.db)  # shared with the token check
    app.state.order_service = OrderService(
        app.state.db,
        StockReservations(app.state.clients["product"]),
        CartClient(app.state.clients["cart"]),
        max_page_size=settings.max_page_size,
        finish_grace_seconds=settings.finish_grace_seconds,
        reserve_window_seconds=settings.reserve_window_seconds,
        deleted=app.state.deleted_users,
    )


async def finish_due_orders(app: Litestar) -> None:
    """Settle placed orders with product; finish orders whose steps had to wait; abandon
    checkouts that did not finish."""
    await app.state.order_service.finish_due()


def _finish_interval(app: Litestar) -> float:
    settings: OrderSettings = app.state.settings
    return settings.finish_interval_seconds


SERVICE = ServiceDefinition(
    description="Orders with price snapshots, placed from the cart (checkout).",
    router=router,
    indexes=create_indexes,
    build=_build_service,
    background=[every(_finish_interval, finish_due_orders)],
    is_revoked=is_user_deleted,
)


def create_app(settings: OrderSettings) -> Litestar:
    return create_service_app(
        settings, SERVICE, openapi_limits={"pageSize": settings.max_page_size}
    )
