"""The cart service app: cart lines {userId, productId, quantity}, priced by the product service."""

from __future__ import annotations

from litestar import Litestar

from services.cart.clients import ProductCatalogue
from services.cart.controllers import router
from services.cart.repository import create_indexes
from services.cart.service import CartService
from services.cart.settings import CartSettings
from services.kit.app import ServiceDefinition, create_service_app
from services.kit.revocation import DeletedUsers, is_user_deleted


async def _build_service(app: Litestar) -> None:
    # One DeletedUsers for the token check and the service: a deletion recorded by the cascade
    # is known to the next request at once.
    app.state.deleted_users = DeletedUsers(app.state.db)
    settings: CartSettings = app.state.settings
    catalogue = ProductCatalogue(
        app.state.clients["product"], display_max_age=settings.product_facts_max_age_seconds
    )
    app.state.cart_service = CartService(app.state.db, catalogue, app.state.deleted_users)


SERVICE = ServiceDefinition(
    description="Shopping carts: one line per product, priced from the catalogue.",
    router=router,
    indexes=create_indexes,
    build=_build_service,
    is_revoked=is_user_deleted,
)


def create_app(settings: CartSettings) -> Litestar:
    return create_service_app(settings, SERVICE)
