"""Rendering through the real helm and the dependency-built charts: the charts are the only
source of the operator's manifests."""

from __future__ import annotations

from pathlib import Path

import pytest
from checkout_operator.kube import KINDS
from checkout_operator.render import ChartRenderer, RenderError
from checkout_operator.spec import decode_spec
from checkout_operator.values import SERVICES, WORKLOADS, Release, all_workload_values

from tests.infra.helm import Helm
from tests.operator.cluster import sample_checkout

OPERATOR_PACKAGE = Path(__file__).resolve().parents[2] / "operator" / "checkout_operator"


@pytest.fixture
def renderer(charts: Helm) -> ChartRenderer:
    return ChartRenderer(charts.binary, charts.charts, timeout=60)


def sample_values() -> dict[str, dict[str, object]]:
    return all_workload_values(
        Release(
            "demo",
            "shop",
            decode_spec(sample_checkout("demo")["spec"]),
        )
    )


async def test_every_rendered_kind_is_one_the_operator_manages(renderer: ChartRenderer) -> None:
    rendered = await renderer.render_many(sample_values(), release="demo", namespace="shop")
    assert set(rendered) == set(WORKLOADS)
    for service, objects in rendered.items():
        kinds = {(o["apiVersion"], o["kind"]) for o in objects}
        assert kinds <= set(KINDS), f"{service} renders kinds the operator cannot manage"
        assert all(o["metadata"]["name"].startswith(f"demo-{service}") for o in objects)
        # The database credentials and the storefront's CSRF secret come from the operator's
        # Secrets, never from a template.
        assert not [o for o in objects if o["kind"] == "Secret"]


@pytest.mark.parametrize(
    ("mongodb", "image", "container"),
    [
        ({}, "mongo:7.0.14", "mongodb"),
        ({"engine": "ferretdb"}, "ghcr.io/ferretdb/ferretdb:1.24.2", "ferretdb"),
        (
            {"engine": "ferretdb", "image": "r.example.com/fdb:1.24.2"},
            "r.example.com/fdb:1.24.2",
            "ferretdb",
        ),
    ],
)
async def test_the_spec_picks_the_database_engine(
    renderer: ChartRenderer, mongodb: dict[str, str], image: str, container: str
) -> None:
    spec = {**sample_checkout("demo")["spec"], "mongodb": mongodb}
    values = all_workload_values(
        Release(
            "demo",
            "shop",
            decode_spec(spec),
        )
    )
    rendered = await renderer.render_many(values, release="demo", namespace="shop")
    assert not [o for o in rendered["storefront"] if o["kind"] == "StatefulSet"]
    for service in SERVICES:
        objects = rendered[service]
        (statefulset,) = [o for o in objects if o["kind"] == "StatefulSet"]
        (database,) = statefulset["spec"]["template"]["spec"]["containers"]
        assert (database["name"], database["image"]) == (container, image), service
        # The service's side never changes with the engine.
        (config,) = [o for o in objects if o["kind"] == "ConfigMap"]
        assert config["data"]["MONGO_URI"] == (
            f"mongodb://demo-{service}-mongodb-0.demo-{service}-mongodb-headless"
            ".shop.svc.cluster.local:27017/?authSource=admin"
        )


async def test_rendering_is_deterministic(renderer: ChartRenderer) -> None:
    values = sample_values()
    first = await renderer.render_many(values, release="demo", namespace="shop")
    second = await renderer.render_many(values, release="demo", namespace="shop")
    assert first == second


async def test_values_a_chart_refuses_are_a_permanent_error(renderer: ChartRenderer) -> None:
    values = sample_values()
    values["cart"]["replicaCount"] = "many"
    with pytest.raises(RenderError) as failure:
        await renderer.render_many(values, release="demo", namespace="shop")
    assert failure.value.permanent
    assert "helm template cart" in str(failure.value)
    assert "replicaCount" in str(failure.value)


async def test_a_missing_helm_is_not_the_specs_fault(tmp_path: Path) -> None:
    renderer = ChartRenderer(tmp_path / "no-helm", tmp_path)
    with pytest.raises(RenderError) as failure:
        await renderer.render("auth", release="demo", namespace="shop", values={})
    assert not failure.value.permanent


def test_the_operator_holds_no_copy_of_a_template() -> None:
    sources = {
        path.name: path.read_text()
        for path in OPERATOR_PACKAGE.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    assert all(name.endswith(".py") for name in sources), sorted(sources)
    # What a copied manifest would spell out: a chart-rendered kind as a literal, template
    # syntax, or fields only a manifest writes (reading a live object's fields is fine).
    chart_kinds = {kind for _, kind in KINDS} - {"Secret"}  # the operator makes the Secrets
    fragments = [f'"kind": "{kind}"' for kind in sorted(chart_kinds)]
    fragments += ["volumeClaimTemplates", "ingressClassName", "{{"]
    for name, text in sources.items():
        for fragment in fragments:
            assert fragment not in text, f"{name} spells out {fragment!r}: render the chart instead"
