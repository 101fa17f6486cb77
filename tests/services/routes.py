"""Every route of the four services, read from the apps themselves: their route tables, and
their OpenAPI documents for the query parameters and request bodies. Tests parametrised over
these cover a new route without being edited."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import msgspec
from litestar import Litestar
from litestar.routes import HTTPRoute

from tests.conftest import factory

SERVICES = ("auth", "product", "cart", "order")
PLACEHOLDER_URL = "http://127.0.0.1:9"


@dataclass(frozen=True)
class Operation:
    service: str
    method: str
    path: str  # an OpenAPI-style template: /api/v1/products/{product_id}
    operation_id: str | None
    path_params: tuple[str, ...]
    query_params: tuple[tuple[str, str], ...]  # (name, JSON schema type)
    has_body: bool
    dependencies: frozenset[str]  # e.g. "principal", "internal_caller"

    @property
    def id(self) -> str:
        return f"{self.service}:{self.method}:{self.path}"


def unstarted_app(service: str) -> Litestar:
    """The service's app, built with placeholder settings; never started, it touches nothing."""
    settings_cls, create_app = factory(service)
    values: dict[str, Any] = {
        field.name: PLACEHOLDER_URL
        for field in msgspec.structs.fields(settings_cls)
        if field.required
    }
    values["service_name"] = service
    return create_app(settings_cls(**values))


def _query_type(schema: dict[str, Any]) -> str:
    for candidate in [schema, *schema.get("oneOf", []), *schema.get("anyOf", [])]:
        if candidate.get("type") not in (None, "null"):
            return str(candidate["type"])
    return "string"


def service_operations(service: str) -> list[Operation]:
    """Every HTTP route and method of ``service`` (OPTIONS and HEAD aside)."""
    app = unstarted_app(service)
    document = app.openapi_schema.to_schema()
    operations = []
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        template = re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path)
        documented = document["paths"].get(template, {})
        for method in sorted(route.methods - {"OPTIONS", "HEAD"}):
            handler, _ = route.route_handler_map[method]
            spec = documented.get(method.lower(), {})
            parameters = spec.get("parameters", [])
            operations.append(
                Operation(
                    service=service,
                    method=method,
                    path=template,
                    operation_id=spec.get("operationId"),
                    path_params=tuple(
                        name for name in route.path_parameters if f"{{{name}}}" in template
                    ),
                    query_params=tuple(
                        (p["name"], _query_type(p.get("schema", {})))
                        for p in parameters
                        if p["in"] == "query"
                    ),
                    has_body="requestBody" in spec,
                    dependencies=frozenset(handler.parsed_fn_signature.parameters)
                    & frozenset(handler.resolve_dependencies()),
                )
            )
    # In a stable order: pytest-xdist's workers must collect the same tests.
    return sorted(operations, key=lambda op: (op.path, op.method))


OPERATIONS = [op for service in SERVICES for op in service_operations(service)]
