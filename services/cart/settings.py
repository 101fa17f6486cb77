from __future__ import annotations

from services.kit.settings import NonEmpty, ServiceSettings


class CartSettings(ServiceSettings, kw_only=True, frozen=True):
    # The cart asks product whether a product exists, its stock and its current price.
    product_url: NonEmpty
