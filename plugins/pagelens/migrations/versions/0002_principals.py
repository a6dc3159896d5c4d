"""Document-level permissions: who may read each document, and the principals of each API token.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("documents") as batch:
        batch.add_column(sa.Column("principals", sa.Text(), nullable=False, server_default='["*"]'))
    with op.batch_alter_table("api_tokens") as batch:
        batch.add_column(sa.Column("principals", sa.Text(), nullable=False, server_default="[]"))


def downgrade() -> None:
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_column("principals")
    with op.batch_alter_table("documents") as batch:
        batch.drop_column("principals")
