"""Ingestion spans: one trace per run with a span per stage, pages parsed in worker processes nested inside it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pagelens.settings import Settings
from pagelens.tracing import configure_tracing, context_carrier, reset_tracing, span, tracing_enabled


@pytest.fixture
def spans() -> Iterator[object]:
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    configure_tracing(Settings(), exporter=exporter)
    yield exporter
    reset_tracing()


def test_tracing_off_by_default_exports_nothing_and_costs_no_setup() -> None:
    configure_tracing(Settings())
    assert not tracing_enabled() and context_carrier() == {}
    with span("fetch_document", doc="a.pdf") as s:
        s.set_attribute("ignored", 1)  # a no-op span still takes the calls stage code makes


def test_configure_is_idempotent_and_an_exporter_passed_in_stays(spans) -> None:
    configure_tracing(Settings(otel_exporter="console"))  # e.g. a task calling it again: the test exporter stays
    with span("embed_chunk", doc="a.pdf", path=None):
        pass
    assert [(s.name, dict(s.attributes)) for s in spans.get_finished_spans()] == [("embed_chunk", {"doc": "a.pdf"})]


@pytest.mark.integration
def test_ingest_emits_a_span_per_stage_nested_in_one_trace(spans, sample_docs, tmp_path) -> None:
    from pagelens.pipeline.stages import ingest

    settings = Settings(data_dir=tmp_path / "data", parse_workers=2)
    with span("ingest_run", namespace="ns"):
        reports = ingest(str(sample_docs), "ns", settings)
    assert {r.status for r in reports} == {"indexed"}
    finished = spans.get_finished_spans()
    by_id = {s.context.span_id: s for s in finished}
    (root,) = [s for s in finished if s.name == "ingest_run"]
    assert {s.context.trace_id for s in finished} == {root.context.trace_id}  # worker spans included
    names = {s.name for s in finished}
    assert {"fetch_document", "preprocess_page", "embed_chunk", "upsert_vector"} <= names

    pages = {(s.attributes["doc"], s.attributes["page"]): s for s in finished if s.name == "preprocess_page"}
    assert set(pages) == {("acme_annual_report.pdf", n) for n in (1, 2, 3, 4)} | {("warehouse_inspection_scan.png", 1)}
    assert pages[("acme_annual_report.pdf", 4)].attributes["ocr"] is True  # the scanned page
    for page in pages.values():
        assert page.parent is not None and page.parent.is_remote  # the parent context came by traceparent
        assert _ancestors(page, by_id)[-1] is root
    for ocr in (s for s in finished if s.name == "ocr"):
        assert by_id[ocr.parent.span_id].name == "preprocess_page"  # OCR threads stay under their page
    for stage in ("fetch_document", "embed_chunk", "upsert_vector"):
        docs = {s.attributes["doc"] for s in finished if s.name == stage}
        assert docs == {"acme_annual_report.pdf", "warehouse_inspection_scan.png"}, stage
        assert all(_ancestors(s, by_id)[-1] is root for s in finished if s.name == stage)
        assert all("index_batch" in {a.name for a in _ancestors(s, by_id)} for s in finished if s.name == stage)


def _ancestors(span_: object, by_id: dict[int, object]) -> list[object]:
    chain = []
    while span_.parent is not None:
        span_ = by_id[span_.parent.span_id]
        chain.append(span_)
    return chain
