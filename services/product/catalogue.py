"""Loading the sample catalogue (``data/catalogue.json``) into the product database."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

import msgspec

from services.kit.mongo import Database, create_client
from services.kit.settings import SettingsError, load_settings
from services.product.repository import ProductRepository, create_indexes
from services.product.schemas import ProductCreate
from services.product.settings import ProductSettings

SAMPLE = Path(__file__).parent / "data" / "catalogue.json"


def read_catalogue(path: Path = SAMPLE) -> list[ProductCreate]:
    return msgspec.json.decode(path.read_bytes(), type=list[ProductCreate])


async def load_catalogue(db: Database, products: list[ProductCreate]) -> tuple[int, int]:
    """Upsert by sku; returns (inserted, refreshed). Existing stock is left as it is."""
    await create_indexes(db)
    repo = ProductRepository(db)
    inserted = 0
    for product in products:
        if await repo.upsert_by_sku(msgspec.to_builtins(product)):
            inserted += 1
    return inserted, len(products) - inserted


async def _main(settings: ProductSettings, path: Path) -> tuple[int, int]:
    client = create_client(settings)
    try:
        return await load_catalogue(client[settings.mongo_db], read_catalogue(path))
    finally:
        await client.close()


def load_catalogue_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.product load-catalogue")
    parser.add_argument("file", nargs="?", type=Path, default=SAMPLE)
    args = parser.parse_args(argv)
    try:
        environ = {"SERVICE_NAME": "product", "MONGO_DB": "product", **os.environ}
        settings = load_settings(ProductSettings, environ)
        inserted, refreshed = asyncio.run(_main(settings, args.file))
    except SettingsError as exc:
        print(f"load-catalogue: {exc}", file=sys.stderr)
        return 2
    except msgspec.ValidationError as exc:
        print(f"load-catalogue: {args.file}: {exc}", file=sys.stderr)
        return 2
    print(f"catalogue loaded: {inserted} new, {refreshed} refreshed")
    return 0
