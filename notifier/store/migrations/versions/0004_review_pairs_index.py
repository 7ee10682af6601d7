"""messages: a partial index that answers the review cap's lookup by itself

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_IS_REVIEW_PAIR = sa.text("kind = 'review_products'")


def upgrade() -> None:
    op.create_index(
        "ix_messages_review_pairs",
        "messages",
        ["customer_id", "send_after", "status", "kind"],
        unique=False,
        sqlite_where=_IS_REVIEW_PAIR,
        postgresql_where=_IS_REVIEW_PAIR,
    )


def downgrade() -> None:
    op.drop_index("ix_messages_review_pairs", table_name="messages")
