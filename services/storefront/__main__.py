"""``python -m services.storefront`` runs the shop."""

from __future__ import annotations

from services.kit.serve import run
from services.storefront.app import create_app
from services.storefront.settings import StorefrontSettings

if __name__ == "__main__":
    run(StorefrontSettings, create_app, "storefront")
