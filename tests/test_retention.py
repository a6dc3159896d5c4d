"""TTL pruning on the embedded default: a namespace's retention removes expired documents from Milvus Lite and
the registry in the ingest run, after a dry run that lists exactly them; everything else stays."""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from pathlib import Path

import pytest
from sqlalchemy import update

from pagelens.cli import main as cli
from pagelens.pipeline.retention import prune_plan
from pagelens.pipeline.run import finish_run, plan_run
from pagelens.pipeline.stages import ingest, plan_ingest
from pagelens.records import DocumentReport
from pagelens.registry import DocumentRecord, Registry
from pagelens.settings import NamespaceConfig, Retention, Settings, get_settings
from pagelens.sources import Listing
from pagelens.store import VectorStore
from tests.tiny_pdf import tiny_pdf

pytestmark = pytest.mark.integration
NS = "ops"
DAY = 86_400


def _write(folder: Path, name: str, text: str, age_days: float = 0) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(tiny_pdf(text))
    when = time.time() - age_days * DAY
    os.utime(path, (when, when))


def _with_retention(settings: Settings, folders: list[Path], retention: Retention | None) -> Settings:
    return settings.model_copy(update={"namespaces": {
        NS: NamespaceConfig(sources=[str(f) for f in folders], retention=retention)}})


def _rows(settings: Settings) -> dict[str, DocumentRecord]:
    return {r.doc_id: r for r in Registry(settings.registry_url).documents(NS)}


def _age_last_seen(settings: Settings, days: float) -> None:
    """As if the last run that listed every document was `days` ago."""
    when = dt.datetime.now(dt.UTC) - dt.timedelta(days=days)
    with Registry(settings.registry_url).engine.begin() as connection:
        connection.execute(update(DocumentRecord).where(DocumentRecord.namespace == NS).values(last_seen_at=when))


def test_retention_by_modification_time(tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "docs"
    _write(folder, "old.pdf", "The boiler was serviced in March 2019.", age_days=400)
    _write(folder, "recent.pdf", "The chiller was replaced in May.", age_days=10)
    _write(folder, "new.pdf", "The roof was inspected today.")
    off = _with_retention(settings, [folder], None)
    assert [r.status for r in ingest(str(folder), NS, off)] == ["indexed"] * 3
    store = VectorStore(settings, NS)
    chunks = {doc: store.count(doc) for doc in ("old.pdf", "recent.pdf", "new.pdf")}
    assert all(chunks.values())
    # Retention off prunes nothing, however old the files are.
    assert {r.status for r in ingest(str(folder), NS, off)} == {"skipped"} and prune_plan(NS, off) == []

    on = _with_retention(settings, [folder], Retention(by="modified", days=30))
    assert [r.doc for r in prune_plan(NS, on)] == ["old.pdf"]
    monkeypatch.setenv("PAGELENS_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("PAGELENS_NAMESPACES", json.dumps({NS: {"sources": [str(folder)],
                                                                "retention": {"by": "modified", "days": 30}}}))
    get_settings.cache_clear()
    try:
        assert cli(["prune", "--namespace", NS, "--dry-run", "--json"]) == 0
    finally:
        get_settings.cache_clear()
    dry = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert dry["dry_run"] and [d["doc"] for d in dry["documents"]] == ["old.pdf"]
    assert dry["documents"][0]["reason"].startswith("expired: modified ")
    assert {doc: store.count(doc) for doc in chunks} == chunks and set(_rows(settings)) == set(chunks)  # nothing gone

    run = {r.doc: r for r in ingest(str(folder), NS, on)}
    assert run["old.pdf"].status == "deleted" and run["old.pdf"].reason.startswith("expired: modified")
    assert (run["recent.pdf"].status, run["new.pdf"].status) == ("skipped", "skipped")
    assert store.count("old.pdf") == 0 and store.count("recent.pdf") == chunks["recent.pdf"]
    assert store.count("new.pdf") == chunks["new.pdf"]
    assert set(_rows(settings)) == {"recent.pdf", "new.pdf"}  # its row is gone, not a tombstone

    # Still in the folder, still old: the next run does not index it again; touched, it is new content.
    again = {r.doc: r for r in ingest(str(folder), NS, on)}
    assert again["old.pdf"].status == "skipped" and again["old.pdf"].reason.startswith("expired:")
    assert store.count("old.pdf") == 0 and "old.pdf" not in _rows(settings)
    os.utime(folder / "old.pdf")
    assert {r.doc: r.status for r in ingest(str(folder), NS, on)}["old.pdf"] == "indexed"
    assert store.count("old.pdf") == chunks["old.pdf"]


