"""The Checkout spec as the operator decodes it (`checkout_operator.spec`): the same fields and
defaults as the CRD's schema, and a spec that does not fit refused with the field named."""

from __future__ import annotations

import types
import typing
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
import yaml
from checkout_operator.spec import (
    DATABASE_ENGINES,
    CheckoutSpec,
    RestoreFromSpec,
    SpecError,
    decode_spec,
)

from tests.operator.cluster import CRD_FILE, sample_checkout

NO_CRD_DEFAULT = {
    "spec.mongodb.storage.className": "",
    "spec.ingress.host": "",
    "spec.ingress.tls.secretName": "",
    "spec.ingress.trustedProxies": (),
    "spec.observability.tracing.otlpEndpoint": "",
    "spec.backup.timeZone": "",
    "spec.backup.target.volumeClaim.name": "",
    "spec.backup.target.volumeClaim.storageClassName": "",
    "spec.restore.from": RestoreFromSpec(),  # required by the CRD
    "spec.restore.from.backup": "",
    "spec.restore.from.claimName": "",
    "spec.restore.from.archive": "latest",  # not the CRD's: it goes with claimName only
}
"""Fields the CRD leaves unset when absent, which the operator reads as empty."""


def crd_spec_schema() -> dict[str, Any]:
    crd = next(yaml.safe_load_all(CRD_FILE.read_text()))
    alpha, beta = crd["spec"]["versions"]
    # v1beta1 is v1alpha1's schema (merged in the file), so the Structs describe both.
    assert (alpha["name"], beta["name"]) == ("v1alpha1", "v1beta1")
    assert alpha["schema"] == beta["schema"]
    schema: dict[str, Any] = alpha["schema"]["openAPIV3Schema"]["properties"]["spec"]
    return schema


def struct_in(annotation: Any) -> type[msgspec.Struct] | None:
    """The Struct type of a field typed ``S`` or ``S | None``."""
    if isinstance(annotation, type) and issubclass(annotation, msgspec.Struct):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = struct_in(arg)
            if found is not None:
                return found
    return None


def default_of(field: msgspec.structs.FieldInfo) -> Any:
    if field.default_factory is not msgspec.NODEFAULT:
        return field.default_factory()
    return field.default


def fields_beside_schema(
    schema: dict[str, Any], struct: type[msgspec.Struct], path: str
) -> Iterator[tuple[str, dict[str, Any], msgspec.structs.FieldInfo]]:
    """Every field of ``struct`` with its property in the CRD's ``schema``, by path."""
    fields = {field.encode_name: field for field in msgspec.structs.fields(struct)}
    properties: dict[str, Any] = schema.get("properties") or {}
    assert set(properties) == set(fields), path
    for name, prop in properties.items():
        field = fields[name]
        yield f"{path}.{name}", prop, field
        nested = struct_in(field.type)
        if nested is not None:
            yield from fields_beside_schema(prop, nested, f"{path}.{name}")


def test_the_structs_read_every_field_of_the_crd_with_its_default() -> None:
    """A default changed on one side only (or given on one side only) fails here."""
    checked = 0
    for path, prop, field in fields_beside_schema(crd_spec_schema(), CheckoutSpec, "spec"):
        ours = default_of(field)
        assert ours is not msgspec.NODEFAULT, f"{path}: the Struct has no default"
        if "default" in prop:
            # The CRD's default, decoded: an object's {} takes the Struct's nested defaults,
            # which are held against the CRD's nested defaults field by field.
            assert msgspec.convert(prop["default"], field.type) == ours, path
            checked += 1
        elif path in NO_CRD_DEFAULT:
            assert ours == NO_CRD_DEFAULT[path], path
        else:
            assert ours is None, f"{path}: the Struct has a default the CRD does not ({ours!r})"
    assert checked >= 40  # four services and the storefront each have seven


def test_the_database_engines_are_the_crds_enum_the_default_first() -> None:
    engine = crd_spec_schema()["properties"]["mongodb"]["properties"]["engine"]
    assert engine["enum"] == list(DATABASE_ENGINES)
    assert engine["default"] == DATABASE_ENGINES[0]


def test_an_empty_or_missing_spec_is_every_default() -> None:
    assert decode_spec(None) == decode_spec({}) == CheckoutSpec()
    rotation = decode_spec({}).secret_rotation
    assert (rotation.interval_minutes, rotation.token_lifetime_seconds) == (1440, 900)
    assert rotation.propagation_delay_seconds == 90


def test_the_sample_decodes_with_its_own_values() -> None:
    spec = decode_spec(sample_checkout()["spec"])
    assert spec.services.of("auth").replicas >= 1
    with pytest.raises(KeyError):
        spec.services.of("storefront")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"secretRotation": {"tokenLifetimeSeconds": "15m"}},
            "spec.secretRotation.tokenLifetimeSeconds: Expected `int`, got `str`",
        ),
        ({"services": {"cart": {"replicas": True}}}, "spec.services.cart.replicas: Expected"),
        ({"ingress": {"trustedProxies": ["10.0.0.0/8", 7]}}, r"spec.ingress.trustedProxies\[1\]"),
        ({"mongodb": {"engine": "postgres"}}, "spec.mongodb.engine: Invalid enum value 'postgres'"),
        ([], "spec: Expected `object`, got `array`"),
    ],
)
def test_a_spec_that_does_not_fit_is_refused_naming_the_field(spec: Any, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        decode_spec(spec)
