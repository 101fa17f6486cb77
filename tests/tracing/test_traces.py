"""Distributed traces on the real path: the services and the storefront as processes with
tracing on, a checkout over HTTP, and the trace read back from Jaeger."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid

import httpx

from services.local.jaeger import JaegerServer
from services.local.platform import LocalPlatform
from tests.tracing.conftest import PASSWORD, Shopper, Span, trace_of_request

CSRF = re.compile(r'name="_csrf_token" value="([^"]+)"')


def a_product(shopper: Shopper) -> dict:
    items = shopper.call("GET", "product", "/api/v1/products", params={"q": "mouse"}).json()
    return items["items"][0]


def by_id(spans: list[Span]) -> dict[str, Span]:
    return {span.id: span for span in spans}


def crosses(spans: list[Span], caller: str, callee: str) -> bool:
    """A server span of ``callee`` whose parent is a client span of ``caller``: the traceparent
    went over the wire from one process to the other."""
    index = by_id(spans)
    for span in spans:
        parent = index.get(span.parent_id or "")
        if (
            span.service == callee
            and span.kind == "server"
            and parent is not None
            and parent.service == caller
            and parent.kind == "client"
        ):
            return True
    return False


def db_spans(spans: list[Span], service: str) -> list[Span]:
    return [s for s in spans if s.service == service and s.tags.get("db.system") == "mongodb"]


def test_checkout_is_one_trace_across_order_cart_product_and_their_databases(
    traced: LocalPlatform, jaeger: JaegerServer, shopper: Shopper
) -> None:
    product = a_product(shopper)
    added = shopper.call(
        "POST", "cart", "/api/v1/cart/items", json={"productId": product["id"], "quantity": 1}
    )
    assert added.status_code == 200, added.text
    request_id = "trace-" + uuid.uuid4().hex
    placed = shopper.call(
        "POST",
        "order",
        "/api/v1/orders",
        headers={"X-Request-ID": request_id, "Idempotency-Key": uuid.uuid4().hex},
    )
    assert placed.status_code == 201, placed.text

    def complete(spans: list[Span]) -> bool:
        return (
            crosses(spans, "order", "cart")
            and crosses(spans, "order", "product")
            and all(db_spans(spans, name) for name in ("order", "cart", "product"))
        )

    spans = trace_of_request(jaeger, "order", request_id, settle=complete)
    assert len({s.raw["traceID"] for s in spans}) == 1
    roots = [s for s in spans if s.parent_id is None]
    assert [(r.service, r.kind) for r in roots] == [("order", "server")], [r.name for r in roots]
    root = roots[0]
    assert root.name == "POST /api/v1/orders"
    assert root.tags["checkout.request_id"] == request_id
    assert root.http_status == 201
    assert not any(s.is_error for s in spans), [s.name for s in spans if s.is_error]
    # The request id went along: every service's server span carries it.
    for span in spans:
        if span.kind == "server":
            assert span.tags.get("checkout.request_id") == request_id, span.name
    # The database commands are children of a span of the same process.
    index = by_id(spans)
    for name in ("order", "cart", "product"):
        for command in db_spans(spans, name):
            assert index[command.parent_id or ""].service == name, command.name
    # The JSON log lines of that request carry its trace id.
    trace_id = spans[0].raw["traceID"]
    lines = [
        json.loads(line) for line in traced.services["order"].log_path.read_text().splitlines()
    ]
    mine = [line for line in lines if line.get("requestId") == request_id]
    assert mine and all(line.get("trace_id") == trace_id for line in mine), mine
    assert all(len(line["span_id"]) == 16 for line in mine)


def test_checkout_through_the_storefront_is_one_trace(
    traced: LocalPlatform, jaeger: JaegerServer
) -> None:
    with httpx.Client(base_url=traced.urls["storefront"], timeout=15) as shop:
        csrf = CSRF.search(shop.get("/signin").text)
        assert csrf
        email = f"s-{uuid.uuid4().hex[:10]}@example.test"
        form = {"_csrf_token": csrf.group(1), "email": email, "password": PASSWORD, "name": "Pat"}
        assert shop.post("/register", data=form).status_code == 303
        token = shop.cookies.get("csrftoken") or csrf.group(1)
        product_id = re.findall(r'href="/products/([A-Za-z0-9_-]+)"', shop.get("/").text)[0]
        added = shop.post(
            "/cart/items", data={"_csrf_token": token, "product_id": product_id, "quantity": "1"}
        )
        assert added.status_code == 303, added.text
        request_id = "shop-" + uuid.uuid4().hex
        placed = shop.post(
            "/checkout",
            data={"_csrf_token": token, "idempotency_key": uuid.uuid4().hex},
            headers={"X-Request-ID": request_id},
        )
        assert placed.status_code == 303, placed.text
        assert placed.headers["location"].startswith("/orders/")

    def complete(spans: list[Span]) -> bool:
        return (
            crosses(spans, "storefront", "order")
            and crosses(spans, "order", "cart")
            and crosses(spans, "order", "product")
            and all(db_spans(spans, name) for name in ("order", "cart", "product"))
        )

    spans = trace_of_request(jaeger, "storefront", request_id, settle=complete)
    roots = [s for s in spans if s.parent_id is None]
    assert [(r.service, r.name) for r in roots] == [("storefront", "POST /checkout")]
    assert {s.service for s in spans} >= {"storefront", "order", "cart", "product"}


def test_a_dependency_down_marks_the_client_and_server_spans(
    traced: LocalPlatform, jaeger: JaegerServer, shopper: Shopper
) -> None:
    product = a_product(shopper)
    shopper.call(
        "POST", "cart", "/api/v1/cart/items", json={"productId": product["id"], "quantity": 1}
    )
    request_id = "down-" + uuid.uuid4().hex
    traced.stop_service("cart")
    try:
        placed = shopper.call(
            "POST", "order", "/api/v1/orders", headers={"X-Request-ID": request_id}
        )
    finally:
        traced.start_service("cart")
    assert placed.status_code == 503, placed.text

    def has_server_span(spans: list[Span]) -> bool:
        return any(s.service == "order" and s.kind == "server" for s in spans)

    spans = trace_of_request(jaeger, "order", request_id, settle=has_server_span)
    server = next(s for s in spans if s.service == "order" and s.kind == "server")
    assert server.is_error
    assert server.http_status == 503
    assert server.tags["checkout.problem.type"].endswith("/unavailable")
    assert server.tags["checkout.problem.title"] == "Service Unavailable"
    to_cart = [
        s
        for s in spans
        if s.service == "order" and s.kind == "client" and "db.system" not in s.tags
    ]
    assert to_cart, [s.name for s in spans]
    assert all(s.is_error for s in to_cart), [(s.name, s.tags) for s in to_cart]
    assert all(s.parent_id == server.id for s in to_cart)


def test_a_token_in_the_path_stays_out_of_the_trace(
    traced: LocalPlatform, jaeger: JaegerServer, shopper: Shopper
) -> None:
    product = a_product(shopper)
    shopper.call(
        "POST", "cart", "/api/v1/cart/items", json={"productId": product["id"], "quantity": 1}
    )
    request_id = "token-" + uuid.uuid4().hex
    # Seed 000's quantity change by GET, the bearer token in the path.
    answer = shopper.http.get(
        shopper.url("cart", f"/api/cart/edit-quantity/{shopper.token}"),
        params={"quantity": 2, "productId": product["id"]},
        headers={"X-Request-ID": request_id},
    )
    assert answer.status_code == 200, answer.text

    def has_server_span(spans: list[Span]) -> bool:
        return any(s.service == "cart" and s.kind == "server" for s in spans)

    spans = trace_of_request(jaeger, "cart", request_id, settle=has_server_span)
    server = next(s for s in spans if s.service == "cart" and s.kind == "server")
    assert server.name == "GET /api/cart/edit-quantity/{token}"
    assert shopper.token not in json.dumps([s.raw for s in spans])
    assert "<token>" in json.dumps(server.tags)


OFF_CHECK = """
import io, json, logging, sys, threading
from services.kit.observability import JsonFormatter, configure_logging
from services.kit.settings import load_settings
from services.cart.app import create_app
from services.cart.settings import CartSettings

