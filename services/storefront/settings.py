"""The storefront's settings: where the four services are, and the secret its forms are signed
with. It has no database and holds no keys of the platform: it acts with the shopper's token."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta

from services.kit.settings import AppSettings, NonEmpty, PositiveFloat


class StorefrontSettings(AppSettings, kw_only=True, frozen=True):
    auth_url: NonEmpty
    product_url: NonEmpty
    cart_url: NonEmpty
    order_url: NonEmpty
    # Signs the CSRF tokens of every form; the same value on every replica (a Secret in a
    # cluster, CSRF_SECRET_FILE), at least 32 characters.
    csrf_secret: Annotated[str, Meta(min_length=32)]
    # Cookies marked Secure: on wherever the shop is served over TLS.
    cookie_secure: bool = False
    # Registering and signing in wait for auth's argon2 hash, slow by design and queued behind
    # other sign-ins (auth's PASSWORD_HASH_CONCURRENCY): these two calls wait this long for an
    # answer instead of HTTP_TIMEOUT_SECONDS. They are never retried (a sign-up is not
    # idempotent), so a timeout here is a failed page for the shopper.
    password_timeout_seconds: PositiveFloat = 15.0
    # Products a catalogue page shows.
    page_size: Annotated[int, Meta(ge=1, le=100)] = 12
