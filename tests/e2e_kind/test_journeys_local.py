"""The kind journeys, run everywhere: the four services and the storefront as local processes,
behind a stand-in for the ingress controller that routes each request by the umbrella chart's
rendered Ingress rules. This keeps the kind test's body honest on machines without Docker, and
shows the chart's routes reach the right service for real requests (clean and seed paths
alike)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from services.local.mongo_server import MongoServer
from services.local.platform import PROCESSES, LocalPlatform
from tests.charts.ingress_rules import NOT_FOUND_BODY, NOT_FOUND_CONTENT_TYPE, route
from tests.e2e_kind.journeys import (
    INTERNAL_PATHS,
    checkout_journey,
    internal_paths_closed,
    seed_journey,
)
from tests.infra.helm import ROOT, SERVICES, prepared_helm

RELEASE = "shop"
HOST = "checkout.localhost"


class IngressTransport(httpx.BaseTransport):
    """Sends each request where the Ingress would, or answers 404 as Traefik does for a request
    no router matches (tests/charts/test_traefik_manifest.py checks that answer on the real one)."""

    def __init__(self, ingress: dict[str, Any], urls: dict[str, str]) -> None:
        self.ingress = ingress
        self.urls = urls
        self.upstream = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        target = route(self.ingress, request.headers.get("host"), request.url.path)
        if target is None:
            return httpx.Response(
                404,
                headers={"Content-Type": NOT_FOUND_CONTENT_TYPE},
                text=NOT_FOUND_BODY,
            )
        service = target[0].removeprefix(f"{RELEASE}-")
        upstream = httpx.URL(self.urls[service])
        request.url = request.url.copy_with(
            scheme=upstream.scheme, host=upstream.host, port=upstream.port
        )
        request.headers["X-Forwarded-For"] = "127.0.0.1"  # as Traefik relays it
        return self.upstream.handle_request(request)

    def close(self) -> None:
        self.upstream.close()


class RoutedPlatform:
    def __init__(self, ingress: dict[str, Any], urls: dict[str, str]) -> None:
        self.ingress = ingress
        self.urls = urls

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url="http://ingress.invalid",
            headers={"Host": HOST},
            transport=IngressTransport(self.ingress, self.urls),
            timeout=30.0,
        )


@pytest.fixture(scope="module")
def platform(
    mongo_server: MongoServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RoutedPlatform]:
    absent = [s for s in SERVICES if not (ROOT / "services" / s / "__main__.py").is_file()]
    if absent:
        pytest.skip(f"services not in this tree yet: {', '.join(absent)}")
    helm = prepared_helm(tmp_path_factory.mktemp("helm"))
    objects = helm.template("checkout", {"ingress": {"host": HOST}}, release=RELEASE)
    (ingress,) = [o for o in objects if o["kind"] == "Ingress"]
    fast_hashing = {"ARGON2_TIME_COST": "1", "ARGON2_MEMORY_KIB": "8192"}
    with LocalPlatform(
        tmp_path_factory.mktemp("platform"),
        mongo=mongo_server,
        db_prefix="j" + uuid.uuid4().hex[:8] + "_",
        services=PROCESSES,
        service_env={"auth": fast_hashing},
    ) as running:
        yield RoutedPlatform(ingress, running.urls)


def test_register_sign_in_add_to_cart_and_check_out(platform: RoutedPlatform) -> None:
    checkout_journey(platform)


def test_seed_routes_answer_through_the_ingress(platform: RoutedPlatform) -> None:
    seed_journey(platform)


@pytest.mark.parametrize("path", INTERNAL_PATHS)
def test_internal_paths_are_not_exposed(platform: RoutedPlatform, path: str) -> None:
    internal_paths_closed(platform, path)
