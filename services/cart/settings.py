from __future__ import annotations

from typing import Annotated

from msgspec import Meta

from services.kit.settings import NonEmpty, ServiceSettings


class CartSettings(ServiceSettings, kw_only=True, frozen=True):
    # The cart asks product whether a product exists, its stock and its current price.
    product_url: NonEmpty
    # How old the product facts (name, price, stock) a cart view shows may be; 0: always ask.
    # Adding or changing a line, and checkout, always ask product.
    product_facts_max_age_seconds: Annotated[float, Meta(ge=0, le=60)] = 2.0
