"""newsletters: campaign audiences and stand-in locale, customer tags

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-10
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("campaigns") as table:
        table.add_column(sa.Column("audience", sa.JSON(), nullable=True))
        table.add_column(sa.Column("fallback_locale", sa.String(35), nullable=True))
    with op.batch_alter_table("customers") as table:
        # "|vip|b2b|": one string, so an audience's tag test stays a LIKE inside the
        # fan-out's single INSERT ... SELECT on SQLite and PostgreSQL alike.
        table.add_column(sa.Column("tags", sa.String(1100), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("customers") as table:
        table.drop_column("tags")
    with op.batch_alter_table("campaigns") as table:
        table.drop_column("fallback_locale")
        table.drop_column("audience")
