"""Settings: typed, from the environment or mounted files, with errors that name the variable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import msgspec
import pytest
from msgspec import Meta

from services.auth.settings import AuthSettings
from services.kit.settings import SettingsError, load_settings

BASE = {"SERVICE_NAME": "auth", "MONGO_URI": "mongodb://db:27017/", "MONGO_DB": "auth"}


def test_defaults_and_conversion() -> None:
    settings = load_settings(AuthSettings, {**BASE, "PORT": "8123", "HTTP_RETRIES": "5"})
    assert settings.port == 8123 and settings.http_retries == 5
    assert settings.access_token_ttl_seconds == 900
    assert settings.jwt_keyring_file == "/var/run/secrets/checkout/jwt/keyring.json"


def test_values_from_files(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("s3cret\n")
    settings = load_settings(AuthSettings, {**BASE, "MONGO_PASSWORD_FILE": str(secret)})
    assert settings.mongo_password == "s3cret"


def test_every_problem_is_named_at_once() -> None:
    env = {"SERVICE_NAME": "auth", "PORT": "http", "ACCESS_TOKEN_TTL_SECONDS": "5"}
    with pytest.raises(SettingsError) as caught:
        load_settings(AuthSettings, env)
    message = str(caught.value)
    for name in ("MONGO_URI: required", "MONGO_DB: required", "PORT:", "ACCESS_TOKEN_TTL_SECONDS:"):
        assert name in message
    assert "'http'" in message


def test_secret_values_are_not_echoed() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(AuthSettings, {**BASE, "INTERNAL_KEYRING_FILE": ""} | {"MONGO_DB": ""})
    assert "MONGO_DB" in str(caught.value)
    with pytest.raises(SettingsError) as caught:
        load_settings(AuthSettings, {**BASE, "SIGNIN_LIMIT_PER_EMAIL": "hunter2"})
    assert "hunter2" in str(caught.value)  # not a secret: shown to help
    with pytest.raises(SettingsError) as caught:
        load_settings(AuthSettings, {**BASE, "MONGO_TIMEOUT_SECONDS": "-1"})
    assert "MONGO_TIMEOUT_SECONDS" in str(caught.value)


def test_unreadable_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="MONGO_PASSWORD_FILE: cannot read"):
        load_settings(AuthSettings, {**BASE, "MONGO_PASSWORD_FILE": str(tmp_path / "missing")})


def test_a_service_refuses_to_start_with_bad_settings() -> None:
    env = {k: v for k, v in os.environ.items() if k != "MONGO_URI"} | {"PORT": "99999"}
    done = subprocess.run(
        [sys.executable, "-m", "services.product"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "MONGO_URI: required but not set" in done.stderr
    assert "PORT: Expected `int` <= 65535" in done.stderr


def test_trusted_proxies_are_a_comma_separated_list_of_addresses_and_networks() -> None:
    assert load_settings(AuthSettings, BASE).trusted_proxies == ()
    settings = load_settings(AuthSettings, {**BASE, "TRUSTED_PROXIES": "10.244.0.0/16, 127.0.0.1,"})
    assert settings.trusted_proxies == ("10.244.0.0/16", "127.0.0.1")
    with pytest.raises(SettingsError, match=r"TRUSTED_PROXIES: .*'10\.0\.0\.0/33', 'ingress'"):
        load_settings(AuthSettings, {**BASE, "TRUSTED_PROXIES": "::1,10.0.0.0/33,ingress"})


def test_tracing_is_off_unless_the_otlp_endpoint_is_an_http_url() -> None:
    settings = load_settings(AuthSettings, BASE)
    assert settings.otel_exporter_otlp_endpoint is None and settings.tracing_sample_ratio == 1.0
    on = {**BASE, "OTEL_EXPORTER_OTLP_ENDPOINT": "http://jaeger:4318", "POD_NAMESPACE": "shop"}
    settings = load_settings(AuthSettings, on)
    assert settings.otel_exporter_otlp_endpoint == "http://jaeger:4318"
    assert settings.pod_namespace == "shop"
    for bad in ("jaeger:4318", "grpc://jaeger:4317", "http://:4318", "http://jaeger:port"):
        with pytest.raises(SettingsError, match=r"OTEL_EXPORTER_OTLP_ENDPOINT: not an http"):
            load_settings(AuthSettings, {**BASE, "OTEL_EXPORTER_OTLP_ENDPOINT": bad})
    with pytest.raises(SettingsError, match=r"TRACING_SAMPLE_RATIO: Expected `float` <= 1"):
        load_settings(AuthSettings, {**BASE, "TRACING_SAMPLE_RATIO": "1.5"})


class Renamed(msgspec.Struct, kw_only=True, frozen=True):
    """Settings read from variables named otherwise than their fields (as the operator's)."""

    charts_dir: str = msgspec.field(name="CHECKOUT_CHARTS_DIR")
    retries: Annotated[int, Meta(ge=0)] | None = msgspec.field(default=None, name="RETRIES_MAX")


def test_a_renamed_field_is_read_from_its_name_and_an_optional_one_may_stay_unset() -> None:
    settings = load_settings(Renamed, {"CHECKOUT_CHARTS_DIR": "/charts", "RETRIES": "5"})
    assert settings == Renamed(charts_dir="/charts", retries=None)
    assert load_settings(Renamed, {"CHECKOUT_CHARTS_DIR": "/c", "RETRIES_MAX": "3"}).retries == 3
    with pytest.raises(SettingsError) as caught:
        load_settings(Renamed, {"CHARTS_DIR": "/charts", "RETRIES_MAX": "-1"})
    message = str(caught.value)
    assert "CHECKOUT_CHARTS_DIR: required but not set" in message
    # The type a set variable must have, not "int | null".
    assert "RETRIES_MAX: Expected `int` >= 0 (got '-1')" in message
