"""The document ledger on SQLite and PostgreSQL: the migrations build exactly the models, every call round-trips."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine

from pagelens.cli import main as cli
from pagelens.errors import RegistrySchemaError
from pagelens.migrations import VERSION_TABLE, current_revision, head_revision
from pagelens.records import DocumentReport
from pagelens.registry import Base, Registry
from pagelens.settings import Settings, get_settings

pytestmark = pytest.mark.integration
NS = "finance"


def _report(doc: str, status: str = "indexed", etag: str = "e1", sha: str = "a" * 64, **fields: object) -> DocumentReport:
    return DocumentReport(doc=doc, status=status, source_uri=f"s3://bucket/{doc}", location="s3://bucket/",
                          etag=etag, content_sha256=sha, **fields)


def test_migrations_build_exactly_the_models(registry_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    registry = Registry(registry_url)  # SQLite upgrades itself; the PostgreSQL fixture ran `db upgrade`
    assert current_revision(registry.engine) == head_revision()
    with registry.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True, "version_table": VERSION_TABLE})
        diffs = compare_metadata(context, Base.metadata)
    assert diffs == []


def test_record_then_skip_checks_and_deletion(registry_url: str) -> None:
    registry = Registry(registry_url)
    registry.record(NS, _report("q3.pdf", pages=4, chunks=9), "minilm@1")
    registry.record(NS, _report("bad.pdf", status="quarantined", reason="corrupt: no xref"), "minilm@1")
    registry.record("other", _report("q3.pdf"), "minilm@1")

    assert registry.is_current(NS, "q3.pdf", "a" * 64, "minilm@1")
    assert not registry.is_current(NS, "q3.pdf", "b" * 64, "minilm@1")  # new bytes
    assert not registry.is_current(NS, "q3.pdf", "a" * 64, "minilm@2")  # new models
    assert not registry.is_current(NS, "bad.pdf", "a" * 64, "minilm@1")  # quarantined files are retried
    assert registry.is_unchanged(NS, "q3.pdf", "e1", "minilm@1")
    assert not registry.is_unchanged(NS, "q3.pdf", "e2", "minilm@1") and not registry.is_unchanged(NS, "q3.pdf", "", "minilm@1")

    registry.record(NS, _report("q3.pdf", etag="e2", sha="b" * 64, pages=5, chunks=11), "minilm@1")  # a new version
    row = registry.get(NS, "q3.pdf")
    assert (row.etag, row.content_sha256, row.pages, row.chunks, row.location) == ("e2", "b" * 64, 5, 11, "s3://bucket/")
    assert [r.doc_id for r in registry.documents(NS)] == ["bad.pdf", "q3.pdf"]
    assert registry.get(NS, "bad.pdf").reason == "corrupt: no xref"

    registry.mark_deleted(NS, ["q3.pdf", "never-seen.pdf"])
    assert registry.get(NS, "q3.pdf").status == "deleted" and registry.get(NS, "q3.pdf").chunks == 0
    assert not registry.is_unchanged(NS, "q3.pdf", "e2", "minilm@1")
    assert [r.doc_id for r in registry.documents(NS, status="deleted")] == ["q3.pdf"]
    assert registry.get("other", "q3.pdf").status == "indexed"  # namespaces are separate ledgers


def test_cursor_per_namespace_and_location(registry_url: str) -> None:
    registry = Registry(registry_url)
    site = "sharepoint://contoso/Shared Documents"
    assert registry.cursor(NS, site) == ""
    registry.save_cursor(NS, site, "delta-1")
    registry.save_cursor(NS, site, "delta-2")  # the latest one wins, no second row
    registry.save_cursor("other", site, "delta-x")
    assert registry.cursor(NS, site) == "delta-2" and registry.cursor("other", site) == "delta-x"
    assert registry.cursor(NS, "s3://b/") == ""


def test_postgresql_registry_on_an_old_schema_says_to_run_db_upgrade(postgres, monkeypatch, capsys) -> None:
    url = postgres.create_database()
    with pytest.raises(RegistrySchemaError, match="run `pagelens db upgrade`"):
        Registry(url)
    monkeypatch.setenv("PAGELENS_REGISTRY_URL", url)
    get_settings.cache_clear()
    try:
        assert cli(["db", "upgrade"]) == 0 and cli(["db", "upgrade"]) == 0  # the second run has nothing to do
    finally:
        get_settings.cache_clear()
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith(f"schema (empty) -> {head_revision()}") and out[1].endswith(f"-> {head_revision()}")
    Registry(url).save_cursor(NS, "s3://b/", "c")
    assert current_revision(create_engine(url)) == head_revision()


def test_an_ingest_run_records_its_documents_in_postgresql(postgres_url, sample_docs, tmp_path) -> None:
    from pagelens.pipeline.stages import ingest

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "scan.png").write_bytes((sample_docs / "warehouse_inspection_scan.png").read_bytes())
    settings = Settings(data_dir=tmp_path / "data", registry_url=postgres_url)
    assert [r.status for r in ingest(str(inbox), NS, settings)] == ["indexed"]
    assert [r.status for r in ingest(str(inbox), NS, settings)] == ["skipped"]  # the etag in PostgreSQL says so
    (row,) = Registry(postgres_url).documents(NS)
    assert (row.doc_id, row.status, row.pages, row.location) == ("scan.png", "indexed", 1, str(inbox))


def test_seen_times_and_removal_round_trip_for_retention(registry_url: str) -> None:
    import datetime as dt

    from pagelens.pipeline.retention import expired_documents, timestamp_of
    from pagelens.settings import Retention

    registry = Registry(registry_url)
    for doc in ("old.pdf", "fresh.pdf", "gone.pdf"):
        registry.record(NS, _report(doc), "minilm@1")
    registry.record("other", _report("old.pdf"), "minilm@1")
    year_ago = dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    registry.mark_seen(NS, {"old.pdf": year_ago.timestamp(), "fresh.pdf": None}, at=year_ago)
    registry.mark_seen(NS, {"fresh.pdf": None}, at=year_ago + dt.timedelta(days=300))
    old, fresh = registry.get(NS, "old.pdf"), registry.get(NS, "fresh.pdf")
    assert timestamp_of(old.source_modified_at) == year_ago.timestamp() == timestamp_of(old.last_seen_at)
    assert fresh.source_modified_at is None and timestamp_of(fresh.last_seen_at) == year_ago.timestamp() + 300 * 86_400

    now = (year_ago + dt.timedelta(days=310)).timestamp()
    rows = registry.documents(NS)
    assert [r.doc for r in expired_documents(rows, Retention(by="modified", days=30), now)] == ["old.pdf"]
    # gone.pdf was last seen when it was recorded (today), so only old.pdf is unseen for 30 days
    assert [r.doc for r in expired_documents(rows, Retention(by="last_seen", days=30), now)] == ["old.pdf"]
    assert expired_documents(rows, None, now) == []

    registry.remove(NS, ["old.pdf", "never-seen.pdf"])
    assert [r.doc_id for r in registry.documents(NS)] == ["fresh.pdf", "gone.pdf"]
    assert registry.get("other", "old.pdf") is not None  # another namespace's row of that name stays
