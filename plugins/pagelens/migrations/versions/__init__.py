"""Registry schema revisions, oldest first (alembic reads them by their `revision`/`down_revision`)."""
