"""Chunking: page-bounded windows, whole table rows with their header, stable ids, document context."""

from __future__ import annotations

from pagelens.chunk import chunk_id, chunk_pages, dehyphenate, document_title
from pagelens.records import Block, Page


def _chunks(pages: list[Page], target: int = 120, limit: int = 200):
    return chunk_pages(pages, namespace="ns", doc_id="d.pdf", source_uri="file:///d.pdf", content_sha256="0" * 64,
                       model_version="v", target_chars=target, max_chars=limit)


def test_windows_pack_blocks_never_cross_pages_and_keep_boxes() -> None:
    pages = [Page(1, 600, 800, [Block("Annual Report 2025", (10, 10, 200, 30), "text"),
                                Block("a" * 60, (10, 40, 300, 60), "text"), Block("b" * 60, (10, 70, 300, 90), "text")]),
             Page(2, 600, 800, [Block("c" * 30, (20, 20, 100, 40), "text")])]
    chunks = _chunks(pages)
    assert [(c.page, c.chunk_no) for c in chunks] == [(1, 0), (1, 1), (2, 0)]
    assert chunks[0].bbox == (10, 10, 300, 60) and chunks[1].text == "b" * 60
    assert all(c.context == "Annual Report 2025" for c in chunks)
    assert chunks[2].search_text == "Annual Report 2025\n" + "c" * 30


def test_a_long_table_is_split_at_rows_and_every_piece_keeps_the_header() -> None:
    rows = ["Region | 2024 | 2025"] + [f"Region {i} | {i}.0 | {i}.5" for i in range(30)]
    table = Block("\n".join(rows), (0, 0, 500, 700), "table")
    chunks = _chunks([Page(1, 600, 800, [Block("intro text here", (0, 0, 10, 10), "text"), table])])
    pieces = [c for c in chunks if c.kind == "table"]
    assert len(pieces) > 1 and all(len(p.text) <= 200 for p in pieces)
    assert all(p.text.startswith("Region | 2024 | 2025\n") for p in pieces)
    body = [line for p in pieces for line in p.text.split("\n")[1:]]
    assert body[-1] == "Region 29 | 29.0 | 29.5" and len(set(body)) == 30  # every row once, none cut


def test_ids_are_deterministic_and_depend_on_every_part() -> None:
    base = chunk_id("ns", "d.pdf", 1, 0, "v")
    assert base == chunk_id("ns", "d.pdf", 1, 0, "v") and len(base) == 32
    variants = [("other", "d.pdf", 1, 0, "v"), ("ns", "e.pdf", 1, 0, "v"), ("ns", "d.pdf", 2, 0, "v"),
                ("ns", "d.pdf", 1, 1, "v"), ("ns", "d.pdf", 1, 0, "w")]
    assert len({base, *(chunk_id(*v) for v in variants)}) == 6


def test_dehyphenation_and_title() -> None:
    assert dehyphenate("Universitat Rovira i Vir-\ngili") == "Universitat Rovira i Virgili"
    assert dehyphenate("state-of-the-art\nwork") == "state-of-the-art\nwork"
    blocks = [Block("12", (0, 0, 1, 1), "text"), Block("Overview of TAM", (0, 0, 1, 1), "text")]
    assert document_title([Page(1, 1, 1, blocks)]) == "Overview of TAM"


def test_dense_windows_cross_chunks_never_pages_and_show_the_chunk_at_their_middle() -> None:
    from pagelens.chunk import dense_windows

    first = " ".join(f"alpha{i}" for i in range(30))  # 239 characters
    second = " ".join(f"beta{i}" for i in range(40))   # 309 characters
    pages = [Page(1, 600, 800, blocks=[Block(first, (0, 0, 10, 10), "text"), Block(second, (0, 20, 10, 30), "table")]),
             Page(2, 600, 800, blocks=[Block("gamma delta", (0, 0, 10, 10), "text")])]
    chunks = _chunks(pages, target=100, limit=400)
    assert [c.page for c in chunks] == [1, 1, 2]
    windows = dense_windows(chunks, size=200, stride=150)
    page_one = [w for w in windows if w.chunk.page == 1]
    # 549 characters of page text: windows start at 0, 150, 300 (a start past 349 would only repeat the tail)
    assert len(page_one) == 3 and len(windows) == 4
    assert "alpha29 beta0" in page_one[1].text  # across the chunk boundary
    assert [w.chunk.chunk_no for w in page_one] == [0, 1, 1]  # middles at 100, 250, 424: 239 ends the first chunk
    assert windows[3].text == "gamma delta" and windows[3].chunk.page == 2
    assert len({w.id for w in windows}) == 4
    assert [w.id for w in dense_windows(chunks, size=200, stride=150)] == [w.id for w in windows]
