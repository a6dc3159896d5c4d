"""Fusion and filters of the retrieval layer (pure functions; the searches themselves are integration-tested)."""

from __future__ import annotations

import pytest

from pagelens.models import Hit
from pagelens.retrieve import RetrievalError, distinct_pages, filter_expr, fuse_by_page, retrieve
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
