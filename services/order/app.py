"""The order service app: orders with price snapshots, placed from the cart."""

from __future__ import annotations

from litestar import Litestar

from services.kit.app import create_service_app, every
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
        deleted=app.state.deleted_users,
    )


async def finish_due_orders(app: Litestar) -> None:
    """Finish placed orders whose stock commit or cart trim had to wait."""
    await app.state.order_service.finish_due()


def create_app(settings: OrderSettings) -> Litestar:
    return create_service_app(
        settings,
        route_handlers=[router],
        title="Checkout Platform — order",
        description="Orders with price snapshots, placed from the cart (checkout).",
        index_setup=create_indexes,
        on_startup=[_build_service],
        background=[
            every(lambda app: app.state.settings.finish_interval_seconds, finish_due_orders)
        ],
        state={"is_revoked": is_user_deleted},
        openapi_limits={"pageSize": settings.max_page_size},
    )
