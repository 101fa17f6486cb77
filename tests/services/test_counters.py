"""The work counters on /metrics: database commands and service calls, counted by a real
service (cart, which reads its database and calls product) on a real database."""

from __future__ import annotations

import re

from tests.conftest import RunningService


def _total(metrics: str, name: str, label: str) -> float:
    pattern = rf'^{name}_total\{{{label}="[^"]*"\}} ([0-9.e+]+)$'
    return sum(float(v) for v in re.findall(pattern, metrics, flags=re.MULTILINE))


async def test_a_cart_view_counts_its_commands_and_an_add_its_product_call(
    cart: RunningService, shopper, catalogue: RunningService
) -> None:
    who = shopper()
    before = (await cart.client.get("/metrics")).text
    assert (await cart.client.get("/api/v1/cart", headers=who.headers)).status_code == 200
    middle = (await cart.client.get("/metrics")).text
    commands = _total(middle, "checkout_db_commands", "command") - _total(
        before, "checkout_db_commands", "command"
    )
    assert commands >= 1  # at least the read of the cart's lines
    products = await catalogue.client.get("/api/v1/products", params={"pageSize": 1})
    pid = products.json()["items"][0]["id"]
    added = await cart.client.post(
        "/api/v1/cart/items", headers=who.headers, json={"productId": pid, "quantity": 1}
    )
    assert added.status_code in (200, 201), added.text
    after = (await cart.client.get("/metrics")).text
    calls = _total(after, "checkout_service_calls", "target") - _total(
        middle, "checkout_service_calls", "target"
    )
    assert calls >= 1  # the product facts for the new line
    assert 'checkout_service_calls_total{target="product"}' in after
