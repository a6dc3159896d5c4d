"""The second stage of hybrid retrieval: among the fused pages, the one that carries the question wins."""

from __future__ import annotations

from pagelens.records import Hit
from pagelens.rerank import RerankWeights, page_evidence, rerank
from pagelens.retrieve import distinct_pages

WEIGHTS = RerankWeights(coverage=0.2, phrase=0.2, number=0.3)


def _hit(cid: str, doc: str, page: int, text: str, score: float) -> Hit:
    return Hit(id=cid, doc_id=doc, page=page, kind="text", text=text, bbox=[0, 0, 1, 1], score=score)


def _report() -> list[Hit]:
    """A report's title page fused first (the document's vocabulary), the page holding the row second."""
    return [
        _hit("t", "report.pdf", 1, "Annual report on commercial paper issuance in Europe, with market data.", 0.80),
        _hit("r", "report.pdf", 7, "Table 3. Asset-backed commercial paper issued per quarter\nQ3 2006 | 96.5", 0.74),
        _hit("o", "other.pdf", 2, "Commercial paper programmes and money market funds.", 0.70),
    ]


def test_the_page_with_the_phrase_and_the_number_beats_the_title_page() -> None:
    fused = _report()
    question = "How much asset-backed commercial paper was issued in Q3 2006?"
    ranked = rerank(question, fused, fused, WEIGHTS, pages=20)
    assert distinct_pages(ranked)[:2] == [("report.pdf", 7), ("report.pdf", 1)]
    assert all(0.0 <= h.score <= 1.0 for h in ranked)
    evidence = {e.page: e for e in page_evidence(question, fused, fused, 20)}
    assert evidence[("report.pdf", 7)].number == 1.0 and evidence[("report.pdf", 1)].number == 0.0
    assert evidence[("report.pdf", 7)].phrase > evidence[("report.pdf", 1)].phrase


def test_terms_every_candidate_shares_decide_nothing() -> None:
    """"commercial paper" is on every page: rarity weighting leaves the fused order as it was."""
    fused = _report()
    ranked = rerank("What is said about commercial paper?", fused, fused, RerankWeights(0.5, 0.0, 0.0), pages=20)
    assert [h.id for h in ranked] == ["t", "r", "o"]


def test_no_weight_or_no_candidates_keeps_the_fused_ranking() -> None:
    fused = _report()
    question = "How much asset-backed commercial paper was issued in Q3 2006?"
    assert rerank(question, fused, fused, RerankWeights(0.0, 0.0, 0.0), pages=20) == fused
    assert rerank(question, fused, fused, WEIGHTS, pages=0) == fused


def test_pages_past_the_candidates_stay_below_them_in_fused_order() -> None:
    fused = _report()
    ranked = rerank("How much asset-backed commercial paper was issued in Q3 2006?", fused, fused, WEIGHTS, pages=2)
    assert [h.id for h in ranked] == ["r", "t", "o"]
    assert ranked[-1].score < ranked[1].score


def test_a_page_is_read_from_every_chunk_any_leg_retrieved() -> None:
    """The number sits in a chunk only the BM25 leg returned; the page still gets credit for it."""
    fused = _report()[:2]
    extra = _hit("r2", "report.pdf", 1, "Issuance in Q3 2006 rose to 96.5 billion.", 0.0)
    evidence = {e.page: e for e in page_evidence("issued in Q3 2006", fused, [*fused, extra], 20)}
    assert evidence[("report.pdf", 1)].number == 1.0


def test_chunks_stay_grouped_under_their_page() -> None:
    fused = [*_report(), _hit("r2", "report.pdf", 7, "Q4 2006 | 101.2", 0.74)]
    fused = [fused[0], fused[1], fused[3], fused[2]]  # fused order: page 1, page 7 (two chunks), other
    ranked = rerank("asset-backed commercial paper in Q3 2006", fused, fused, WEIGHTS, pages=20)
    assert [h.id for h in ranked][:2] == ["r", "r2"]
    assert len(ranked) == len(fused)
