"""End to end on the embedded default: ingest -> Milvus Lite -> retrieval -> cited answers."""

from __future__ import annotations

import json
import shutil

import pytest

from pagelens.answer import extractive_answer
from pagelens.cli import main as cli
from pagelens.pipeline.stages import ingest
from pagelens.registry import Registry
from pagelens.retrieve import MODES, distinct_pages, retrieve
from pagelens.settings import Settings
from pagelens.store import VectorStore
from tests.clip_fixture import write_tiny_clip

pytestmark = pytest.mark.integration


@pytest.fixture
def inbox(tmp_path, sample_docs):
    folder = tmp_path / "inbox"
    shutil.copytree(sample_docs, folder)
    return folder


def test_ingest_report_rerun_skips_and_changed_file_replaces_its_chunks(inbox, settings) -> None:
    first = {r.doc: r for r in ingest(str(inbox), "acme", settings)}
    report = first["acme_annual_report.pdf"]
    assert (report.status, report.pages, report.ocr_pages, report.tables) == ("indexed", 4, 1, 1)
    assert report.figures >= 1 and first["warehouse_inspection_scan.png"].ocr_pages == 1
    store = VectorStore(settings, "acme")
    ids = sorted(store.chunk_ids_of())
    assert len(ids) == report.chunks + first["warehouse_inspection_scan.png"].chunks
    windows = store.window_ids_of("acme_annual_report.pdf")
    assert len(windows) >= 4  # MiniLM's page windows: at least one per page with text
    shown = store.client.query(store.windows_name(), filter='doc_id == "acme_annual_report.pdf"',
                               output_fields=["chunk_id", "page"])
    assert {r["chunk_id"] for r in shown} <= set(ids) and {r["page"] for r in shown} == {1, 2, 3, 4}

    again = ingest(str(inbox), "acme", settings)
    assert {r.status for r in again} == {"skipped"} and sorted(store.chunk_ids_of()) == ids

    (inbox / "warehouse_inspection_scan.png").unlink()
    shutil.copy(inbox / "acme_annual_report.pdf", inbox / "copy.pdf")
    (inbox / "acme_annual_report.pdf").write_bytes(b"%PDF-1.4\n%%EOF\n")  # replaced by a broken file
    final = {r.doc: r for r in ingest(str(inbox), "acme", settings)}
    assert final["acme_annual_report.pdf"].status == "quarantined"
    assert final["warehouse_inspection_scan.png"].status == "deleted"
    assert store.count("acme_annual_report.pdf") == 0 and store.count("warehouse_inspection_scan.png") == 0
    assert store.count("copy.pdf") == report.chunks
    assert not store.window_ids_of("acme_annual_report.pdf") and not store.window_ids_of("warehouse_inspection_scan.png")
    assert len(store.window_ids_of("copy.pdf")) == len(windows)
    rows = {r.doc_id: r for r in Registry(settings.registry_url).documents("acme")}
    assert rows["acme_annual_report.pdf"].reason.startswith("corrupt:") and rows["copy.pdf"].status == "indexed"


def test_every_mode_finds_the_page_and_answers_cite_it(inbox, settings, monkeypatch) -> None:
    ingest(str(inbox), "acme", settings)
    ingest(str(inbox), "other", settings)
    searched: list[str] = []  # which collections MiniLM's leg reads: page windows, unless a kind filter
    real = VectorStore.search
    monkeypatch.setattr(VectorStore, "search", lambda self, field, *a, **kw: searched.append(
        kw.get("collection") or self.target) or real(self, field, *a, **kw))
    retrieve("calibration interval of the robot arm", "acme", settings, mode="dense")
    retrieve("calibration interval of the robot arm", "acme", settings, mode="dense", filters={"kind": "text"})
    assert searched == ["pagelens_pw__acme", "pagelens__acme"]
    questions = {("acme_annual_report.pdf", 2): "Which region had the largest revenue share?",
                 ("acme_annual_report.pdf", 4): "What is the calibration interval of the robot arm?",
                 ("warehouse_inspection_scan.png", 1): "How many damaged pallets were found in warehouse B?"}
    for gold, question in questions.items():
        for mode in MODES:
            hits = retrieve(question, "acme", settings, mode=mode)
            assert gold in distinct_pages(hits)[:3], (mode, question)
            assert {h.doc_id for h in hits} and all(h.doc_id for h in hits)
    answer = extractive_answer("How many damaged pallets were found in warehouse B?",
                               retrieve("How many damaged pallets were found in warehouse B?", "acme", settings),
                               settings)
    assert "3 damaged pallets" in answer.text and "[Page 1]" in answer.text
    assert answer.citations[0].doc == "warehouse_inspection_scan.png" and len(answer.citations[0].bbox) == 4


