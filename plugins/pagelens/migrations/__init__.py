"""Registry schema migrations: Alembic configured in code (no alembic.ini), so they run from an installed package.

How the schema is created and kept current:

- Embedded SQLite (the default on one machine): the registry upgrades itself to the newest revision on first
  use, under a file lock so parallel local tasks do not race. Nothing to run by hand.
- PostgreSQL (production) and any other server database: `pagelens db upgrade` is an explicit deploy step
  (a release job run once before the new workers start), and a Registry on an out-of-date schema refuses to
  work with a message saying to run it. Not an upgrade under an advisory lock at start-up, because
  (1) DDL needs rights the runtime role of Airflow workers, encoder pods and API replicas should not hold;
  (2) dozens of those processes start together: each would wait on the lock, and a slow or failing migration
  would surface as random task failures and time-outs instead of one failed step someone watches;
  (3) altering a shared production schema is a moment for a backup and a review, not a side effect.
  `pagelens db upgrade` itself takes a transaction-scoped advisory lock: two concurrent deploys cannot both
  run a migration. A schema newer than this code (a rolling deploy) is accepted with a warning: revisions are
  written to stay readable by the previous release.

The version table is `pagelens_alembic_version`, not Alembic's default `alembic_version`, so the registry
may share a database with Airflow's metadata, which keeps its own.
A new revision: change the models, then `python -c "from pagelens.migrations import new_revision as n;
n('add x')"` writes `versions/<rev>_add_x.py` from the difference to head; review it before committing.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import create_engine, inspect, text

from pagelens.errors import RegistrySchemaError

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy.engine import Connection, Engine

log = logging.getLogger(__name__)
VERSION_TABLE = "pagelens_alembic_version"
SCRIPTS = Path(__file__).resolve().parent
_ADVISORY_LOCK = int.from_bytes(b"pagelens", "big")  # any fixed bigint; only `db upgrade` takes it


def alembic_config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(SCRIPTS))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def _revisions() -> set[str]:
    from alembic.script import ScriptDirectory

    return {s.revision for s in ScriptDirectory.from_config(alembic_config()).walk_revisions()}


def _current(connection: Connection) -> str | None:
    from alembic.migration import MigrationContext

    return MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE}).get_current_revision()


def current_revision(engine: Engine) -> str | None:
    """The schema revision the database is at; None when it has never been migrated."""
    with engine.connect() as connection:
        return _current(connection)


def upgrade(engine: Engine) -> tuple[str | None, str | None]:
    """Migrate the registry database to head (what `pagelens db upgrade` runs); returns (from, to)."""
    from alembic import command

    with _sqlite_file_lock(engine), engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_LOCK})
        before = _current(connection)
        if before is None and inspect(connection).has_table("documents"):
            raise RegistrySchemaError(f"the registry at {_safe_url(engine)} predates schema migrations: move it "
                                      "aside; the next ingest records every document again")
        command.upgrade(alembic_config(connection), "head")
    return before, head_revision()


def ensure_schema(engine: Engine) -> None:
    """Embedded SQLite: upgrade on first use. Server databases: refuse an old schema (see the module docstring)."""
    current, head = current_revision(engine), head_revision()
    if current == head:
        return
    if engine.dialect.name == "sqlite":
        upgrade(engine)
    elif current is None or current in _revisions():
        raise RegistrySchemaError(
            f"the registry database {_safe_url(engine)} is at schema revision {current or '(none: empty)'}, this "
            f"pagelens needs {head}: run `pagelens db upgrade` with the same PAGELENS_REGISTRY_URL")
    else:
        log.warning("Registry schema revision %s is newer than this pagelens (head %s): upgrade pagelens", current, head)


@contextlib.contextmanager
def _sqlite_file_lock(engine: Engine) -> Iterator[None]:
    """Serialise first-use upgrades of one SQLite file across processes (SQLite runs DDL outside transactions)."""
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:":
        yield
        return
    with open(f"{database}.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _safe_url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


def new_revision(message: str, rev_id: str | None = None) -> Any:
    """Write the next revision from the difference between the models and head (a developer tool)."""
    from alembic import command

    with tempfile.TemporaryDirectory() as tmp:
        engine = create_engine(f"sqlite:///{tmp}/head.db")
        upgrade(engine)
        with engine.begin() as connection:
            return command.revision(alembic_config(connection), message=message, autogenerate=True, rev_id=rev_id)
