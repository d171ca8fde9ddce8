"""API schemas (kept apart from the tables). Text fields refuse what PostgreSQL or a till cannot hold
(NUL, control characters, broken Unicode) with a 422 naming the field, instead of a 500 later."""
from __future__ import annotations

import re
from datetime import timezone
from decimal import Decimal

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from services.orders.permissions import ROLES
from services.orders.workflow import STATUSES

INT32_MAX = 2 ** 31 - 1
SIZES = ("Regular", "Large", "Small")
PAYMENT_METHODS = ("CASH", "CARD")
ORDER_SORTS = ("created_at", "-created_at", "id", "-id", "total", "-total", "status", "-status")
_PHONE = re.compile(r"^\+?[0-9][0-9 ()\-]{4,28}[0-9]$")


def _plain_text(value: str) -> None:
    if any(ord(c) < 32 or 0xD800 <= ord(c) <= 0xDFFF or ord(c) == 0x7F for c in value):
        raise ValidationError("must be plain text without control characters")
    if not value.strip():
        raise ValidationError("must not be blank")


class Text(fields.Str):
    """A stripped single-line string of 1..max_length characters."""

    def __init__(self, max_length: int = 100, **kwargs) -> None:
        validators = [validate.Length(min=1, max=max_length), _plain_text]
        super().__init__(validate=validators, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        return text.strip() if text.strip() else text


def _encodable(value: str) -> None:
    """A password may hold any character (spaces included) that UTF-8 can encode: a lone surrogate cannot
    be hashed, and must be a 422, not a 500."""
    if any(0xD800 <= ord(c) <= 0xDFFF or c == "\x00" for c in value):
        raise ValidationError("must be text without NUL or broken Unicode")


MAX_PRICE = Decimal("10000")
# Money is a decimal string in the document and on the wire ("2.45"), never a binary float.
_MONEY_DOC = {"type": "string", "format": "decimal", "example": "2.45"}


def _money_value(value: Decimal) -> None:
    if not (Decimal("0") <= value <= MAX_PRICE):
        raise ValidationError(f"must be between 0 and {MAX_PRICE}")
    if value != value.quantize(Decimal("0.01")):
        raise ValidationError("must have at most two decimal places")


class Money(fields.Decimal):
    """A price in pounds: a decimal string like "2.45" (a JSON number is accepted too)."""

    def __init__(self, **kwargs) -> None:
        super().__init__(as_string=True, allow_nan=False, validate=[_money_value],
                         metadata={**_MONEY_DOC, "pattern": r"^\d{1,5}(\.\d{1,2})?$",
                                   "description": "pounds, at most two decimal places"}, **kwargs)


def MoneyOut(**kwargs) -> fields.Decimal:   # noqa: N802 - reads like a field type
    metadata = {**_MONEY_DOC, "pattern": r"^\d+\.\d{2}$", **kwargs.pop("metadata", {})}
    return fields.Decimal(as_string=True, metadata=metadata, **kwargs)


def Id(strict: bool = True, **kwargs) -> fields.Int:   # noqa: N802 - reads like a field type
    """A row id; strict in JSON bodies (3.0 or "3" is not an id), not in query strings (always text)."""
    return fields.Int(strict=strict, validate=validate.Range(min=1, max=INT32_MAX), **kwargs)


class UtcDateTime(fields.AwareDateTime):
    """An ISO 8601 time (UTC when no offset), converted to UTC: PostgreSQL refuses offsets past 15:59."""

    def __init__(self, **kwargs) -> None:
        super().__init__(default_timezone=timezone.utc, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        moment = super()._deserialize(value, attr, data, **kwargs)
        try:
            return moment.astimezone(timezone.utc)
        except OverflowError:
            raise ValidationError("is out of range") from None


class PageArgs(Schema):
    page = fields.Int(load_default=1, validate=validate.Range(min=1, max=100_000))
    page_size = fields.Int(load_default=50, validate=validate.Range(min=1, max=200))


# --- auth and users -----------------------------------------------------------------------------------
class TokenRequest(Schema):
    username = Text(required=True)
    password = fields.Str(required=True, validate=[validate.Length(min=1, max=200), _encodable])


class TokenPublic(Schema):
    access_token = fields.Str(required=True)
    token_type = fields.Str(required=True, metadata={"enum": ["bearer"]})
    expires_in = fields.Int(required=True, metadata={"description": "seconds"})


class UserCreate(Schema):
    username = Text(required=True)
    password = fields.Str(required=True, validate=[validate.Length(min=8, max=200), _encodable])
    role = fields.Str(required=True, validate=validate.OneOf(ROLES))
    branch = Text(load_default=None, allow_none=True,
                  metadata={"description": "the one branch a manager (required) or a staff user works for"})


class UserUpdate(Schema):
    password = fields.Str(validate=[validate.Length(min=8, max=200), _encodable])
    role = fields.Str(validate=validate.OneOf(ROLES))
    branch = Text(allow_none=True)
    active = fields.Bool()


class UserPublic(Schema):
    id = fields.Int(required=True)
    username = fields.Str(required=True)
    role = fields.Str(required=True)
    branch = fields.Str(allow_none=True)
    active = fields.Bool()
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class UserPage(Schema):
    items = fields.List(fields.Nested(UserPublic))
    page = fields.Int()
    page_size = fields.Int()
    total = fields.Int()


# --- products and couriers ----------------------------------------------------------------------------
class ProductCreate(Schema):
    name = Text(required=True)
    # Optional, as the README writes them: a one-size product without a flavour is just a name and a price.
    size = fields.Str(load_default=None, allow_none=True, validate=validate.OneOf(SIZES),
                      metadata={"description": "null or left out for one-size products"})
    flavour = Text(load_default=None, allow_none=True, metadata={"description": "null or left out for none"})
    price = Money(required=True)


class ProductUpdate(Schema):
    name = Text()
    size = fields.Str(allow_none=True, validate=validate.OneOf(SIZES))
    flavour = Text(allow_none=True)
    price = Money()
    active = fields.Bool()


class ProductPublic(Schema):
    id = fields.Int(required=True)
    name = fields.Str(required=True)
    size = fields.Str(allow_none=True)
    flavour = fields.Str(allow_none=True)
    price = MoneyOut(required=True)
    active = fields.Bool()
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class ProductListArgs(PageArgs):
    active = fields.Bool()
    name = Text()


class ProductPage(Schema):
    items = fields.List(fields.Nested(ProductPublic))
    page = fields.Int()
    page_size = fields.Int()
    total = fields.Int()


class Phone(fields.Str):
    def __init__(self, **kwargs) -> None:
        super().__init__(validate=[validate.Regexp(_PHONE, error="must be a phone number (digits, spaces, +, -)")],
                         **kwargs)


class CourierCreate(Schema):
    name = Text(required=True)
    phone = Phone(required=True)
    branch = Text(required=True)


class CourierUpdate(Schema):
    name = Text()
    phone = Phone()
    branch = Text()
    active = fields.Bool()


class CourierPublic(Schema):
    id = fields.Int(required=True)
    name = fields.Str(required=True)
    phone = fields.Str(required=True)
    branch = fields.Str(required=True)
    active = fields.Bool()
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class CourierListArgs(PageArgs):
    active = fields.Bool()
    branch = Text()


class CourierPage(Schema):
    items = fields.List(fields.Nested(CourierPublic))
    page = fields.Int()
    page_size = fields.Int()
    total = fields.Int()


# --- orders ---------------------------------------------------------------------------------------------
class OrderItemIn(Schema):
    product_id = Id(required=True)
    quantity = fields.Int(strict=True, required=True, validate=validate.Range(min=1, max=50))


class OrderCreate(Schema):
    branch = Text(required=True)
    customer_name = Text(required=True)
    customer_address = Text(300, required=True)
    customer_phone = Phone(required=True)
    courier_id = Id(load_default=None, allow_none=True)
    payment_method = fields.Str(required=True, validate=validate.OneOf(PAYMENT_METHODS))
    items = fields.List(fields.Nested(OrderItemIn), required=True, validate=validate.Length(min=1, max=50))


class OrderUpdate(Schema):
    customer_name = Text()
    customer_address = Text(300)
    customer_phone = Phone()
    courier_id = Id(allow_none=True)
    payment_method = fields.Str(validate=validate.OneOf(PAYMENT_METHODS))
    items = fields.List(fields.Nested(OrderItemIn), validate=validate.Length(min=1, max=50))

    @validates_schema
    def _not_empty(self, data, **_kwargs) -> None:
        if not data:
            raise ValidationError("give at least one field to change", "_schema")


class StatusChangeIn(Schema):
    status = fields.Str(required=True, validate=validate.OneOf(STATUSES))
    reason = fields.Str(load_default=None, allow_none=True, validate=validate.Length(min=1, max=500),
                        metadata={"description": "why (required for refunded; kept in the order's history)"})


class OrderItemPublic(Schema):
    line_no = fields.Int()
    product_id = fields.Int()
    name = fields.Str()
    size = fields.Str(allow_none=True)
    flavour = fields.Str(allow_none=True)
    quantity = fields.Int()
    unit_price = MoneyOut(metadata={"description": "captured when the order was taken"})
    line_total = MoneyOut()


class StatusChangePublic(Schema):
    from_status = fields.Str(allow_none=True)
    to_status = fields.Str()
    changed_by = fields.Str()
    changed_at = fields.DateTime()
    reason = fields.Str(allow_none=True)


class OrderPublic(Schema):
    id = fields.Int(required=True)
    branch = fields.Str(required=True)
    customer_name = fields.Str(allow_none=True, metadata={"description": "null once erased (see below)"})
    customer_address = fields.Str(allow_none=True)
    customer_phone = fields.Str(allow_none=True)
    customer_details_erased_at = fields.DateTime(allow_none=True, metadata={
        "description": "when the customer's name, address and phone were erased: ORDERS_CUSTOMER_RETENTION_DAYS "
                       "after the order last changed, finished or not (an order abandoned open cannot go out for "
                       "delivery until they are entered again, which clears this)"})
    courier_id = fields.Int(allow_none=True)
    courier_name = fields.Str(allow_none=True)
    payment_method = fields.Str()
    status = fields.Str(required=True, metadata={"enum": list(STATUSES)})
    allowed_next = fields.List(fields.Str(), metadata={"description": "statuses this order may move to now"})
    total = MoneyOut(required=True, metadata={"description": "computed by the server from the items"})
    version = fields.Int(metadata={"description": "bumped by every change; the ETag carries it"})
    items = fields.List(fields.Nested(OrderItemPublic))
    history = fields.List(fields.Nested(StatusChangePublic))
    created_by = fields.Str()
    created_at = fields.DateTime()
    updated_at = fields.DateTime()
    delivered_at = fields.DateTime(allow_none=True)


class OrderListArgs(PageArgs):
    id = fields.Int(validate=validate.Range(min=1, max=2 ** 63 - 1))
    status = fields.Str(validate=validate.OneOf(STATUSES))
    courier_id = Id(strict=False)
    product_id = Id(strict=False)
    branch = Text()
    customer_phone = Phone()
    created_from = UtcDateTime(metadata={"description": "inclusive; ISO 8601, UTC when no offset"})
    created_to = UtcDateTime(metadata={"description": "exclusive"})
    sort = fields.Str(load_default="-created_at", validate=validate.OneOf(ORDER_SORTS))


class OrderPage(Schema):
    items = fields.List(fields.Nested(OrderPublic))
    page = fields.Int()
    page_size = fields.Int()
    total = fields.Int()
