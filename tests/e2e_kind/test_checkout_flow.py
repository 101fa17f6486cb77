"""A shopper's whole journey through the ingress of the platform on kind: register, sign in,
browse, add to cart, check out, see the order; the seed routes answer there too, and the
internal API does not."""

from __future__ import annotations

import pytest

from tests.e2e_kind.conftest import Platform
from tests.e2e_kind.journeys import (
    INTERNAL_PATHS,
    checkout_journey,
    internal_paths_closed,
    seed_journey,
)

pytestmark = pytest.mark.e2e


def test_register_sign_in_add_to_cart_and_check_out(platform: Platform) -> None:
    checkout_journey(platform)


def test_seed_routes_answer_through_the_ingress(platform: Platform) -> None:
    seed_journey(platform)


@pytest.mark.parametrize("path", INTERNAL_PATHS)
def test_internal_paths_are_not_exposed(platform: Platform, path: str) -> None:
    internal_paths_closed(platform, path)
