"""The OpenAPI document tells the truth: every status an operation can answer, with its
problem+json body; who may call it; request bodies that refuse unknown fields say so.

Litestar documents a handler's success response and its own validation error (as
``application/json``); the rest is derived here, in one place, from what each handler depends
on (``principal``, ``internal_caller``, ``internal_or_admin``, the ``admin_only`` guard, a request
body) plus
the statuses its service logic raises, which the handler names with ``opt=problems(...)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import msgspec
from litestar import Litestar
from litestar._openapi.schema_generation.plugins.struct import StructSchemaPlugin
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Components, Operation, Schema, SecurityScheme
from litestar.routes import HTTPRoute
from litestar.typing import FieldDefinition

from services.keys.report import INTERNAL_KEY_HEADER
from services.kit.errors import PROBLEM_JSON
from services.kit.security import admin_only

PROBLEMS_OPT = "problems"
AUTHENTICATES_OPT = "authenticates"
BEARER = "bearerToken"
INTERNAL_KEY = "internalApiKey"
SECURITY_COMPONENTS = Components(
    security_schemes={
        BEARER: SecurityScheme(type="http", scheme="bearer", bearer_format="JWT"),
        INTERNAL_KEY: SecurityScheme(
            type="apiKey", name=INTERNAL_KEY_HEADER, security_scheme_in="header"
        ),
    }
)
# The dependencies of services.kit.security: who may call, and what a refusal answers.
USER_DEPENDENCIES = {"principal"}
CALLER_STATUSES = {
    "principal": {401},
    "internal_caller": {401},
    "internal_or_admin": {401, 403},
}
# Request parameters Litestar fills from the connection, not from what the client sends.
CONNECTION_KWARGS = {"request", "state", "scope", "self"}
DESCRIPTIONS = {
    400: "The request is malformed or a parameter is invalid.",
    401: "No valid credentials were presented.",
    403: "The credentials do not allow this operation.",
    404: "Nothing with that id exists (for the caller).",
    409: "The request conflicts with the current state (duplicate, out of stock, ...).",
    413: "The request body is larger than MAX_BODY_BYTES.",
    415: "The request body was declared as something other than JSON.",
    429: "Too many attempts; Retry-After says when to try again.",
    503: "A database or another service is unreachable; Retry-After says when to retry.",
}


class Problem(msgspec.Struct, omit_defaults=True, rename="camel"):
    """An RFC 9457 problem, as services.kit.errors writes it."""

    type: str
    title: str
    status: int
    detail: str
    instance: str
    request_id: str | None = None
    errors: list[dict[str, Any]] | None = None


SEED_PREFIX = "seed"  # operation ids of the seed documents' routes
SEED_TAG = "seed-compatible"


@dataclass
class SeedTaggedOperation(Operation):
    """The operation Litestar documents for each path of a `with_seed_paths` handler: one whose
    id is a seed route's carries the seed-compatible tag instead of the handler's."""

    def __post_init__(self) -> None:
        if (self.operation_id or "").startswith(SEED_PREFIX):
            self.tags = [SEED_TAG]


def with_seed_paths(operation_id: str, path: str, /, **seed_paths: str) -> dict[str, Any]:
    """Route arguments for one handler serving the clean API's ``path`` and, answering the
    same, routes of the seed documents (``seed_paths``: operation id -> path, ids starting with
    ``seed``)::

        @get(**with_seed_paths("getUser", "/v1/users/{user_id:str}",
                               seedGetUser="/user/{user_id:str}"))

    Each path stays its own operation in the OpenAPI document with its own id; the seed ones are
    tagged ``seed-compatible`` (`SeedTaggedOperation`).
    """
    ids = {path: operation_id, **{p: i for i, p in seed_paths.items()}}
    bad = [i for i in seed_paths if not i.startswith(SEED_PREFIX)]
    if bad:
        raise ValueError(f"seed operation ids start with {SEED_PREFIX!r}: {bad}")

    def operation_id_of(handler: Any, method: Any, components: list[Any]) -> str:
        full = "/".join(c if isinstance(c, str) else "{" + c.full + "}" for c in components)
        # The handler's own path is the end of the route's (after router and controller).
        matches = [p for p in ids if f"/{full}".rstrip("/").endswith(p.rstrip("/"))]
        return ids[max(matches, key=len)]

    return {
        "path": list(ids),
        "operation_id": operation_id_of,
        "operation_class": SeedTaggedOperation,
    }


def problems(*statuses: int, authenticates: bool = False) -> dict[str, Any]:
    """``opt=`` for a handler whose service logic answers ``statuses`` (e.g. 404, 409); those
    that follow from its dependencies and parameters are found by themselves.
    ``authenticates``: the handler checks a bearer token itself, not through a dependency."""
    return {PROBLEMS_OPT: statuses, AUTHENTICATES_OPT: authenticates}


class StrictStructSchemaPlugin(StructSchemaPlugin):
    """Litestar's msgspec Struct schemas, plus what the Struct refuses: unknown fields
    (``forbid_unknown_fields=True``: ``additionalProperties: false``) and an empty object
    (a ``min_properties`` class variable: ``minProperties``)."""

    def to_openapi_schema(self, field_definition: FieldDefinition, schema_creator: Any) -> Schema:
        schema = super().to_openapi_schema(field_definition, schema_creator)
        struct_type = field_definition.type_
        if struct_type.__struct_config__.forbid_unknown_fields:
            schema.additional_properties = False
        min_properties = getattr(struct_type, "min_properties", None)
        if isinstance(min_properties, int):
            schema.min_properties = min_properties
        info = msgspec.inspect.type_info(struct_type)
        assert isinstance(info, msgspec.inspect.StructType)
        for field in info.fields:
            prop = (schema.properties or {}).get(field.encode_name)
            if isinstance(prop, Schema):
                _restore_bounds(prop, field.type)
        return schema


def _restore_bounds(schema: Schema, field_type: msgspec.inspect.Type) -> None:
    # Litestar reads the bounds of ``X`` and ``X | None`` but loses a zero bound of
    # ``X | UnsetType`` (an update's field): ``ge=0`` must still say ``minimum: 0``; and it
    # loses the bounds of a list's strings (``list[Annotated[str, Meta(min_length=1)]]``).
    if isinstance(field_type, msgspec.inspect.Metadata):
        field_type = field_type.type
    if isinstance(field_type, msgspec.inspect.ListType) and isinstance(schema.items, Schema):
        _restore_string_bounds(schema.items, field_type.item_type)
        return
    if isinstance(field_type, msgspec.inspect.UnionType):
        arms = [arm for arm in field_type.types if not isinstance(arm, msgspec.inspect.NoneType)]
        if len(arms) != 1:
            return
        field_type = arms[0]
    if isinstance(field_type, msgspec.inspect.Metadata):
        field_type = field_type.type
    if not isinstance(field_type, msgspec.inspect.IntType | msgspec.inspect.FloatType):
        return
    if field_type.ge is not None and schema.minimum is None:
        schema.minimum = field_type.ge
    if field_type.le is not None and schema.maximum is None:
        schema.maximum = field_type.le
    if field_type.gt is not None and schema.exclusive_minimum is None:
        schema.exclusive_minimum = field_type.gt
    if field_type.lt is not None and schema.exclusive_maximum is None:
        schema.exclusive_maximum = field_type.lt


def _restore_string_bounds(schema: Schema, item_type: msgspec.inspect.Type) -> None:
    if isinstance(item_type, msgspec.inspect.Metadata):
        item_type = item_type.type
    if not isinstance(item_type, msgspec.inspect.StrType):
        return
    if item_type.min_length is not None and schema.min_length is None:
        schema.min_length = item_type.min_length
    if item_type.max_length is not None and schema.max_length is None:
        schema.max_length = item_type.max_length
    if item_type.pattern is not None and schema.pattern is None:
        schema.pattern = item_type.pattern


def _optional_body(handler: HTTPRouteHandler) -> bool:
    """Whether the handler's request body may be left out (``data: X | None = None``)."""
    data = handler.parsed_fn_signature.parameters.get("data")
    return data is not None and data.has_default


