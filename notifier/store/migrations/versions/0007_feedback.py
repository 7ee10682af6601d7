"""feedback: bounces, suppression lifts, the webhook outbox, messages by Message-ID

The new message status ``bounced`` needs no change of its own: the status
column is a plain VARCHAR(16) with no CHECK constraint (a non-native enum).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import notifier.store.types

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_messages_message_id", "messages", ["message_id"], unique=False)
    op.create_table(
        "suppression_lifts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("email_index", sa.String(length=64), nullable=False),
        sa.Column("previous_reason", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("at", notifier.store.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_suppression_lifts_email_index", "suppression_lifts", ["email_index"])
    op.create_table(
        "bounces",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("received_at", notifier.store.types.UTCDateTime(), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("message_id", sa.String(length=200), nullable=True),
        sa.Column("status_code", sa.String(length=16), nullable=True),
        sa.Column("detail", sa.String(length=500), nullable=True),
        sa.Column("raw", sa.LargeBinary(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_bounces_received_at", "bounces", ["received_at"])
    op.create_index("ix_bounces_message_id", "bounces", ["message_id"])
    op.create_table(
        "webhook_events",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("type", sa.String(length=40), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", notifier.store.types.UTCDateTime(), nullable=False),
        sa.Column("next_attempt_at", notifier.store.types.UTCDateTime(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("delivered_at", notifier.store.types.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_webhook_events_created_at", "webhook_events", ["created_at"])
    op.create_index("ix_webhook_events_due", "webhook_events", ["status", "next_attempt_at"])


def downgrade() -> None:
    op.drop_table("webhook_events")
    op.drop_table("bounces")
    op.drop_table("suppression_lifts")
    op.drop_index("ix_messages_message_id", table_name="messages")
