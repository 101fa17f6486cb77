"""``python -m services.order`` runs the service."""

from __future__ import annotations

from services.kit.serve import run
from services.order.app import create_app
from services.order.settings import OrderSettings

if __name__ == "__main__":
    run(OrderSettings, create_app, "order")