def _client_parameters(handler: HTTPRouteHandler, dependencies: Iterable[str]) -> set[str]:
    return set(handler.parsed_fn_signature.parameters) - set(dependencies) - CONNECTION_KWARGS


def statuses_of(handler: HTTPRouteHandler) -> set[int]:
    """The error statuses ``handler`` can answer, besides a server error."""
    dependencies = set(handler.resolve_dependencies())
    used = dependencies & set(handler.parsed_fn_signature.parameters)
    statuses = {503}  # every operation reads its database, keyrings or another service
    for name in used:
        statuses |= CALLER_STATUSES.get(name, set())
    if admin_only in handler.resolve_guards():
        statuses |= {401, 403}
    parameters = _client_parameters(handler, dependencies)
    if parameters:
        # Litestar documents a validation 400 for any parameter (application/json): it is ours.
        statuses.add(400)
    if "data" in parameters:
        statuses |= {413, 415}
    statuses |= set(handler.opt.get(PROBLEMS_OPT, ()))
    return statuses


def security_of(handler: HTTPRouteHandler) -> list[dict[str, list[str]]]:
    used = set(handler.parsed_fn_signature.parameters)
    if "internal_or_admin" in used:
        return [{INTERNAL_KEY: []}, {BEARER: []}]
    if "internal_caller" in used:
        return [{INTERNAL_KEY: []}]
    if (
        used & USER_DEPENDENCIES
        or admin_only in handler.resolve_guards()
        or handler.opt.get(AUTHENTICATES_OPT)
    ):
        return [{BEARER: []}]
    return []


def document_operations(app: Litestar, limits: Mapping[str, int] | None = None) -> None:
    """Give every documented operation of ``app`` its problem responses and security; and
    ``limits``, query parameters whose maximum is a setting (e.g. ``pageSize``), their
    maximum. Call before the OpenAPI document is first built."""
    optional_bodies: set[str] = set()
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            if not handler.resolve_include_in_schema():
                continue
            if _optional_body(handler) and isinstance(handler.operation_id, str):
                optional_bodies.add(handler.operation_id)
            statuses = statuses_of(handler)
            specs = {
                status: ResponseSpec(
                    Problem,
                    description=DESCRIPTIONS[status],
                    media_type=PROBLEM_JSON,
                    generate_examples=False,
                )
                for status in sorted(statuses)
            }
            handler.responses = {**specs, **(handler.responses or {})}
            security = security_of(handler)
            if security:
                handler.security = security
    if not limits and not optional_bodies:
        return
    for path_item in (app.openapi_schema.paths or {}).values():
        for method in ("get", "post", "put", "patch", "delete"):
            operation = getattr(path_item, method, None)
            # Litestar documents every body as required, also one with a default.
            body = operation.request_body if operation else None
            if body is not None and operation and operation.operation_id in optional_bodies:
                body.required = False
            for parameter in (operation.parameters or []) if operation else []:
                limit = (limits or {}).get(getattr(parameter, "name", ""))
                if limit is not None and isinstance(parameter.schema, Schema):
                    parameter.schema.maximum = limit
