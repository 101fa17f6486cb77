"""The upgrade from the previous release (RELEASES, built from git history) to this tree, under
the shopper load through the ingress: zero failed requests, the Checkout Ready at every look, the
new operator version reported, the services rolled to this tree's images, and no pod replaced or
restarted whose workload's template did not change.

The upgrade itself runs once, when the shared platform is made (`tests/e2e_kind/upgrade.py`, from
`conftest.platform`); this test judges what it measured."""

from __future__ import annotations

import pytest

from tests.e2e_kind import upgrade
from tests.e2e_kind.conftest import Platform

pytestmark = pytest.mark.e2e

SERVICE_WORKLOADS = ("auth", "product", "cart", "order", "storefront")


def test_an_upgrade_from_the_previous_release_under_load_fails_no_request(
    platform: Platform,
) -> None:
    cluster = platform.cluster
    report = upgrade.UpgradeReport.load(cluster)
    if report is None or report.cluster_uid != upgrade.cluster_uid(cluster):
        upgrade.fail_or_skip(upgrade.explain_missing(cluster))
    assert not report.error, report.error
    print(report.line())
    print(report.details())
    assert report.failed == 0, f"{report.line()}: {report.failures}"
    assert report.requests >= 100, report.line()

    # Ready at every look, once a second, from before the upgrade until after it rolled out.
    assert report.looks >= 10, report.details()
    assert report.ready_looks == report.looks, report.not_ready

    # The new operator, and it says so.
    assert report.old_operator.startswith(f"{report.from_version} "), report.old_operator
    assert report.new_operator != report.old_operator
    assert report.reported == report.new_operator
    assert platform.checkout()["status"]["operatorVersion"] == report.new_operator

    # The services' Deployments rolled to this tree's images; the pods of every workload whose
    # template is unchanged (the databases, Traefik, CoreDNS, kube-proxy...) were kept.
    for workload in SERVICE_WORKLOADS:
        key = f"{platform.namespace}/Deployment/{platform.name}-{workload}"
        assert key in report.rolled, (key, report.rolled)
    assert report.replaced == [], report.replaced
    assert report.kept >= 4, report.details()  # at least the four databases' pods
    image = report.new_operator.split("(")[-1].rstrip(")").split(":")[-1]
    for workload in SERVICE_WORKLOADS:
        for pod in platform.pods(workload):
            if pod["metadata"].get("deletionTimestamp") or "mongodb" in pod["metadata"]["name"]:
                continue
            images = [c["image"] for c in pod["spec"]["containers"]]
            assert any(i.endswith(f":{image}") for i in images), (workload, images, image)
