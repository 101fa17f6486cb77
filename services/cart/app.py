"""The cart service app: cart lines {userId, productId, quantity}, priced by the product service."""

from __future__ import annotations

from litestar import Litestar

from services.cart.clients import ProductCatalogue
from services.cart.controllers import router
from services.cart.repository import create_indexes
from services.cart.service import CartService, cart_deletions
from services.cart.settings import CartSettings
from services.kit.app import ServiceDefinition, create_service_app
from services.kit.revocation import is_user_deleted


async def _build_service(app: Litestar) -> None:
    # One DeletedUsers for the token check and the service: a deletion recorded by the cascade
    # is known to the next request at once.
    app.state.deleted_users = cart_deletions(app.state.db)
    settings: CartSettings = app.state.settings
    catalogue = ProductCatalogue(
        app.state.clients["product"], display_max_age=settings.product_facts_max_age_seconds
    )
    app.state.cart_service = CartService(
        app.state.db,
        catalogue,
        app.state.deleted_users,
        deletion_settle_seconds=settings.deletion_settle_seconds,
    )


async def copy_older_deletions(app: Litestar) -> None:
    """Deletions recorded in ``deleted_users`` (before cart kept them as markers among the
    lines) become markers, so those users' tokens stay refused."""
    service: CartService = app.state.cart_service
    records = [doc async for doc in app.state.db.deleted_users.find({})]
    await service.repo.copy_deletions(records)


SERVICE = ServiceDefinition(
    description="Shopping carts: one line per product, priced from the catalogue.",
    router=router,
    indexes=create_indexes,
    build=_build_service,
    on_ready=[copy_older_deletions],
    is_revoked=is_user_deleted,
)


def create_app(settings: CartSettings) -> Litestar:
    return create_service_app(settings, SERVICE)
