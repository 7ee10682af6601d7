"""customers.token_generation: a random value each link token names; sealed suppression details

Revision ID: 0012
Revises: 0010
Create Date: 2026-12-03

A customer id erased and used again gets a new generation, so links mailed
to the erased person stop working. Customers from before this revision keep
NULL: their links were issued without a generation and keep working; every
customer inserted from now on draws one (``models.new_generation``).

``suppressions.detail`` was plaintext (a complaint's free text may hold a
name and an address); it becomes ``sealed_detail``, sealed like all
personal data. A migration holds no key, so the details stored before are
dropped rather than sealed: the suppression and its reason stay.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("customers") as batch:
        batch.add_column(sa.Column("token_generation", sa.String(length=32), nullable=True))
    with op.batch_alter_table("suppressions") as batch:
        batch.drop_column("detail")
        batch.add_column(sa.Column("sealed_detail", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("suppressions") as batch:
        batch.drop_column("sealed_detail")
        batch.add_column(sa.Column("detail", sa.String(length=500), nullable=True))
    with op.batch_alter_table("customers") as batch:
        batch.drop_column("token_generation")
