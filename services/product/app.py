"""The product service app: catalogue, prices and stock."""

from __future__ import annotations

from litestar import Litestar

from services.kit.app import ServiceDefinition, create_service_app, every
from services.product.controllers import router
from services.product.repository import create_indexes
from services.product.service import ProductService
from services.product.settings import ProductSettings


async def _build_service(app: Litestar) -> None:
    settings: ProductSettings = app.state.settings
    app.state.product_service = ProductService(
        app.state.db,
        max_page_size=settings.max_page_size,
        reservation_ttl=settings.reservation_ttl_seconds,
    )


async def release_stale_reservations(app: Litestar) -> None:
    """Give back the stock of reservations nobody committed or released in time."""
    await app.state.product_service.release_stale()


def _sweep_interval(app: Litestar) -> float:
    settings: ProductSettings = app.state.settings
    return max(5, settings.reservation_ttl_seconds // 10)


SERVICE = ServiceDefinition(
    description="The catalogue, prices and stock.",
    router=router,
    indexes=create_indexes,
    build=_build_service,
    background=[every(_sweep_interval, release_stale_reservations)],
)


def create_app(settings: ProductSettings) -> Litestar:
    return create_service_app(
        settings, SERVICE, openapi_limits={"pageSize": settings.max_page_size}
    )
