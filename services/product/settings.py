from __future__ import annotations

from typing import Annotated

from msgspec import Meta

from services.kit.settings import ServiceSettings


class ProductSettings(ServiceSettings, kw_only=True, frozen=True):
    max_page_size: Annotated[int, Meta(ge=1, le=500)] = 100
    reservation_ttl_seconds: Annotated[int, Meta(ge=10)] = 900
