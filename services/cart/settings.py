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
    # A user's deletion is settled this long after cart recorded it: longer than any cart write
    # that read the lines before it can still be running (its call to product, with retries,
    # and its database commands). Until then the cascade's delete answers 202 and auth calls
    # again, and each call deletes the lines again.
    deletion_settle_seconds: Annotated[float, Meta(ge=0, le=3600)] = 20.0
