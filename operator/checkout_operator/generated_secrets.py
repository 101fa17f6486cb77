"""The Secrets a Checkout needs besides its charts: the JWT keyring, the internal API-key ring,
one MongoDB root credential per service, and the storefront's CSRF secret while it is enabled.
Created once, from a CSPRNG, and never overwritten: rotation (a separate concern) is the only thing
that may change a keyring afterwards. The keyrings are mounted by the four services only: the
storefront gets its CSRF Secret and nothing else.
"""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import Iterable, Mapping
from typing import Any

from services.keys.keyring import dump_keyring, generate_key
from services.keys.report import RingName
from services.keys.rotation import make_kid

from .values import SERVICES, STOREFRONT, WORKLOADS, Names

MONGODB_ROOT_USERNAME = "root"
CSRF_SECRET_KEY = "csrf-secret"
"""The key the storefront chart reads its CSRF secret from (checkout-lib.csrf.secretKey)."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def keyring_data(kid: str) -> dict[str, str]:
    """``keyring.json`` with one fresh key (32 bytes from os.urandom), in the services' format."""
    return {"keyring.json": _b64(dump_keyring(kid, [generate_key(kid)]))}


def new_key_id(ring: RingName) -> str:
    """A first key id in the format rotation continues (``jwt-20261125T201500Z-3fa9c1``): when
    and a random nonce, so a re-created ring never reuses an id."""
    return make_kid(ring, time.time(), secrets.token_hex(3))


def mongodb_credentials_data() -> dict[str, str]:
    return {
        "mongodb-root-username": _b64(MONGODB_ROOT_USERNAME.encode()),
        "mongodb-root-password": _b64(secrets.token_urlsafe(32).encode()),
    }


def csrf_data() -> dict[str, str]:
    """48 URL-safe characters (36 random bytes): the storefront wants at least 32."""
    return {CSRF_SECRET_KEY: _b64(secrets.token_urlsafe(36).encode())}


def wanted_secrets(
    release: str, namespace: str, workloads: Iterable[str] = WORKLOADS
) -> list[dict[str, Any]]:
    """Fresh Secrets for a Checkout whose charts are ``workloads``; only those that do not exist
    yet are ever created (and one no longer wanted is pruned with the rest)."""
    names = Names(release)

    def secret(name: str, component: str, data: Mapping[str, str]) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "Opaque",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": {
                    "app.kubernetes.io/instance": release,
                    "app.kubernetes.io/component": component,
                    "app.kubernetes.io/part-of": "checkout-platform",
                    "app.kubernetes.io/managed-by": "checkout-operator",
                },
            },
            "data": dict(data),
        }

    wanted = [
        secret(names.jwt_keyring, "jwt-keyring", keyring_data(new_key_id("jwt"))),
        secret(names.internal_keyring, "internal-keyring", keyring_data(new_key_id("internal"))),
    ]
    wanted += [
        secret(names.mongodb_secret(service), "database", mongodb_credentials_data())
        for service in SERVICES
    ]
    if STOREFRONT in workloads:
        wanted.append(secret(names.storefront_csrf, "csrf", csrf_data()))
    return wanted


def is_database_credential(secret: Mapping[str, Any]) -> bool:
    """Kept with the volumes when the Checkout keeps its data: the data is useless without it."""
    labels = secret.get("metadata", {}).get("labels") or {}
    return bool(labels.get("app.kubernetes.io/component") == "database")
