"""Parsing in worker processes: page ranges, order, cache, and a worker that dies."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from pagelens.parsing.pdf import extract_pages
from pagelens.parsing.pool import ParsePool, page_ranges
from pagelens.settings import Settings
from pagelens.sources import SourceDocument
from pagelens.sources.local import LocalSource

pytestmark = pytest.mark.integration


def test_page_ranges_cover_every_page_once() -> None:
    assert page_ranges(400, 2) == [(1, 200), (201, 400)]
    assert page_ranges(25, 3) == [(1, 8), (9, 17), (18, 25)]
    assert page_ranges(1, 4) == [(1, 1)]
    for pages, parts in [(24, 2), (101, 3), (7, 7)]:
        covered = [p for first, last in page_ranges(pages, parts) for p in range(first, last + 1)]
        assert covered == list(range(1, pages + 1))


def _fetched(folder: Path, settings: Settings) -> list[SourceDocument]:
    source = LocalSource(folder)
    return [source.fetch(d, settings.data_dir / "fetched") for d in source.list_documents().documents]


def test_split_parse_equals_whole_parse_and_is_cached(sample_docs, settings, monkeypatch) -> None:
    monkeypatch.setattr("pagelens.parsing.pool.SPLIT_MIN_PAGES", 2)  # the 4-page sample report gets split
    settings.parse_workers = 2
    docs = _fetched(sample_docs, settings)
    report = next(d for d in docs if d.doc_id == "acme_annual_report.pdf")
    with ParsePool(docs, settings) as pool:
        assert len(pool.futures[report.doc_id]) == 2
        pages = pool.pages(report)
    whole = extract_pages(sample_docs / "acme_annual_report.pdf", settings)
    assert [p.number for p in pages] == [1, 2, 3, 4]
    assert [[b.text for b in p.blocks] for p in pages] == [[b.text for b in p.blocks] for p in whole]
    with ParsePool(docs, settings) as again:  # second time: from the cache, no parse submitted
        assert report.doc_id in again.cached and report.doc_id not in again.futures


def test_a_dead_worker_costs_only_its_document(sample_docs, settings) -> None:
    settings.parse_workers = 1
    docs = _fetched(sample_docs, settings)
    with ParsePool(docs, settings) as pool:
        pids = list(pool.executor._processes)
        assert pids
        for pid in pids:  # kill the worker as a native crash would
            os.kill(pid, signal.SIGKILL)
        results = {d.doc_id: len(pool.pages(d)) for d in docs}
    assert results == {"acme_annual_report.pdf": 4, "warehouse_inspection_scan.png": 1}