def test_retention_by_last_seen_through_the_dag_steps(tmp_path: Path, settings: Settings) -> None:
    """plan_run / finish_run are what `pagelens_ingest` runs; the plan crosses XCom as JSON."""
    kept, dropped = tmp_path / "kept", tmp_path / "dropped"  # `dropped`: a source taken out of the namespace
    _write(kept, "a.pdf", "The boiler was serviced in March.", age_days=900)
    _write(dropped, "b.pdf", "The chiller was replaced in May.")
    both = _with_retention(settings, [kept, dropped], Retention(by="last_seen", days=7))
    for folder in (kept, dropped):
        ingest(str(folder), NS, both)
    run = plan_run({NS: [str(kept), str(dropped)]}, both, batch_size=8)
    finish_run([], json.loads(json.dumps(run.namespaces_dict())), both)
    store = VectorStore(settings, NS)
    before = {"a.pdf": store.count("a.pdf"), "b.pdf": store.count("b.pdf")}
    assert all(before.values()) and set(_rows(settings)) == {"a.pdf", "b.pdf"}  # seen just now: nothing expires

    _age_last_seen(settings, days=10)
    assert [r.doc for r in prune_plan(NS, both)] == ["a.pdf", "b.pdf"]  # the registry alone: both unseen for 10 days
    narrowed = _with_retention(settings, [kept], Retention(by="last_seen", days=7))
    run = plan_run({NS: [str(kept)]}, narrowed, batch_size=8)
    plan = json.loads(json.dumps(run.namespaces_dict()))
    assert [r["doc"] for r in plan[NS]["expired"]] == ["b.pdf"]  # a.pdf is listed again: seen, not pruned
    assert store.count("b.pdf") == before["b.pdf"]  # planning prunes nothing
    summary = finish_run([], plan, narrowed)
    assert summary["namespaces"][NS]["deleted"] == 1
    assert store.count("b.pdf") == 0 and store.count("a.pdf") == before["a.pdf"]
    rows = _rows(settings)
    assert set(rows) == {"a.pdf"}
    seen_at = rows["a.pdf"].last_seen_at.replace(tzinfo=dt.UTC)
    assert dt.datetime.now(dt.UTC) - seen_at < dt.timedelta(minutes=5)  # this run listed it
    assert prune_plan(NS, narrowed) == []


def test_a_delta_listing_sees_the_documents_it_does_not_mention(settings: Settings) -> None:
    """A SharePoint delta lists changes only; its other live documents are still there, not unseen."""
    site = "sharepoint://contoso/Shared Documents"
    registry = Registry(settings.registry_url)
    for doc in ("a.docx", "b.docx"):
        registry.record(NS, DocumentReport(doc=doc, status="indexed", source_uri=f"{site}/{doc}", location=site,
                                           etag="c1", content_sha256="a" * 64), "minilm@1")
    registry.record(NS, DocumentReport(doc="c.pdf", status="indexed", source_uri="s3://b/c.pdf", location="s3://b",
                                       etag="e1", content_sha256="b" * 64), "minilm@1")
    _age_last_seen(settings, days=30)
    configured = _with_retention(settings, [], Retention(by="last_seen", days=7))
    plan = plan_ingest([Listing(site, documents=[], deleted=[f"{site}/b.docx"], complete=False)], NS, configured)
    assert plan.seen == {"a.docx": None} and [r.doc for r in plan.expired] == ["c.pdf"]


def test_sharepoint_modification_time_comes_from_graph() -> None:
    from pagelens.sources.sharepoint import _modified

    assert _modified({"lastModifiedDateTime": "2025-03-01T10:00:00Z"}) == dt.datetime(
        2025, 3, 1, 10, tzinfo=dt.UTC).timestamp()
    assert _modified({}) == 0.0 and _modified({"lastModifiedDateTime": "yesterday"}) == 0.0  # unknown: kept


def test_a_rebuild_leaves_out_what_the_retention_by_modification_time_expires(tmp_path: Path, settings: Settings) -> None:
    from pagelens.reindex import prepare_rebuild

    folder = tmp_path / "docs"
    _write(folder, "old.pdf", "The boiler was serviced in March 2019.", age_days=400)
    _write(folder, "new.pdf", "The roof was inspected today.")
    _, manifests = prepare_rebuild(NS, _with_retention(settings, [folder], Retention(by="modified", days=30)), 8)
    assert [d["doc_id"] for m in manifests for d in m["documents"]] == ["new.pdf"]
    _, manifests = prepare_rebuild(NS, _with_retention(settings, [folder], Retention(by="last_seen", days=30)), 8)
    assert sorted(d["doc_id"] for m in manifests for d in m["documents"]) == ["new.pdf", "old.pdf"]
