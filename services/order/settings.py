from __future__ import annotations

from typing import Annotated

from msgspec import Meta

from services.kit.settings import NonEmpty, PositiveFloat, ServiceSettings


class OrderSettings(ServiceSettings, kw_only=True, frozen=True):
    # Checkout reads and trims the cart, and has product sell the stock.
    product_url: NonEmpty
    cart_url: NonEmpty
    max_page_size: Annotated[int, Meta(ge=1, le=500)] = 100
    # A placed order whose stock commit or cart trim could not be done at once (a dependency was
    # down) is finished by a background worker: it looks every ``finish_interval_seconds`` for
    # orders untouched for ``finish_grace_seconds``. Both must stay well below product's
    # reservation TTL, after which product gives uncommitted stock back.
    finish_interval_seconds: PositiveFloat = 5.0
    finish_grace_seconds: Annotated[float, Meta(ge=0)] = 10.0
    # Product takes a checkout's stock no later than this after the checkout began (a slower
    # call is refused and the checkout answers 503); the worker gives an unfinished checkout's
    # stock back 5 s after that. Longer than the call to product with its retries.
    reserve_window_seconds: Annotated[float, Meta(ge=1, le=300)] = 10.0
