"""Retrieval: BM25, MiniLM dense, CLIP text->image, fused in Milvus; always inside one namespace."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from pagelens.embed import image_encoder, text_encoder
from pagelens.models import Hit
from pagelens.settings import Settings
from pagelens.store import VectorStore, concat_vector, quote

MODES = ("hybrid", "bm25", "dense", "concat")
RRF_K = 60  # the usual reciprocal-rank-fusion constant


class RetrievalError(ValueError):
    """A request the index cannot answer as asked (unknown mode, bad filter)."""


def filter_expr(filters: dict[str, Any] | None) -> str:
    """Milvus expression for optional filters: doc, kind, page_from, page_to."""
    if not filters:
        return ""
    parts = []
    if filters.get("doc"):
        parts.append(f"doc_id == {quote(str(filters['doc']))}")
    if filters.get("kind"):
        parts.append(f"kind == {quote(str(filters['kind']))}")
    if filters.get("page_from") is not None:
        parts.append(f"page >= {int(filters['page_from'])}")
    if filters.get("page_to") is not None:
        parts.append(f"page <= {int(filters['page_to'])}")
    return " and ".join(parts)


def retrieve(question: str, namespace: str, settings: Settings, mode: str | None = None, limit: int | None = None,
             filters: dict[str, Any] | None = None, generation: str | None = None) -> list[Hit]:
    """Chunks ranked for the question, best first (several may come from the same page).

    `generation` searches that collection generation instead of the live one (a rebuild judged before its swap).
    """
    mode = mode or settings.retrieval_mode
    if mode not in MODES:
        raise RetrievalError(f"unknown mode {mode!r}; use one of {', '.join(MODES)}")
    limit = limit or settings.candidates
    store, expr = VectorStore(settings, namespace, generation), filter_expr(filters)
    if mode == "bm25":
        return store.search("sparse", question, limit, expr)
    query_vec = text_encoder(settings).encode([question])[0]
    if mode == "dense":
        return store.search("text_vec", query_vec, limit, expr)
    if mode == "concat":
        return store.search("concat_vec", concat_vector(None, query_vec, settings.vision_weight), limit, expr)
    ranked = [(1.0, store.search("sparse", question, limit, expr)),
              (1.0, store.search("text_vec", query_vec, limit, expr))]
    clip = image_encoder(settings)
    if clip is not None:
        image_expr = " and ".join(x for x in ("has_image == true", expr) if x)
        ranked.append((settings.vision_weight,
                       store.search("image_vec", clip.encode_texts([question])[0], limit, image_expr)))
    return fuse_by_page(ranked)


def fuse_by_page(ranked: list[tuple[float, list[Hit]]], k: int = RRF_K) -> list[Hit]:
    """Weighted reciprocal-rank fusion of pages, not chunks; chunks come back grouped under their page.

    Answers are cited by page, and a page's evidence is often split over chunks: BM25 may rank its
    table first while MiniLM ranks its prose first. Fusing chunk ranks would split that agreement;
    fusing page ranks (each page ranked by its best chunk in each list) keeps it.
    """
    page_score: dict[tuple[str, int], float] = {}
    best: dict[str, tuple[int, Hit]] = {}  # chunk id -> (best position in any list, hit)
    for weight, hits in ranked:
        for rank, page in enumerate(distinct_pages(hits), start=1):
            page_score[page] = page_score.get(page, 0.0) + weight / (k + rank)
        for position, hit in enumerate(hits):
            if hit.id not in best or position < best[hit.id][0]:
                best[hit.id] = (position, hit)
    chunks = sorted(best.values(), key=lambda ph: (-page_score[(ph[1].doc_id, ph[1].page)], ph[0]))
    return [replace(hit, score=round(page_score[(hit.doc_id, hit.page)], 6)) for _, hit in chunks]


def distinct_pages(hits: list[Hit]) -> list[tuple[str, int]]:
    """(doc, page) pairs in retrieval order, each once."""
    seen: dict[tuple[str, int], None] = {}
    for hit in hits:
        seen.setdefault((hit.doc_id, hit.page), None)
    return list(seen)
