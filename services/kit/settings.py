"""Typed settings from the environment and mounted files.

Every field ``foo_bar`` is read from ``FOO_BAR``, or from the name msgspec's ``field(name=...)``
gives it (how the operator keeps the variable names its chart sets); ``FOO_BAR_FILE`` names a
file holding the value instead (the convention for mounted Secrets). Values are converted and
checked field by field so a bad start-up names the exact variable.
"""

from __future__ import annotations

import ipaddress
import os
import re
import types
import typing
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, TypeVar

import msgspec
from msgspec import Meta

Port = Annotated[int, Meta(ge=1, le=65535)]
PositiveFloat = Annotated[float, Meta(gt=0)]
NonEmpty = Annotated[str, Meta(min_length=1)]


class SettingsError(Exception):
    """Raised when settings are missing or invalid; the message names every bad variable."""


class AppSettings(msgspec.Struct, kw_only=True, frozen=True):
    """Settings of every process that serves the platform's HTTP (the storefront has only these)."""

    service_name: NonEmpty
    host: str = "0.0.0.0"
    port: Port = 8000
    log_level: Annotated[str, Meta(pattern="^(DEBUG|INFO|WARNING|ERROR)$")] = "INFO"
    max_body_bytes: Annotated[int, Meta(ge=1024, le=10_000_000)] = 64 * 1024
    auth_url: str | None = None
    product_url: str | None = None
    cart_url: str | None = None
    order_url: str | None = None
    http_timeout_seconds: PositiveFloat = 3.0
    http_retries: Annotated[int, Meta(ge=0, le=10)] = 3
    http_backoff_seconds: PositiveFloat = 0.05
    # Requests this process serves at once; the next get 503 with Retry-After at once
    # (services/kit/backpressure.py). Probes, metrics and the key report are never refused.
    max_in_flight_requests: Annotated[int, Meta(ge=1, le=100_000)] = 64
    # Proxies in front of the service (IP addresses or CIDR networks, comma-separated in the
    # environment), e.g. the ingress controller's pods: a request arriving from one of them is
    # taken to come from the address it puts in X-Forwarded-For (and the scheme in
    # X-Forwarded-Proto). Rate limits and logs use that address. Empty: no proxy is trusted, and
    # the address is the connection's own.
    trusted_proxies: tuple[str, ...] = ()
    # Distributed traces (services/kit/tracing.py): the OTLP/HTTP endpoint spans go to (a
    # collector's or Jaeger's, e.g. http://127.0.0.1:4318; the standard OTel variable). Unset,
    # tracing is off: no SDK, middleware or exporter.
    otel_exporter_otlp_endpoint: str | None = None
    # The share of traces kept (of those this process starts; a caller's decision is followed).
    tracing_sample_ratio: Annotated[float, Meta(ge=0, le=1)] = 1.0
    # The Checkout this process belongs to and its namespace, as the operator's charts set them:
    # resource attributes of every span.
    checkout_name: str | None = None
    pod_namespace: str | None = None

    def __post_init__(self) -> None:
        bad = [entry for entry in self.trusted_proxies if not _is_ip_network(entry)]
        if bad:
            raise SettingsError(
                "invalid settings: TRUSTED_PROXIES: not an IP address or CIDR network: "
                + ", ".join(repr(entry) for entry in bad)
            )
        endpoint = self.otel_exporter_otlp_endpoint
        if endpoint is not None and not _is_http_url(endpoint):
            raise SettingsError(
                "invalid settings: OTEL_EXPORTER_OTLP_ENDPOINT: not an http:// or https:// URL "
                f"with a host (got {endpoint!r})"
            )


class ServiceSettings(AppSettings, kw_only=True, frozen=True):
    """Settings shared by the four API services: their database and the keyrings."""

    mongo_uri: NonEmpty
    mongo_db: NonEmpty
    mongo_username: str | None = None
    mongo_password: str | None = None
    mongo_timeout_seconds: PositiveFloat = 5.0
    jwt_keyring_file: NonEmpty = "/var/run/secrets/checkout/jwt/keyring.json"
    internal_keyring_file: NonEmpty = "/var/run/secrets/checkout/internal/keyring.json"
    keyring_check_interval_seconds: Annotated[float, Meta(ge=0)] = 1.0
    jwt_issuer: NonEmpty = "checkout-platform"
    jwt_audience: NonEmpty = "checkout-api"


def _is_ip_network(entry: str) -> bool:
    try:
        ipaddress.ip_network(entry, strict=False)
    except ValueError:
        return False
    return True


def _is_http_url(value: str) -> bool:
    parts = urllib.parse.urlsplit(value)
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _is_sequence(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (tuple, list)


def _set_type(annotation: Any) -> Any:
    """``X | None`` as ``X``: a variable that is set holds an X (unset is None), and the error
    for a bad one should say so."""
    if typing.get_origin(annotation) not in (typing.Union, types.UnionType):
        return annotation
    rest = tuple(arg for arg in typing.get_args(annotation) if arg is not type(None))
    return typing.Union[rest]  # noqa: UP007 (the members are only known at run time)


S = TypeVar("S", bound=msgspec.Struct)
_SECRET_NAME = re.compile("password|secret|key", re.IGNORECASE)


def _raw_value(env: str, environ: Mapping[str, str]) -> str | None:
    file_var = f"{env}_FILE"
    if file_var in environ:
        path = Path(environ[file_var])
        try:
            return path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SettingsError(f"{file_var}: cannot read {path}: {exc.strerror}") from exc
    return environ.get(env)


def load_settings(cls: type[S], environ: Mapping[str, str] | None = None, **overrides: Any) -> S:
    """Build ``cls`` from the environment; ``overrides`` (already typed) win over it."""
    environ = os.environ if environ is None else environ
    hints = msgspec.structs.fields(cls)
    values: dict[str, Any] = {}
    problems: list[str] = []
    for field in hints:
        if field.name in overrides:
            values[field.name] = overrides[field.name]
            continue
        env = field.encode_name.upper()
        try:
            raw = _raw_value(env, environ)
        except SettingsError as exc:
            problems.append(str(exc))
            continue
        if raw is None or raw == "":
            if field.required:
                problems.append(f"{env}: required but not set")
            continue
        value: Any = raw
        wanted = _set_type(field.type)
        if _is_sequence(wanted):
            value = [part.strip() for part in raw.split(",") if part.strip()]
        try:
            values[field.name] = msgspec.convert(value, wanted, strict=False)
        except msgspec.ValidationError as exc:
            reason = str(exc).split(" - at ")[0]
            shown = "<hidden>" if _SECRET_NAME.search(field.name) else repr(raw)
            problems.append(f"{env}: {reason} (got {shown})")
    if problems:
        raise SettingsError("invalid settings: " + "; ".join(problems))
    return cls(**values)
