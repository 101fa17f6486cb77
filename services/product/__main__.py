"""``python -m services.product`` runs the service; ``python -m services.product load-catalogue
[FILE]`` loads the sample catalogue (idempotent: products are matched by sku)."""

from __future__ import annotations

import sys

from services.kit.serve import run
from services.product.app import create_app
from services.product.settings import ProductSettings

if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "load-catalogue":
        from services.product.catalogue import load_catalogue_main

        raise SystemExit(load_catalogue_main(sys.argv[2:]))
    run(ProductSettings, create_app, "product")
