"""A load smoke through the ingress after the deploy, as the reference shops run one: a mixed
shopper load that must end with zero failed requests."""

from __future__ import annotations

import asyncio

import pytest

from tests.e2e_kind.conftest import Platform
from tests.e2e_kind.load import ShopperLoad, load_products
from tests.infra.kind import record_figure

pytestmark = pytest.mark.e2e

LOAD_SECONDS = 45


def test_a_shopper_load_through_the_ingress_has_no_failed_request(platform: Platform) -> None:
    load = ShopperLoad(
        f"http://127.0.0.1:{platform.port}", platform.host, load_products(platform), shoppers=6
    )
    report = asyncio.run(load.run(LOAD_SECONDS))
    record_figure(f"cluster load: {report.sent} requests, {report.failed} failed")
    print(report.summary())
    assert report.failed == 0, report.summary()
    checkouts = sum(n for op, n in report.by_operation.items() if op == "check out 201")
    assert report.sent >= 200 and checkouts >= 10, report.summary()
