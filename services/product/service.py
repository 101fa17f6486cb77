"""Product logic: the catalogue, and all-or-nothing stock reservations for checkouts."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from bson import ObjectId

from services.kit.contracts import Page, ReservedLine
from services.kit.errors import BadRequest, Conflict, NotFound
from services.kit.mongo import Database, Document, from_document, parse_object_id
from services.product.repository import ProductRepository, ReservationRepository, SkuTaken
from services.product.schemas import (
    CategoryList,
    Product,
    ProductCreate,
    ProductPage,
    ProductUpdate,
    Reservation,
    ReservationCreate,
)

log = logging.getLogger(__name__)


def to_product(doc: Document) -> Product:
    return from_document(doc, Product, description="")


def _fields(data: ProductCreate | ProductUpdate) -> dict[str, Any]:
    # The camelCase names of the API are the stored field names too.
    raw: dict[str, Any] = msgspec.to_builtins(data)
    return raw


class ProductService:
    def __init__(self, db: Database, *, max_page_size: int, reservation_ttl: int) -> None:
        self.repo = ProductRepository(db)
        self.reservations = ReservationRepository(db)
        self.max_page_size = max_page_size
        self.reservation_ttl = reservation_ttl

    async def list(
        self,
        *,
        page: int,
        page_size: int,
        q: str | None,
        category: str | None,
        sort: str,
        ids: str | None,
    ) -> ProductPage:
        if page_size > self.max_page_size:
            raise BadRequest(f"pageSize may be at most {self.max_page_size}.")
        object_ids: list[ObjectId] | None = None
        if ids is not None:
            parsed = [parse_object_id(part) for part in ids.split(",") if part]
            object_ids = [oid for oid in parsed if oid is not None]
        docs, total = await self.repo.find(
            text=q,
            category=category,
            ids=object_ids,
            sort=sort,
            skip=(page - 1) * page_size,
            limit=page_size,
        )
        return Page(
            items=[to_product(d) for d in docs], page=page, page_size=page_size, total=total
        )

    async def categories(self) -> CategoryList:
        return CategoryList(items=await self.repo.categories())

    async def get(self, product_id: str) -> Product:
        doc = await self.repo.get(product_id)
        if doc is None:
            raise NotFound(f"No product with id {product_id!r}.")
        return to_product(doc)

    async def create(self, data: ProductCreate) -> Product:
        try:
            doc = await self.repo.insert(_fields(data))
        except SkuTaken as exc:
            raise Conflict(f"A product with sku {data.sku!r} already exists.") from exc
        log.info("product created", extra={"productId": str(doc["_id"]), "sku": data.sku})
        return to_product(doc)

    async def update(self, product_id: str, data: ProductUpdate) -> Product:
        fields = _fields(data)
        if not fields:
            raise BadRequest("Send at least one field to change.")
        doc = await self.repo.update(product_id, fields)
        if doc is None:
            raise NotFound(f"No product with id {product_id!r}.")
        return to_product(doc)

    async def delete(self, product_id: str) -> None:
        if not await self.repo.delete(product_id):
            raise NotFound(f"No product with id {product_id!r}.")

    # --- reservations -------------------------------------------------------------------------

    async def reserve(self, data: ReservationCreate) -> Reservation:
        """Take stock for every item, or for none: on any shortage everything taken is returned."""
        wanted: dict[str, int] = {}
        for item in data.items:
            wanted[item.product_id] = wanted.get(item.product_id, 0) + item.quantity
        docs: dict[str, Document] = {}
        missing = []
        for product_id in wanted:
            doc = await self.repo.get(product_id)
            if doc is None:
                missing.append(product_id)
            else:
                docs[product_id] = doc
        if missing:
            raise NotFound(
                "Some products do not exist.", extra={"unknownProducts": sorted(missing)}
            )
        items: list[dict[str, Any]] = [
            {"productId": pid, "quantity": q} for pid, q in wanted.items()
        ]
        rid = data.reservation_id
        existing = await self.reservations.create(rid, items)
        if existing is None:
            current = await self.reservations.get(rid)
            assert current is not None
            if current["state"] in ("reserved", "committed"):
                return self._reservation(current, docs)
            if current["state"] != "pending":
                raise Conflict(f"Reservation {rid!r} was {current['state']}.")
            items = current["items"]
        short = []
        taken: list[dict[str, Any]] = []
        for entry in items:
            oid = docs[entry["productId"]]["_id"]
            if await self.repo.take(oid, entry["quantity"], rid):
                taken.append(entry)
            else:
                short.append(entry["productId"])
        if short:
            for entry in taken:
                await self.repo.give_back(docs[entry["productId"]]["_id"], entry["quantity"], rid)
            await self.reservations.move(rid, ["pending"], "failed")
            names = [docs[pid]["name"] for pid in short]
            raise Conflict(
                "Not enough stock for: " + ", ".join(names) + ".",
                extra={"outOfStock": [{"productId": p, "name": docs[p]["name"]} for p in short]},
            )
        await self.reservations.move(rid, ["pending"], "reserved")
        doc = await self.reservations.get(rid)
        assert doc is not None
        return self._reservation(doc, docs)

    def _reservation(self, doc: Document, products: dict[str, Document]) -> Reservation:
        lines = []
        for item in doc["items"]:
            product = products.get(item["productId"])
            if product is None:
                continue
            lines.append(
                ReservedLine(
                    product_id=item["productId"],
                    quantity=item["quantity"],
                    name=product["name"],
                    price_cents=product["priceCents"],
                    currency=product["currency"],
                )
            )
        return Reservation(reservation_id=str(doc["_id"]), state=doc["state"], lines=lines)

    async def commit(self, reservation_id: str) -> Reservation:
        doc = await self.reservations.get(reservation_id)
        if doc is None:
            raise NotFound(f"No reservation {reservation_id!r}.")
        if doc["state"] not in ("reserved", "committed"):
            raise Conflict(f"Reservation {reservation_id!r} is {doc['state']}.")
        await self.reservations.move(reservation_id, ["reserved"], "committed")
        for item in doc["items"]:
            oid = parse_object_id(item["productId"])
            if oid is not None:
                await self.repo.settle(oid, reservation_id)
        return Reservation(reservation_id=reservation_id, state="committed", lines=[])

    async def release(self, reservation_id: str) -> Reservation:
        doc = await self.reservations.get(reservation_id)
        if doc is None:
            # Releasing what was never reserved is a no-op, so a caller can always clean up.
            return Reservation(reservation_id=reservation_id, state="released", lines=[])
        if doc["state"] == "committed":
            raise Conflict(f"Reservation {reservation_id!r} is already committed.")
        for item in doc["items"]:
            oid = parse_object_id(item["productId"])
            if oid is not None:
                await self.repo.give_back(oid, item["quantity"], reservation_id)
        await self.reservations.move(reservation_id, ["pending", "reserved", "failed"], "released")
        return Reservation(reservation_id=reservation_id, state="released", lines=[])

    async def release_stale(self) -> int:
        """Return stock held by reservations nobody committed or released in time."""
        before = datetime.now(UTC) - timedelta(seconds=self.reservation_ttl)
        released = 0
        for doc in await self.reservations.stale(before):
            await self.release(str(doc["_id"]))
            released += 1
            log.warning("stale reservation released", extra={"reservationId": str(doc["_id"])})
        return released
