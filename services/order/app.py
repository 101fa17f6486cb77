"""The order service app: orders with price snapshots, placed from the cart."""

from __future__ import annotations

import asyncio
import logging

from litestar import Litestar

from services.kit.app import create_service_app
from services.kit.revocation import DeletedUsers, is_user_deleted
from services.order.clients import CartClient, StockReservations
from services.order.controllers import router
from services.order.repository import create_indexes
from services.order.service import OrderService
from services.order.settings import OrderSettings

log = logging.getLogger(__name__)


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


async def _order_finisher(app: Litestar) -> None:
    """Background worker: finishes placed orders whose stock commit or cart trim had to wait."""
    await app.state.indexes_ready.wait()
    interval = app.state.settings.finish_interval_seconds
    while True:
        try:
            await app.state.order_service.finish_due()
        except Exception:
            log.exception("order finisher pass failed")
        await asyncio.sleep(interval)


def create_app(settings: OrderSettings) -> Litestar:
    return create_service_app(
        settings,
        route_handlers=[router],
        title="Checkout Platform — order",
        description="Orders with price snapshots, placed from the cart (checkout).",
        index_setup=create_indexes,
        on_startup=[_build_service],
        background=[_order_finisher],
        state={"is_revoked": is_user_deleted},
        openapi_limits={"pageSize": settings.max_page_size},
    )
