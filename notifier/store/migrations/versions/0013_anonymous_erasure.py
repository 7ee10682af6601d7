"""bounces.sealed_detail: a report's detail sealed like all personal data

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03

``bounces.detail`` was plaintext: a diagnostic has its addresses redacted
but may still name the recipient. It becomes ``sealed_detail``. A migration
holds no key, so the details stored before are dropped rather than sealed
(as 0012 did for suppressions): the report's kind, status code and sealed
raw text stay, and retention removes the rows within its period anyway.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("bounces") as batch:
        batch.drop_column("detail")
        batch.add_column(sa.Column("sealed_detail", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("bounces") as batch:
        batch.drop_column("sealed_detail")
        batch.add_column(sa.Column("detail", sa.String(length=500), nullable=True))
