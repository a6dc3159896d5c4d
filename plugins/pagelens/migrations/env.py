"""Alembic environment: runs the registry's migrations on the connection `pagelens.migrations` hands in."""

from __future__ import annotations

from alembic import context

from pagelens.migrations import VERSION_TABLE
from pagelens.registry import Base

context.configure(
    connection=context.config.attributes["connection"],
    target_metadata=Base.metadata,
    version_table=VERSION_TABLE,
    render_as_batch=True,  # SQLite alters tables by copying them; batch mode does that for us
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
