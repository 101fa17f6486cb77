"""HTTP routes of the product service: the clean API (its handlers also answer the seed's routes
that behave the same, ``with_seed_paths``), internal stock routes, and the one seed route of its
own."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, Router, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, Parameter, QueryParameter
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT

from services.kit.app import from_state
from services.kit.openapi import SEED_TAG, problems, with_seed_paths
from services.kit.security import admin_only
from services.product.schemas import (
    CategoryList,
    Product,
    ProductCreate,
    ProductPage,
    ProductUpdate,
    Reservation,
    ReservationCreate,
    ReservationRelease,
    ReservationSettle,
    Settled,
    SortKey,
)
from services.product.service import ProductService

Page = Annotated[int, Parameter(ge=1, le=100_000, description="1-based page number")]
# Named pageSize in Python too: validation errors then name the field as the client sent it.
PageSize = Annotated[int, QueryParameter(name="pageSize", ge=1, le=500, description="items a page")]
Text = Annotated[str | None, Parameter(max_length=100, description="text in name or description")]
CategoryFilter = Annotated[str | None, Parameter(max_length=50)]
Ids = Annotated[str | None, Parameter(max_length=2000, description="comma-separated ids")]
Sort = Annotated[SortKey, QueryParameter(description="name, -name, price, -price or newest")]


class ProductController(Controller):
    path = "/api"
    tags = ["products"]

    @get(**with_seed_paths("listProducts", "/v1/products", seedListProducts="/get-product"))
    async def list_products(
        self,
        product_service: NamedDependency[ProductService],
        page: Page = 1,
        pageSize: PageSize = 20,
        q: Text = None,
        category: CategoryFilter = None,
        sort: Sort = "name",
        ids: Ids = None,
    ) -> ProductPage:
        """The catalogue, a page at a time, filtered and sorted."""
        return await product_service.list(
            page=page, page_size=pageSize, q=q, category=category, sort=sort, ids=ids
        )

    @get(
        **with_seed_paths(
            "getProduct",
            "/v1/products/{product_id:str}",
            seedGetProduct="/get-product-one/{product_id:str}",
        ),
        opt=problems(404),
    )
    async def get_product(
        self, product_id: FromPath[str], product_service: NamedDependency[ProductService]
    ) -> Product:
        return await product_service.get(product_id)

    @post(
        "/v1/products",
        operation_id="createProduct",
        guards=[admin_only],
        opt=problems(409),
        status_code=HTTP_201_CREATED,
    )
    async def create_product(
        self,
        data: JSONBody[ProductCreate],
        product_service: NamedDependency[ProductService],
    ) -> Product:
        return await product_service.create(data)

    @patch(
        "/v1/products/{product_id:str}",
        operation_id="updateProduct",
        guards=[admin_only],
        opt=problems(404),
    )
    async def update_product(
        self,
        product_id: FromPath[str],
        data: JSONBody[ProductUpdate],
        product_service: NamedDependency[ProductService],
    ) -> Product:
        return await product_service.update(product_id, data)

    @delete(
        "/v1/products/{product_id:str}",
        operation_id="deleteProduct",
        guards=[admin_only],
        opt=problems(404),
        status_code=HTTP_204_NO_CONTENT,
    )
    async def delete_product(
        self,
        product_id: FromPath[str],
        product_service: NamedDependency[ProductService],
    ) -> None:
        await product_service.delete(product_id)


class ReservationController(Controller):
    """Stock reservations for checkouts; only other services (internal key) may call these."""

    path = "/internal/v1/reservations"
    tags = ["internal"]

    @post("/", operation_id="reserveStock", opt=problems(404, 409), status_code=200)
    async def reserve(
        self,
        data: JSONBody[ReservationCreate],
        internal_caller: NamedDependency[str],
        product_service: NamedDependency[ProductService],
    ) -> Reservation:
        return await product_service.reserve(data)

    @post(
        "/{reservation_id:str}/commit",
        operation_id="commitReservation",
        opt=problems(404, 409),
        status_code=200,
    )
    async def commit(
        self,
        reservation_id: FromPath[str],
        internal_caller: NamedDependency[str],
        product_service: NamedDependency[ProductService],
    ) -> Reservation:
        return await product_service.commit(reservation_id)

    @post(
        "/{reservation_id:str}/release",
        operation_id="releaseReservation",
        opt=problems(404, 409),
        status_code=200,
    )
    async def release(
        self,
        reservation_id: FromPath[str],
        internal_caller: NamedDependency[str],
        product_service: NamedDependency[ProductService],
        data: JSONBody[ReservationRelease | None] = None,
    ) -> Reservation:
        """Give the stock back: a two-phase reservation's, or, with the items, one committed at
        once whose order could not be placed."""
        return await product_service.release(reservation_id, data)

    @post("/settle", operation_id="settleReservations", status_code=200)
    async def settle(
        self,
        data: JSONBody[ReservationSettle],
        internal_caller: NamedDependency[str],
        product_service: NamedDependency[ProductService],
    ) -> Settled:
        """Reservations committed at once whose orders are placed: their marks are removed."""
        return await product_service.settle(data.reservation_ids)


class CategoryController(Controller):
    path = "/api/v1/categories"
    tags = ["products"]

    @get("/", operation_id="listCategories")
    async def list_categories(
        self, product_service: NamedDependency[ProductService]
    ) -> CategoryList:
        """The categories that have products, by name."""
        return await product_service.categories()


class SeedRoutes(Controller):
    """Seed 000's route with no clean twin: a product by ``?id=``."""

    path = "/api"
    tags = [SEED_TAG]

    @get("/get-product-one", operation_id="seedGetProductByQuery", opt=problems(404))
    async def seed_get_by_query(
        self,
        product_service: NamedDependency[ProductService],
        product_id: Annotated[str, QueryParameter(name="id", min_length=1, max_length=64)],
    ) -> Product:
        return await product_service.get(product_id)


router = Router(
    path="/",
    route_handlers=[ProductController, CategoryController, ReservationController, SeedRoutes],
    dependencies={"product_service": from_state("product_service")},
)
