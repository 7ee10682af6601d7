"""orders: each order's latest known snapshot, sealed

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import notifier.store.types

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "orders",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("customer_id", sa.String(length=100), nullable=False),
        sa.Column("order_id", sa.String(length=100), nullable=False),
        sa.Column("snapshot", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", notifier.store.types.UTCDateTime(), nullable=False),
        sa.Column("updated_at", notifier.store.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_orders_customer_order", "orders", ["customer_id", "order_id"], unique=True)
    op.create_index("ix_orders_updated_at", "orders", ["updated_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_orders_updated_at", table_name="orders")
    op.drop_index("ix_orders_customer_order", table_name="orders")
    op.drop_table("orders")
