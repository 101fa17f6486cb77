"""The operator chart's alerts and dashboard (charts/checkout-operator/files), checked by
promtool (built from its Go module, tests/infra/promtool.py) and shipped by the chart.

- the rule file passes `promtool check rules` with every lint, and the unit tests of
  alerts.test.yaml pass (`promtool test rules`): each alert fires on its symptom after its `for`
  and stays quiet on a look-alike;
- every alert has a severity, a summary, a description, a runbook section that exists in
  docs/runbooks.md, and a unit test that sees it fire and one that sees it quiet;
- every query of the dashboard parses as PromQL once Grafana's variables are filled in;
- `helm template` ships the rule groups and the dashboard as they are in the files, with the
  ServiceMonitor and PodMonitor scraping what the alerts read, and renders none of them by
  default."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.charts.conftest import KUBERNETES_VERSION
from tests.infra.helm import CHARTS, ROOT, Helm, helm_path
from tests.infra.promtool import promtool_path

CHART = "checkout-operator"
ALERTS = CHARTS / CHART / "files" / "alerts.yaml"
DASHBOARD = CHARTS / CHART / "files" / "dashboard.json"
UNIT_TESTS = Path(__file__).with_name("alerts.test.yaml")
RUNBOOKS = ROOT / "docs" / "runbooks.md"
RUNBOOKS_URL = (
    yaml.safe_load((CHARTS / CHART / "Chart.yaml").read_text())["home"]
    + "/blob/main/docs/runbooks.md"
)
SEVERITIES = {"critical", "warning", "info"}
MONITORING_KINDS = {"ServiceMonitor", "PodMonitor", "PrometheusRule"}
ALL_ON: dict[str, Any] = {
    "serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus"}},
    "podMonitor": {"enabled": True},
    "alerts": {"enabled": True, "labels": {"release": "kube-prometheus"}},
    "dashboards": {"enabled": True, "annotations": {"grafana_folder": "Checkout"}},
}
# What Grafana puts in place of its variables, for promtool to parse the result.
GRAFANA_VARIABLES = {
    "$__rate_interval": "5m",
    "$__interval": "1m",
    "$__range": "6h",
    "$namespace": ".*",
    "$checkout": ".*",
}


def _rules() -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


ALERT_NAMES = [rule["alert"] for rule in _rules()]


def _promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(promtool_path()), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"promtool {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    """helm on a private copy of the operator chart (it has no dependencies to build)."""
    workdir = tmp_path_factory.mktemp("helm")
    shutil.copytree(CHARTS / CHART, workdir / "charts" / CHART)
    return Helm(workdir, helm_path())


def _of_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (found,) = [o for o in objects if o["kind"] == kind]
    return found


# -- promtool ----------------------------------------------------------------------------------


def test_rules_pass_every_lint() -> None:
    result = _promtool("check", "rules", "--lint=all", "--lint-fatal", str(ALERTS))
    assert f"SUCCESS: {len(ALERT_NAMES)} rules found" in result.stdout


def test_alerts_fire_on_their_symptoms_only() -> None:
    _promtool("test", "rules", UNIT_TESTS.name, cwd=UNIT_TESTS.parent)


def test_dashboard_queries_parse(tmp_path: Path) -> None:
    """Each query, and each variable's series selector, as a recording rule for promtool."""
    dashboard = json.loads(DASHBOARD.read_text())
    exprs: dict[str, str] = {}
    for panel in _panels(dashboard["panels"]):
        for target in panel.get("targets", []):
            exprs[f"panel {panel['id']} ({panel['title']}) {target['refId']}"] = target["expr"]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]["query"]
            found = re.fullmatch(r"label_values\((.+), (\w+)\)", query)
            assert found, f"variable {variable['name']}: {query}"
            exprs[f"variable {variable['name']}"] = found.group(1)
    assert len(exprs) > 10
    rules = []
    for index, expr in enumerate(exprs.values()):
        for variable, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(variable, value)
        assert "$" not in expr, f"a Grafana variable is left in {expr}"
        rules.append({"record": f"dashboard:query_{index}", "expr": expr})
    path = tmp_path / "dashboard-queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run(
        [str(promtool_path()), "check", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, (
        "\n".join(f"query_{i}: {what}" for i, what in enumerate(exprs))
        + f"\n{result.stdout}\n{result.stderr}"
    )


# -- what the files say --------------------------------------------------------------------------


def _anchors(markdown: str) -> set[str]:
    """GitHub's anchors of the Markdown headings (lower case, punctuation dropped, - for spaces)."""
    anchors = set()
    for line in markdown.splitlines():
        heading = re.match(r"#{1,6} (.+)", line)
        if heading:
            text = re.sub(r"[^\w\- ]", "", heading.group(1).strip().lower())
            anchors.add(text.replace(" ", "-"))
    return anchors


def test_groups_are_named_checkout() -> None:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    assert [g["name"] for g in groups] == ["checkout-services", "checkout-operator"]


@pytest.mark.parametrize("rule", _rules(), ids=ALERT_NAMES)
def test_alert_has_severity_annotations_and_runbook(rule: dict[str, Any]) -> None:
    assert rule["labels"]["severity"] in SEVERITIES
    annotations = rule["annotations"]
    assert annotations["summary"].strip() and annotations["description"].strip()
    base, _, anchor = annotations["runbook_url"].partition("#")
    assert base == RUNBOOKS_URL
    assert anchor == rule["alert"].lower()
    assert anchor in _anchors(RUNBOOKS.read_text()), f"no section for #{anchor} in {RUNBOOKS}"


def _cases() -> Iterator[dict[str, Any]]:
    for test in yaml.safe_load(UNIT_TESTS.read_text())["tests"]:
        yield from test.get("alert_rule_test", [])


@pytest.mark.parametrize("alert", ALERT_NAMES)
def test_alert_is_seen_firing_and_quiet(alert: str) -> None:
    cases = [case for case in _cases() if case["alertname"] == alert]
    assert any(case["exp_alerts"] for case in cases), f"no test sees {alert} fire"
    assert any(not case["exp_alerts"] for case in cases), f"no test sees {alert} quiet"


def test_dashboard_has_the_variables_and_panels() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["schemaVersion"] >= 39
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for name in ("namespace", "checkout"):
        assert variables[name]["datasource"]["uid"] == "${datasource}"
    panels = [p for p in _panels(dashboard["panels"]) if p["type"] != "row"]
    assert len({p["id"] for p in _panels(dashboard["panels"])}) == len(
        list(_panels(dashboard["panels"]))
    )
    for panel in panels:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
    queried = " ".join(t["expr"] for p in panels for t in p["targets"])
    for metric in (
        "checkout_requests_total",
        "checkout_request_duration_seconds_bucket",
        "checkout_operator_checkout_ready",
        "checkout_operator_checkout_phase",
        "checkout_operator_reconciles_total",
        "checkout_operator_reconcile_duration_seconds_bucket",
        "checkout_operator_drift_repairs_total",
        "checkout_operator_rotation_phase",
        "checkout_operator_backup_last_success_timestamp_seconds",
    ):
        assert metric in queried, metric


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


# -- the chart -----------------------------------------------------------------------------------


def test_nothing_of_it_renders_by_default(helm: Helm) -> None:
    objects = helm.template(CHART)
    assert not [o for o in objects if o["kind"] in MONITORING_KINDS]
    assert not [o for o in objects if o["kind"] == "ConfigMap"]


def test_chart_ships_the_rules_and_the_dashboard_unchanged(helm: Helm) -> None:
    assert "0 chart(s) failed" in helm.lint(CHART, ALL_ON)
    objects = helm.template(CHART, ALL_ON)
    for obj in objects:
        assert obj["metadata"]["labels"]["app.kubernetes.io/part-of"] == "checkout-platform"

    rule = _of_kind(objects, "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus"
    assert rule["spec"] == yaml.safe_load(ALERTS.read_text())

    (configmap,) = [o for o in objects if o["kind"] == "ConfigMap"]
    kubernetes_validate.validate(configmap, KUBERNETES_VERSION, strict=True)
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert configmap["metadata"]["annotations"] == {"grafana_folder": "Checkout"}
    (text,) = configmap["data"].values()
    assert json.loads(text) == json.loads(DASHBOARD.read_text())


def test_dashboard_label_and_namespace_are_values(helm: Helm) -> None:
    values = {
        "dashboards": {
            "enabled": True,
            "label": "grafana.example.com/dashboard",
            "labelValue": "checkout",
            "namespace": "grafana",
        }
    }
    configmap = _of_kind(helm.template(CHART, values), "ConfigMap")
    assert configmap["metadata"]["namespace"] == "grafana"
    assert configmap["metadata"]["labels"]["grafana.example.com/dashboard"] == "checkout"
    assert "grafana_dashboard" not in configmap["metadata"]["labels"]


def test_service_monitor_scrapes_the_operator_keeping_its_labels(helm: Helm) -> None:
    objects = helm.template(CHART, ALL_ON)
    monitor = _of_kind(objects, "ServiceMonitor")
    pod_labels = _of_kind(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    selector = monitor["spec"]["selector"]["matchLabels"]
    # The operator's stable labels, which its metrics Service carries, with a port named metrics.
    assert selector.items() <= pod_labels.items()
    service = next(
        o for o in objects if o["kind"] == "Service" and o["metadata"]["name"].endswith("-metrics")
    )
    assert selector.items() <= service["metadata"]["labels"].items()
    assert [p["name"] for p in service["spec"]["ports"]] == ["metrics"]
    assert selector["app.kubernetes.io/component"] == "operator"
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["checkout"]}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == "metrics"
    assert endpoint["path"] == "/metrics"
    assert endpoint["honorLabels"] is True


def test_pod_monitor_selects_every_service_pod_by_its_chart_labels(helm: Helm) -> None:
    """The PodMonitor's selector and port against the pods the service charts really make (the
    checkout umbrella, as the operator renders a Checkout: the release is the Checkout's name)."""
    monitor = _of_kind(helm.template(CHART, ALL_ON), "PodMonitor")
    assert monitor["spec"]["namespaceSelector"] == {"any": True}
    selector = monitor["spec"]["selector"]["matchLabels"]
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    (relabel,) = endpoint["relabelings"]
    assert relabel["sourceLabels"] == ["__meta_kubernetes_pod_label_app_kubernetes_io_instance"]
    assert relabel["targetLabel"] == "checkout"

    services = Helm(helm.workdir / "services", helm.binary).prepare()
    selected = set()
    for obj in services.template("checkout", release="prod", namespace="shop"):
        if obj["kind"] not in ("Deployment", "StatefulSet"):
            continue
        template = obj["spec"]["template"]
        labels = template["metadata"]["labels"]
        if selector.items() <= labels.items():
            ports = {p["name"] for c in template["spec"]["containers"] for p in c.get("ports", [])}
            assert endpoint["port"] in ports, obj["metadata"]["name"]
            assert labels["app.kubernetes.io/instance"] == "prod"
            selected.add(labels["app.kubernetes.io/name"])
    assert selected == {"auth", "product", "cart", "order", "storefront"}


def test_pod_monitor_follows_watch_namespaces(helm: Helm) -> None:
    watched = {"podMonitor": {"enabled": True}, "watchNamespaces": ["shop-a", "shop-b"]}
    monitor = _of_kind(helm.template(CHART, watched), "PodMonitor")
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["shop-a", "shop-b"]}
    chosen = {**watched, "podMonitor": {"enabled": True, "namespaces": ["shop-c"]}}
    monitor = _of_kind(helm.template(CHART, chosen), "PodMonitor")
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["shop-c"]}
