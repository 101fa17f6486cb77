from __future__ import annotations

from typing import Annotated

from msgspec import Meta

from services.kit.settings import ServiceSettings


class AuthSettings(ServiceSettings, kw_only=True, frozen=True):
    access_token_ttl_seconds: Annotated[int, Meta(ge=60, le=86_400)] = 900
    signin_limit_per_email: Annotated[int, Meta(ge=1)] = 10
    signin_limit_per_client: Annotated[int, Meta(ge=1)] = 30
    signin_window_seconds: Annotated[int, Meta(ge=1, le=3600)] = 60
    argon2_time_cost: Annotated[int, Meta(ge=1, le=10)] = 3
    argon2_memory_kib: Annotated[int, Meta(ge=1024, le=1_048_576)] = 65_536
    # Password hashes computed at once; the pod's memory limit must hold this many times
    # argon2_memory_kib on top of the service itself (about 100 MiB).
    password_hash_concurrency: Annotated[int, Meta(ge=1, le=64)] = 2
    bootstrap_admin_email: str | None = None
    bootstrap_admin_password: str | None = None
    cascade_retry_max_seconds: Annotated[float, Meta(gt=0)] = 30.0
    cascade_poll_seconds: Annotated[float, Meta(gt=0)] = 1.0