def test_pii_is_redacted_before_it_is_stored(inbox, settings) -> None:
    ingest(str(inbox), "acme", settings)
    texts = " ".join(h.text for h in retrieve("investor relations contact", "acme", settings, mode="bm25"))
    assert "[EMAIL]" in texts and "investor.relations@" not in texts and "+31 40 123 4567" not in texts


def test_vision_branch_with_a_clip_model(inbox, tmp_path) -> None:
    settings = Settings(data_dir=tmp_path / "vision", clip_model=str(write_tiny_clip(tmp_path / "clip")))
    reports = ingest(str(inbox), "acme", settings)
    assert all(r.status == "indexed" for r in reports)
    store = VectorStore(settings, "acme")
    rows = store.client.query(store.alias, filter='namespace == "acme"', output_fields=["has_image", "model_version"])
    assert rows and all(r["has_image"] for r in rows) and "+clip:clip+" in rows[0]["model_version"]
    hits = retrieve("units shipped per quarter chart", "acme", settings, mode="hybrid")
    assert ("acme_annual_report.pdf", 3) in distinct_pages(hits)[:3]


@pytest.mark.corpus
def test_bad_files_are_quarantined_while_the_batch_lands(shared_eval, sample_docs, tmp_path, monkeypatch, capsys):
    batch = tmp_path / "batch"
    shutil.copytree(shared_eval / "bad", batch)
    for doc in sample_docs.iterdir():
        shutil.copy(doc, batch / doc.name)
    monkeypatch.setenv("PAGELENS_DATA_DIR", str(tmp_path / "data"))
    from pagelens.settings import get_settings

    get_settings.cache_clear()
    assert cli(["ingest", str(batch), "--namespace", "mixed", "--json"]) == 0
    get_settings.cache_clear()
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    status = {d["doc"]: (d["status"], d["reason"]) for d in report["documents"]}
    assert len(status) == 12
    readable = "malformed-from-issue-932.pdf"  # only its MediaBox corners are flipped, which readers normalise
    for name in (p.name for p in (shared_eval / "bad").iterdir() if p.name != readable):
        assert status[name][0] == "quarantined" and ":" in status[name][1], name
    assert status["acme_annual_report.pdf"][0] == status["warehouse_inspection_scan.png"][0] == "indexed"
    assert status[readable][0] == "indexed"
    assert report["quarantined"] == 9 and report["indexed"] == 3


def test_a_file_deleted_after_listing_is_reported_while_the_batch_lands(inbox, settings) -> None:
    from pagelens.pipeline.stages import index_batch, list_sources, plan_ingest

    plan = plan_ingest(list_sources([str(inbox)], "acme", settings), "acme", settings)
    (inbox / "warehouse_inspection_scan.png").unlink()
    reports = {r.doc: r for r in index_batch(plan.to_index, "acme", settings)}
    assert reports["warehouse_inspection_scan.png"].status == "deleted"
    assert reports["acme_annual_report.pdf"].status == "indexed"


def test_two_sources_listing_the_same_name_keep_the_first(inbox, tmp_path, settings) -> None:
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(inbox / "warehouse_inspection_scan.png", other / "acme_annual_report.pdf")
    reports = ingest([str(inbox), str(other)], "acme", settings)
    dup = [r for r in reports if r.reason.startswith("duplicate:")]
    assert [r.doc for r in dup] == ["acme_annual_report.pdf"] and str(inbox.resolve()) in dup[0].reason
    row = Registry(settings.registry_url).get("acme", "acme_annual_report.pdf")
    assert row.pages == 4 and row.location == str(inbox.resolve())
