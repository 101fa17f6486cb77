"""The product service app: catalogue, prices and stock."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from litestar import Litestar

from services.kit.app import create_service_app
from services.product.controllers import router
from services.product.repository import create_indexes
from services.product.service import ProductService
from services.product.settings import ProductSettings

log = logging.getLogger(__name__)


async def _build_service(app: Litestar) -> None:
    settings: ProductSettings = app.state.settings
    app.state.product_service = ProductService(
        app.state.db,
        max_page_size=settings.max_page_size,
        reservation_ttl=settings.reservation_ttl_seconds,
    )


async def _stale_reservation_sweeper(app: Litestar) -> None:
    await app.state.indexes_ready.wait()
    interval = max(5, app.state.settings.reservation_ttl_seconds // 10)
    while True:
        with contextlib.suppress(Exception):
            await app.state.product_service.release_stale()
        await asyncio.sleep(interval)


def create_app(settings: ProductSettings) -> Litestar:
    return create_service_app(
        settings,
        route_handlers=[router],
        title="Checkout Platform — product",
        description="The catalogue, prices and stock.",
        index_setup=create_indexes,
        on_startup=[_build_service],
        background=[_stale_reservation_sweeper],
        openapi_limits={"pageSize": settings.max_page_size},
    )
