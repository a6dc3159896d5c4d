"""Retention: each document's source modification time and when an ingest run last listed it.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable: rows written before (and by the previous release during a rolling deploy) have neither; retention
    # counts their last-seen time from updated_at and keeps them by modification time until a run lists them.
    with op.batch_alter_table("documents") as batch:
        batch.add_column(sa.Column("source_modified_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("documents") as batch:
        batch.drop_column("last_seen_at")
        batch.drop_column("source_modified_at")
