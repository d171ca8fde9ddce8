"""/v1/products and /v1/couriers: admins create, change and deactivate; every logged-in user reads.
Nothing is hard-deleted: orders keep referring to what they were taken with."""
from __future__ import annotations

from flask import current_app, url_for
from flask_smorest import Blueprint
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from services.common.errors import ApiError
from services.common.naming import branch_key
from services.orders.auth import authenticate
from services.orders.models import Courier, Product
from services.orders.permissions import MANAGE_CATALOGUE, READ_CATALOGUE, require
from services.orders.queries import get_or_404, page_of, resolve_branch
from services.orders.schemas import (
    CourierCreate,
    CourierListArgs,
    CourierPage,
    CourierPublic,
    CourierUpdate,
    ProductCreate,
    ProductListArgs,
    ProductPage,
    ProductPublic,
    ProductUpdate,
)

products = Blueprint("products", __name__, url_prefix="/v1/products", description="What the branches sell")
couriers = Blueprint("couriers", __name__, url_prefix="/v1/couriers", description="Who delivers")
_SECURITY = [{"bearer": []}]


def _ctx():
    return current_app.extensions["cafeflow.db"], current_app.extensions["cafeflow.settings"]


def _product_public(p: Product) -> dict:
    return {"id": p.id, "name": p.name, "size": p.size, "flavour": p.flavour, "price": p.price, "active": p.active,
            "created_at": p.created_at, "updated_at": p.updated_at}


def _courier_public(c: Courier) -> dict:
    return {"id": c.id, "name": c.name, "phone": c.phone, "branch": c.branch, "active": c.active,
            "created_at": c.created_at, "updated_at": c.updated_at}


def _duplicate_product() -> ApiError:
    return ApiError(409, "duplicate", "a product with this name, size and flavour exists (reactivate or change it)")


# --- products -------------------------------------------------------------------------------------------
@products.route("", methods=["POST"])
@products.doc(operationId="products-create", summary="Add a product", security=_SECURITY)
@products.arguments(ProductCreate)
@products.response(201, ProductPublic)
def create_product(data: dict):
    db, settings = _ctx()
    with db.session() as session:
        require(authenticate(session, settings), MANAGE_CATALOGUE)
        product = Product(**data)
        session.add(product)
        try:
            session.flush()
        except IntegrityError:
            raise _duplicate_product() from None
        session.commit()
        return _product_public(product), 201, {"Location": url_for("products.get_product", product_id=product.id)}


@products.route("", methods=["GET"])
@products.doc(operationId="products-list", summary="List products", security=_SECURITY)
@products.arguments(ProductListArgs, location="query")
@products.response(200, ProductPage)
def list_products(args: dict):
    db, settings = _ctx()
    with db.session() as session:
        require(authenticate(session, settings), READ_CATALOGUE)
        query = select(Product).order_by(Product.name, Product.size, Product.flavour, Product.id)
        if "active" in args:
            query = query.where(Product.active.is_(args["active"]))
        if "name" in args:
            query = query.where(func.lower(Product.name) == args["name"].lower())
        return page_of(session, query, args, _product_public)


@products.route("/<int:product_id>", methods=["GET"])
@products.doc(operationId="products-get", summary="One product", security=_SECURITY)
@products.response(200, ProductPublic)
def get_product(product_id: int):
    db, settings = _ctx()
    with db.session() as session:
        require(authenticate(session, settings), READ_CATALOGUE)
        return _product_public(get_or_404(session, Product, product_id, "product"))


@products.route("/<int:product_id>", methods=["PATCH"])
@products.doc(operationId="products-update", summary="Change a product (orders keep their captured prices)",
              security=_SECURITY)
