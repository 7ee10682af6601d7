"""readiness: the one-row table that /readyz writes to

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import notifier.store.types

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "readiness",
        sa.Column("id", sa.SmallInteger(), nullable=False),
        sa.Column("checked_at", notifier.store.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    # The row exists from the start, so that probes only ever UPDATE it and two processes
    # probing for the first time cannot race to insert it.
    op.execute("INSERT INTO readiness (id, checked_at) VALUES (1, CURRENT_TIMESTAMP)")


def downgrade() -> None:
    op.drop_table("readiness")
