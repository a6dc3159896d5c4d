"""Fusion and filters of the retrieval layer (pure functions; the searches themselves are integration-tested)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from pagelens.records import Hit
from pagelens.retrieve import RetrievalError, distinct_pages, filter_expr, fuse_by_page, fuse_scores, retrieve
from pagelens.settings import Settings


def _hit(cid: str, doc: str, page: int) -> Hit:
    return Hit(id=cid, doc_id=doc, page=page, kind="text", text=cid, bbox=[0, 0, 1, 1], score=0.0)


def test_page_fusion_rewards_agreement_split_across_chunks() -> None:
    bm25 = [_hit("t1", "a", 2), _hit("x1", "b", 7), _hit("p1", "a", 3)]
    dense = [_hit("x2", "b", 8), _hit("t2", "a", 2), _hit("x1", "b", 7)]
    fused = fuse_by_page([(1.0, bm25), (1.0, dense)])
    assert distinct_pages(fused)[:2] == [("a", 2), ("b", 7)]  # page a/2 agreed on with different chunks
    assert [h.id for h in fused[:2]] == ["t1", "t2"] and fused[0].score == fused[1].score
    assert len({h.id for h in fused}) == len(fused) == 5


def test_weights_shift_the_order() -> None:
    bm25, dense = [_hit("a", "a", 1), _hit("b", "b", 1)], [_hit("b", "b", 1), _hit("a", "a", 1)]
    assert distinct_pages(fuse_by_page([(2.0, bm25), (1.0, dense)]))[0] == ("a", 1)
    assert distinct_pages(fuse_by_page([(1.0, bm25), (2.0, dense)]))[0] == ("b", 1)


def test_filters_become_a_milvus_expression() -> None:
    expr = filter_expr({"doc": 'a "quoted".pdf', "kind": "table", "page_from": 2, "page_to": 5})
    assert expr == 'doc_id == "a \\"quoted\\".pdf" and kind == "table" and page >= 2 and page <= 5'
    assert filter_expr(None) == "" and filter_expr({}) == ""


def test_unknown_mode_is_refused_before_any_search(tmp_path) -> None:
    with pytest.raises(RetrievalError, match="unknown mode"):
        retrieve("q", "ns", Settings(data_dir=tmp_path), mode="magic")


def _scored(cid: str, doc: str, page: int, score: float) -> Hit:
    return Hit(id=cid, doc_id=doc, page=page, kind="text", text=cid, bbox=[0, 0, 1, 1], score=score)


def test_score_fusion_keeps_a_strong_hit_that_one_leg_missed() -> None:
    """BM25 finds a scan far ahead of the rest; the dense leg never saw it. Rank fusion buries it, scores do not."""
    book = [_scored(f"b{n}", "book.pdf", n, 0.0) for n in range(1, 6)]
    bm25 = [_scored("scan", "scan.png", 1, 30.0), *[replace(h, score=12.0 - n) for n, h in enumerate(book)]]
    dense = [replace(h, score=0.62 - 0.01 * n) for n, h in enumerate(book)] + [_scored("x", "other.pdf", 1, 0.55)]
    fused = fuse_scores({"bm25": bm25, "dense": dense}, {"bm25": 0.5, "dense": 0.5})
    assert distinct_pages(fused)[0] == ("scan.png", 1)
    assert distinct_pages(fuse_by_page([(1.0, bm25), (1.0, dense)]))[0] == ("book.pdf", 1)
    assert all(0.0 <= h.score <= 1.0 for h in fused) and fused[0].score > fused[1].score


def test_score_fusion_weights_move_between_the_legs() -> None:
    bm25 = [_scored("a", "a", 1, 9.0), _scored("b", "b", 1, 3.0)]
    dense = [_scored("b", "b", 1, 0.7), _scored("a", "a", 1, 0.3)]
    assert distinct_pages(fuse_scores({"bm25": bm25, "dense": dense}, {"bm25": 1.0, "dense": 0.0}))[0] == ("a", 1)
    assert distinct_pages(fuse_scores({"bm25": bm25, "dense": dense}, {"bm25": 0.0, "dense": 1.0}))[0] == ("b", 1)
    # chunks of one page stay together under it, each chunk once
    two = fuse_scores({"bm25": [*bm25, _scored("a2", "a", 1, 1.0)], "dense": dense}, {"bm25": 0.5, "dense": 0.5})
    assert [h.id for h in two] == ["a", "a2", "b"] or [h.id for h in two] == ["b", "a", "a2"]
    assert fuse_scores({"bm25": [], "dense": []}, {"bm25": 0.5, "dense": 0.5}) == []
