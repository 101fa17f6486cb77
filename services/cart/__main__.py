"""``python -m services.cart`` runs the service."""

from __future__ import annotations

from services.cart.app import create_app
from services.cart.settings import CartSettings
from services.kit.serve import run

if __name__ == "__main__":
    run(CartSettings, create_app, "cart")
