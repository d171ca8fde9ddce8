"""orders schema: users, products, couriers, orders with items and status history, idempotency keys,
the transition table, and the warehouse outbox

Revision ID: 0001_orders_live_orders
Revises:
Create Date: 2026-11-22
"""
from alembic import op

revision = "0001_orders_live_orders"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    CREATE TABLE orders.app_user (
        id             serial PRIMARY KEY,
        username       text NOT NULL,
        password_hash  text NOT NULL,
        role           text NOT NULL CHECK (role IN ('admin', 'staff')),
        branch         text,
        branch_key     text,
        active         boolean NOT NULL DEFAULT true,
        created_at     timestamptz NOT NULL DEFAULT now(),
        updated_at     timestamptz NOT NULL DEFAULT now()
    );
    CREATE UNIQUE INDEX app_user_username_unique ON orders.app_user (lower(username));

    CREATE TABLE orders.product (
        id          serial PRIMARY KEY,
        name        text NOT NULL,
        size        text,
        flavour     text,
        price       numeric(10, 2) NOT NULL CHECK (price >= 0),
        active      boolean NOT NULL DEFAULT true,
        created_at  timestamptz NOT NULL DEFAULT now(),
        updated_at  timestamptz NOT NULL DEFAULT now()
    );
    CREATE UNIQUE INDEX product_name_size_flavour_unique
        ON orders.product (lower(name), lower(coalesce(size, '')), lower(coalesce(flavour, '')));

    CREATE TABLE orders.courier (
        id          serial PRIMARY KEY,
        name        text NOT NULL,
        phone       text NOT NULL,
        branch      text NOT NULL,
        branch_key  text NOT NULL,
        active      boolean NOT NULL DEFAULT true,
        created_at  timestamptz NOT NULL DEFAULT now(),
        updated_at  timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX courier_branch ON orders.courier (branch_key);

    -- The allowed status changes. The history references it, so not even a buggy writer can record an
    -- illegal change; services/orders/workflow.py holds the same table and a test keeps them equal.
    CREATE TABLE orders.status_transition (
        from_status  text NOT NULL,
        to_status    text NOT NULL,
        PRIMARY KEY (from_status, to_status)
    );
    INSERT INTO orders.status_transition VALUES
        ('preparing', 'out_for_delivery'), ('out_for_delivery', 'delivered'),
        ('preparing', 'cancelled'), ('out_for_delivery', 'cancelled');

    CREATE TABLE orders.customer_order (
        id                bigserial PRIMARY KEY,
        branch            text NOT NULL,
        branch_key        text NOT NULL,
        customer_name     text NOT NULL,
        customer_address  text NOT NULL,
        customer_phone    text NOT NULL,
        -- digits only, so '07700 900123' and '07700900123' find the same customer
        phone_digits      text NOT NULL,
        courier_id        integer REFERENCES orders.courier(id),
        payment_method    text NOT NULL CHECK (payment_method IN ('CASH', 'CARD')),
        status            text NOT NULL DEFAULT 'preparing'
                          CHECK (status IN ('preparing', 'out_for_delivery', 'delivered', 'cancelled')),
        total             numeric(12, 2) NOT NULL CHECK (total >= 0),
        -- bumped by every change; the ETag is derived from it
        version           integer NOT NULL DEFAULT 1,
        created_by        text NOT NULL,
        created_at        timestamptz NOT NULL DEFAULT now(),
        updated_at        timestamptz NOT NULL DEFAULT now(),
        delivered_at      timestamptz
    );
    CREATE INDEX customer_order_branch_created ON orders.customer_order (branch_key, created_at);
    CREATE INDEX customer_order_status ON orders.customer_order (status);
    CREATE INDEX customer_order_courier ON orders.customer_order (courier_id);
    CREATE INDEX customer_order_phone ON orders.customer_order (phone_digits);
    CREATE INDEX customer_order_created ON orders.customer_order (created_at);

    CREATE TABLE orders.order_item (
        order_id    bigint NOT NULL REFERENCES orders.customer_order(id) ON DELETE CASCADE,
        line_no     smallint NOT NULL,
        product_id  integer NOT NULL REFERENCES orders.product(id),
        quantity    integer NOT NULL CHECK (quantity BETWEEN 1 AND 50),
        -- captured when ordered: a later price change does not alter the order
        unit_price  numeric(10, 2) NOT NULL CHECK (unit_price >= 0),
        PRIMARY KEY (order_id, line_no)
    );
    CREATE INDEX order_item_product ON orders.order_item (product_id);

    CREATE TABLE orders.status_change (
        id           bigserial PRIMARY KEY,
        order_id     bigint NOT NULL REFERENCES orders.customer_order(id) ON DELETE CASCADE,
        from_status  text,
        to_status    text NOT NULL,
        changed_by   text NOT NULL,
        changed_at   timestamptz NOT NULL DEFAULT now(),
        FOREIGN KEY (from_status, to_status) REFERENCES orders.status_transition (from_status, to_status),
        CHECK (from_status IS NOT NULL OR to_status = 'preparing')
    );
    CREATE INDEX status_change_order ON orders.status_change (order_id, id);

    -- Idempotency-Key of POST /v1/orders, per caller: a retried create finds the first order here.
    CREATE TABLE orders.idempotency_key (
        principal     text NOT NULL,
        key           text NOT NULL,
        request_hash  text NOT NULL,
        order_id      bigint NOT NULL REFERENCES orders.customer_order(id) ON DELETE CASCADE,
        created_at    timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (principal, key)
    );

    -- Delivered orders waiting for (or already loaded into) the warehouse; see services/common/live_orders.py.
    CREATE TABLE orders.outbox (
        id          bigserial PRIMARY KEY,
        order_id    bigint NOT NULL UNIQUE REFERENCES orders.customer_order(id),
        payload     jsonb NOT NULL,
        created_at  timestamptz NOT NULL DEFAULT now(),
        sent_at     timestamptz,
        send_count  integer NOT NULL DEFAULT 0,
        loaded_at   timestamptz
    );
    CREATE INDEX outbox_pending ON orders.outbox (created_at) WHERE loaded_at IS NULL;
    """)


def downgrade() -> None:
    op.execute("""
    DROP TABLE orders.outbox;
    DROP TABLE orders.idempotency_key;
    DROP TABLE orders.status_change;
    DROP TABLE orders.order_item;
    DROP TABLE orders.customer_order;
    DROP TABLE orders.status_transition;
    DROP TABLE orders.courier;
    DROP TABLE orders.product;
    DROP TABLE orders.app_user;
    """)
