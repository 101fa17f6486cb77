"""Product logic: the catalogue, and all-or-nothing stock reservations for checkouts.

Two forms of reservation:

- *committed at once* (``commit: true``, order's checkout): per item one conditional write takes
  the stock and marks the product with the reservation id; the answer carries each product's
  name and price as written. Nothing else is stored: the marks make a retried call take nothing
  twice and let the caller give the units back (``release`` with the items) until it settles
  them (``settle``) once its order is placed. ``notAfter`` bounds when stock may be taken, so a
  caller cleaning up after that moment cannot be overtaken by a late retry of its own call.
- *two-phase* (the first API): a reservation record, then ``commit`` or ``release``; a record
  nobody finished is released after ``reservation_ttl`` seconds.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
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
    ReservationRelease,
    Settled,
)

log = logging.getLogger(__name__)


def to_product(doc: Document) -> Product:
    return from_document(doc, Product, description="")


def _fields(data: ProductCreate | ProductUpdate) -> dict[str, Any]:
    # The camelCase names of the API are the stored field names too.
    raw: dict[str, Any] = msgspec.to_builtins(data)
    return raw


# Units a reservation took: (product, quantity). (Here, as ProductService.list shadows ``list``.)
Taken = list[tuple[ObjectId, int]]


def _past(deadline: datetime | None) -> bool:
    return deadline is not None and datetime.now(UTC) > _aware(deadline)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


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
        if data.commit:
            return await self._sell(data.reservation_id, wanted, data.not_after)
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

    async def _sell(
        self, rid: str, wanted: dict[str, int], not_after: datetime | None
    ) -> Reservation:
        """The reservation committed at once (see the module's docstring)."""
        taken: Taken = []
        lines: list[ReservedLine] = []
        missing: list[str] = []
        short: list[Document] = []
        for product_id, quantity in wanted.items():
            oid = parse_object_id(product_id)
            if _past(not_after):
                await self._give_back(taken, rid)
                raise Conflict(f"Reservation {rid!r} came after its deadline.")
            doc = None
            if oid is not None and not missing and not short:
                doc = await self.repo.take_marked(oid, quantity, rid)
            if doc is None and oid is not None:
                # Unknown, short, or taken by an earlier attempt of this same call.
                doc = await self.repo.by_object_id(oid)
                if doc is not None and rid not in doc.get("reservations", ()):
                    if doc["stock"] < quantity:
                        short.append(doc)
                    continue  # not taken: another item failed first
            if doc is None:
                missing.append(product_id)
                continue
            taken.append((doc["_id"], quantity))
            lines.append(
                ReservedLine(
                    product_id=product_id,
                    quantity=quantity,
                    name=doc["name"],
                    price_cents=doc["priceCents"],
                    currency=doc["currency"],
                )
            )
        if missing or short:
            await self._give_back(taken, rid)
            if missing:
                raise NotFound(
                    "Some products do not exist.", extra={"unknownProducts": sorted(missing)}
                )
            raise Conflict(
                "Not enough stock for: " + ", ".join(d["name"] for d in short) + ".",
                extra={
                    "outOfStock": [{"productId": str(d["_id"]), "name": d["name"]} for d in short]
                },
            )
        return Reservation(reservation_id=rid, state="committed", lines=lines)

    async def _give_back(self, taken: Taken, rid: str) -> None:
        for oid, quantity in taken:
            await self.repo.give_back(oid, quantity, rid)

    async def settle(self, reservation_ids: Sequence[str]) -> Settled:
        """Forget the marks of reservations committed at once whose orders are placed."""
        return Settled(products=await self.repo.settle_many(reservation_ids))

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

    async def release(
        self, reservation_id: str, data: ReservationRelease | None = None
    ) -> Reservation:
        doc = await self.reservations.get(reservation_id)
        if doc is None:
            # A reservation committed at once has no record: each named product gives back its
            # units if this reservation's mark is on it. Releasing what was never reserved is a
            # no-op, so a caller can always clean up.
            for item in data.items if data is not None else ():
                oid = parse_object_id(item.product_id)
                if oid is not None:
                    await self.repo.give_back(oid, item.quantity, reservation_id)
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
