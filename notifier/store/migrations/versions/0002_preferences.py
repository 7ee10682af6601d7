"""preferences, consent, suppressions, campaigns

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import notifier.store.types

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "campaign_runs",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("campaign_id", sa.String(length=100), nullable=False),
        sa.Column("scheduled_for", notifier.store.types.UTCDateTime(), nullable=False),
        sa.Column("send_after", notifier.store.types.UTCDateTime(), nullable=False),
        sa.Column("cursor", sa.String(length=100), nullable=True),
        sa.Column("targeted", sa.Integer(), nullable=False),
        sa.Column("finished_at", notifier.store.types.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("campaign_runs", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_campaign_runs_campaign_id"), ["campaign_id"], unique=False
        )

    op.create_table(
        "campaigns",
        sa.Column("id", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("subjects", sa.JSON(), nullable=False),
        sa.Column("content", sa.JSON(), nullable=False),
        sa.Column("send_at", notifier.store.types.UTCDateTime(), nullable=True),
        sa.Column("cron", sa.String(length=100), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("next_run_at", notifier.store.types.UTCDateTime(), nullable=True),
        sa.Column("created_at", notifier.store.types.UTCDateTime(), nullable=False),
        sa.Column("updated_at", notifier.store.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_campaigns_next_run_at"), ["next_run_at"], unique=False)

    op.create_table(
        "consents",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("customer_id", sa.String(length=100), nullable=False),
        sa.Column("category", sa.String(length=20), nullable=False),
        sa.Column("source", sa.String(length=30), nullable=False),
        sa.Column("ip", sa.LargeBinary(), nullable=True),
        sa.Column("text_version", sa.String(length=50), nullable=False),
        sa.Column("given_at", notifier.store.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("consents", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_consents_customer_id"), ["customer_id"], unique=False)

    op.create_table(
        "preference_changes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("customer_id", sa.String(length=100), nullable=False),
        sa.Column("category", sa.String(length=20), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(length=30), nullable=False),
        sa.Column("at", notifier.store.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("preference_changes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_preference_changes_customer_id"), ["customer_id"], unique=False
        )

    op.create_table(
        "preferences",
        sa.Column("customer_id", sa.String(length=100), nullable=False),
        sa.Column("category", sa.String(length=20), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(length=30), nullable=False),
        sa.Column("updated_at", notifier.store.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("customer_id", "category"),
    )
    with op.batch_alter_table("preferences", schema=None) as batch_op:
        batch_op.create_index(
            "ix_preferences_category", ["category", "enabled", "customer_id"], unique=False
        )

    op.create_table(
        "suppressions",
        sa.Column("email_index", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=20), nullable=False),
        sa.Column("detail", sa.String(length=500), nullable=True),
        sa.Column("created_at", notifier.store.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("email_index"),
    )
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("campaign_id", sa.String(length=100), nullable=True))
        batch_op.create_index("ix_messages_campaign", ["campaign_id", "status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index("ix_messages_campaign")
        batch_op.drop_column("campaign_id")

    op.drop_table("suppressions")
    with op.batch_alter_table("preferences", schema=None) as batch_op:
        batch_op.drop_index("ix_preferences_category")

    op.drop_table("preferences")
    with op.batch_alter_table("preference_changes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_preference_changes_customer_id"))

    op.drop_table("preference_changes")
    with op.batch_alter_table("consents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_consents_customer_id"))

    op.drop_table("consents")
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_campaigns_next_run_at"))

    op.drop_table("campaigns")
    with op.batch_alter_table("campaign_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_campaign_runs_campaign_id"))

    op.drop_table("campaign_runs")
