"""messages.priority: order and service mail are claimed before reviews and newsletters

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("priority", sa.SmallInteger(), nullable=False, server_default="0")
        )
        batch_op.drop_index("ix_messages_due")
        batch_op.create_index("ix_messages_due", ["status", "priority", "send_after"], unique=False)
    op.execute("UPDATE messages SET priority = 1 WHERE category = 'reviews'")
    op.execute("UPDATE messages SET priority = 2 WHERE category = 'newsletter'")


def downgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index("ix_messages_due")
        batch_op.create_index("ix_messages_due", ["status", "send_after"], unique=False)
        batch_op.drop_column("priority")