@products.arguments(ProductUpdate)
@products.response(200, ProductPublic)
def update_product(data: dict, product_id: int):
    db, settings = _ctx()
    with db.session() as session:
        require(authenticate(session, settings), MANAGE_CATALOGUE)
        product = get_or_404(session, Product, product_id, "product")
        for name, value in data.items():
            setattr(product, name, value)
        try:
            session.flush()
        except IntegrityError:
            raise _duplicate_product() from None
        session.commit()
        return _product_public(product)


@products.route("/<int:product_id>/deactivate", methods=["POST"])
@products.doc(operationId="products-deactivate", summary="Stop selling a product (no new orders take it)",
              security=_SECURITY)
@products.response(200, ProductPublic)
def deactivate_product(product_id: int):
    db, settings = _ctx()
    with db.session() as session:
        require(authenticate(session, settings), MANAGE_CATALOGUE)
        product = get_or_404(session, Product, product_id, "product")
        product.active = False
        session.commit()
        return _product_public(product)


# --- couriers -------------------------------------------------------------------------------------------
@couriers.route("", methods=["POST"])
@couriers.doc(operationId="couriers-create", summary="Add a courier", security=_SECURITY)
@couriers.arguments(CourierCreate)
@couriers.response(201, CourierPublic)
def create_courier(data: dict):
    db, settings = _ctx()
    with db.session() as session:
        require(authenticate(session, settings), MANAGE_CATALOGUE)
        branch, key = resolve_branch(session, data["branch"], ["branch"])
        courier = Courier(name=data["name"], phone=data["phone"], branch=branch, branch_key=key)
        session.add(courier)
        session.commit()
        return _courier_public(courier), 201, {"Location": url_for("couriers.get_courier", courier_id=courier.id)}


@couriers.route("", methods=["GET"])
@couriers.doc(operationId="couriers-list", summary="List couriers", security=_SECURITY)
@couriers.arguments(CourierListArgs, location="query")
@couriers.response(200, CourierPage)
def list_couriers(args: dict):
    db, settings = _ctx()
    with db.session() as session:
        require(authenticate(session, settings), READ_CATALOGUE)
        query = select(Courier).order_by(Courier.branch_key, Courier.name, Courier.id)
        if "active" in args:
            query = query.where(Courier.active.is_(args["active"]))
        if "branch" in args:
            query = query.where(Courier.branch_key == branch_key(args["branch"]))
        return page_of(session, query, args, _courier_public)


@couriers.route("/<int:courier_id>", methods=["GET"])
@couriers.doc(operationId="couriers-get", summary="One courier", security=_SECURITY)
@couriers.response(200, CourierPublic)
def get_courier(courier_id: int):
    db, settings = _ctx()
    with db.session() as session:
        require(authenticate(session, settings), READ_CATALOGUE)
        return _courier_public(get_or_404(session, Courier, courier_id, "courier"))


@couriers.route("/<int:courier_id>", methods=["PATCH"])
@couriers.doc(operationId="couriers-update", summary="Change a courier", security=_SECURITY)
@couriers.arguments(CourierUpdate)
@couriers.response(200, CourierPublic)
def update_courier(data: dict, courier_id: int):
    db, settings = _ctx()
    with db.session() as session:
        require(authenticate(session, settings), MANAGE_CATALOGUE)
        courier = get_or_404(session, Courier, courier_id, "courier")
        if "branch" in data:
            courier.branch, courier.branch_key = resolve_branch(session, data.pop("branch"), ["branch"])
        for name, value in data.items():
            setattr(courier, name, value)
        session.commit()
        return _courier_public(courier)


@couriers.route("/<int:courier_id>/deactivate", methods=["POST"])
@couriers.doc(operationId="couriers-deactivate", summary="A courier who no longer delivers", security=_SECURITY)
@couriers.response(200, CourierPublic)
def deactivate_courier(courier_id: int):
    db, settings = _ctx()
    with db.session() as session:
        require(authenticate(session, settings), MANAGE_CATALOGUE)
        courier = get_or_404(session, Courier, courier_id, "courier")
        courier.active = False
        session.commit()
        return _courier_public(courier)