settings = load_settings(CartSettings, {"SERVICE_NAME": "cart", "MONGO_URI": "mongodb://127.0.0.1:1",
                                        "PRODUCT_URL": "http://127.0.0.1:1",
                                        "MONGO_DB": "cart"})
configure_logging("cart")
app = create_app(settings)
stream = io.StringIO()
logging.getLogger().handlers[0].stream = stream
logging.getLogger("x").info("hello")
names = [type(m).__name__ if not hasattr(m, "middleware") else m.middleware.__name__
         for m in app.middleware]
print(json.dumps({
    "otel_modules": sorted(m for m in sys.modules if m.startswith("opentelemetry")),
    "middleware": names,
    "threads": [t.name for t in threading.enumerate()],
    "tracing_off": app.state.tracing is None,
    "log": stream.getvalue(),
}))
"""


OFF_MODULES = (
    "opentelemetry.sdk",
    "opentelemetry.exporter",
    "opentelemetry.instrumentation.httpx",
    "opentelemetry.instrumentation.pymongo",
)


def test_tracing_off_sets_up_nothing() -> None:
    # A fresh interpreter: other tests in this process may have imported OpenTelemetry.
    result = subprocess.run(
        [sys.executable, "-c", OFF_CHECK], capture_output=True, text=True, timeout=60, check=True
    )
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    # Litestar imports its OpenTelemetry plugin module (the API, the ASGI instrumentation) at
    # every app's start whenever the package is installed, to reorder an OTel middleware; the
    # SDK, the exporter and the client instrumentations are never imported.
    loaded = seen["otel_modules"]
    assert not [m for m in loaded if m.startswith(OFF_MODULES)], loaded
    assert seen["tracing_off"]
    assert not any("OpenTelemetry" in name for name in seen["middleware"]), seen["middleware"]
    assert not any("Otel" in name or "Span" in name for name in seen["threads"]), seen["threads"]
    line = json.loads(seen["log"])
    assert line["msg"] == "hello" and "trace_id" not in line and "span_id" not in line
