"""Tables of schema `orders` (migrations in services/orders/migrations)."""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, Boolean, DateTime, ForeignKey, Integer, Numeric, SmallInteger, Text, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from services.common.db import Base


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now(),
                                                 onupdate=func.now())


class AppUser(TimestampMixin, Base):
    __tablename__ = "app_user"
    __table_args__ = {"schema": "orders"}
    __mapper_args__ = {"eager_defaults": True}   # server defaults come back through RETURNING

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(Text)
    password_hash: Mapped[str] = mapped_column(Text)
    role: Mapped[str] = mapped_column(Text)
    branch: Mapped[str | None] = mapped_column(Text, nullable=True)
    branch_key: Mapped[str | None] = mapped_column(Text, nullable=True)
    active: Mapped[bool] = mapped_column(Boolean, server_default="true")
    # Carried by the user's tokens; bumped by a trigger on password/active/role/branch changes and by logout
    # (orders migration 0005), so older tokens stop working.
    token_version: Mapped[int] = mapped_column(Integer, server_default="1")


class Product(TimestampMixin, Base):
    __tablename__ = "product"
    __table_args__ = {"schema": "orders"}
    __mapper_args__ = {"eager_defaults": True}   # server defaults come back through RETURNING

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    size: Mapped[str | None] = mapped_column(Text, nullable=True)
    flavour: Mapped[str | None] = mapped_column(Text, nullable=True)
    price: Mapped[Decimal] = mapped_column(Numeric(10, 2))
    active: Mapped[bool] = mapped_column(Boolean, server_default="true")


class Courier(TimestampMixin, Base):
    __tablename__ = "courier"
    __table_args__ = {"schema": "orders"}
    __mapper_args__ = {"eager_defaults": True}   # server defaults come back through RETURNING

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    phone: Mapped[str] = mapped_column(Text)
    branch: Mapped[str] = mapped_column(Text)
    branch_key: Mapped[str] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(Boolean, server_default="true")


class CustomerOrder(TimestampMixin, Base):
    __tablename__ = "customer_order"
    __table_args__ = {"schema": "orders"}
    __mapper_args__ = {"eager_defaults": True}   # server defaults come back through RETURNING

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    branch: Mapped[str] = mapped_column(Text)
    branch_key: Mapped[str] = mapped_column(Text)
    # None once erased after the retention period (orders migrations 0003, 0004).
    customer_name: Mapped[str | None] = mapped_column(Text, nullable=True)
    customer_address: Mapped[str | None] = mapped_column(Text, nullable=True)
    customer_phone: Mapped[str | None] = mapped_column(Text, nullable=True)
    phone_digits: Mapped[str | None] = mapped_column(Text, nullable=True)
    customer_details_erased_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    courier_id: Mapped[int | None] = mapped_column(ForeignKey("orders.courier.id"), nullable=True)
    payment_method: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text, server_default="preparing")
    total: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    version: Mapped[int] = mapped_column(Integer, server_default="1")
    created_by: Mapped[str] = mapped_column(Text)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class OrderItem(Base):
    __tablename__ = "order_item"
    __table_args__ = {"schema": "orders"}
    __mapper_args__ = {"eager_defaults": True}   # server defaults come back through RETURNING

    order_id: Mapped[int] = mapped_column(ForeignKey("orders.customer_order.id"), primary_key=True)
    line_no: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("orders.product.id"))
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price: Mapped[Decimal] = mapped_column(Numeric(10, 2))


class StatusChange(Base):
    __tablename__ = "status_change"
    __table_args__ = {"schema": "orders"}
    __mapper_args__ = {"eager_defaults": True}   # server defaults come back through RETURNING

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.customer_order.id"))
    from_status: Mapped[str | None] = mapped_column(Text, nullable=True)
    to_status: Mapped[str] = mapped_column(Text)
    changed_by: Mapped[str] = mapped_column(Text)
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)


class Outbox(Base):
    __tablename__ = "outbox"
    __table_args__ = {"schema": "orders"}
    __mapper_args__ = {"eager_defaults": True}   # server defaults come back through RETURNING

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.customer_order.id"))
    kind: Mapped[str] = mapped_column(Text, server_default="delivery")   # "delivery" | "refund"
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    send_count: Mapped[int] = mapped_column(Integer, server_default="0")
    loaded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
