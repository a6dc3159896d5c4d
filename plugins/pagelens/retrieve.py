"""Retrieval: BM25, MiniLM dense and CLIP text->image searched in Milvus, fused by page; always inside one namespace."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from pagelens.embed import image_encoder, text_encoder
from pagelens.records import Hit
from pagelens.settings import Settings
from pagelens.store import VectorStore, concat_vector, quote

MODES = ("hybrid", "bm25", "dense", "concat", "rrf")
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
    if mode == "dense":
        return store.search("text_vec", text_encoder(settings).encode([question])[0], limit, expr)
    if mode == "concat":
        query_vec = text_encoder(settings).encode([question])[0]
        return store.search("concat_vec", concat_vector(None, query_vec, settings.vision_weight), limit, expr)
    legs = search_legs(question, store, settings, limit, expr)
    if mode == "rrf":
        return fuse_by_page([(1.0, legs["bm25"]), (1.0, legs["dense"]), (settings.vision_weight, legs["image"])])
    return fuse_scores(legs, fusion_weights(settings))


def search_legs(question: str, store: VectorStore, settings: Settings, limit: int, expr: str = "") -> dict[str, list[Hit]]:
    """Each retriever's chunk hits for the question, best first: BM25, MiniLM, and CLIP's text tower (when on)."""
    legs = {"bm25": store.search("sparse", question, limit, expr),
            "dense": store.search("text_vec", text_encoder(settings).encode([question])[0], limit, expr),
            "image": []}
    clip = image_encoder(settings)
    if clip is not None:
        image_expr = " and ".join(x for x in ("has_image == true", expr) if x)
        legs["image"] = store.search("image_vec", clip.encode_texts([question])[0], limit, image_expr)
    return legs


def fusion_weights(settings: Settings) -> dict[str, float]:
    """Convex weights of the legs: dense gets `dense_weight` of the text share, CLIP `vision_weight` of it all."""
    text_share = 1.0 - settings.vision_weight if settings.clip_model else 1.0
    return {"bm25": text_share * (1 - settings.dense_weight), "dense": text_share * settings.dense_weight,
            "image": 1.0 - text_share}


def fuse_scores(legs: dict[str, list[Hit]], weights: dict[str, float]) -> list[Hit]:
    """A convex combination of each leg's page scores, normalised by that leg's best page; chunks grouped by page.

    Scores, not ranks: a page that one retriever finds far ahead of everything else (BM25 on an OCR'd scan
    the dense leg misses) keeps most of that lead, where rank fusion would rank it with mid-list pages both
    legs half agree on. Each leg's scores are divided by its best page's (BM25 and cosine both have 0 as
    their floor: Bruch et al. 2023's theoretical min-max). A page a leg did not return gets that leg's
    lowest returned score: it scored at most that. The fused score of a page is in [0, 1].
    """
    used = {leg: hits for leg, hits in legs.items() if hits and weights.get(leg, 0.0) > 0}
    normalised = []  # (weight, page -> normalised score, score of a page the leg did not return)
    for leg, hits in used.items():
        best = best_by_page(hits)
        scale = max(best.values()) if max(best.values()) > 0 else 1.0
        normalised.append((weights[leg], {p: max(s, 0.0) / scale for p, s in best.items()},
                           max(min(best.values()), 0.0) / scale))
    total = sum(w for w, _, _ in normalised) or 1.0
    pages = {page for _, scores, _ in normalised for page in scores}
    page_score = {page: sum(w * scores.get(page, floor) for w, scores, floor in normalised) / total
                  for page in pages}
    return _grouped(list(used.values()), page_score)


def best_by_page(hits: list[Hit]) -> dict[tuple[str, int], float]:
    """Each page's best chunk score in one leg."""
    best: dict[tuple[str, int], float] = {}
    for hit in hits:
        key = (hit.doc_id, hit.page)
        if key not in best or hit.score > best[key]:
            best[key] = hit.score
    return best


def _grouped(legs: list[list[Hit]], page_score: dict[tuple[str, int], float]) -> list[Hit]:
    """Every chunk once (at its best position in any leg), pages by fused score, chunks under their page."""
    best: dict[str, tuple[int, Hit]] = {}
    for hits in legs:
        for position, hit in enumerate(hits):
            if hit.id not in best or position < best[hit.id][0]:
                best[hit.id] = (position, hit)
    chunks = sorted(best.values(), key=lambda ph: (-page_score[(ph[1].doc_id, ph[1].page)], ph[0]))
    return [replace(hit, score=round(page_score[(hit.doc_id, hit.page)], 6)) for _, hit in chunks]


def fuse_by_page(ranked: list[tuple[float, list[Hit]]], k: int = RRF_K) -> list[Hit]:
    """Weighted reciprocal-rank fusion of pages, not chunks; chunks come back grouped under their page.

    Answers are cited by page, and a page's evidence is often split over chunks: BM25 may rank its
    table first while MiniLM ranks its prose first. Fusing chunk ranks would split that agreement;
    fusing page ranks (each page ranked by its best chunk in each list) keeps it.
    """
    page_score: dict[tuple[str, int], float] = {}
    for weight, hits in ranked:
        for rank, page in enumerate(distinct_pages(hits), start=1):
            page_score[page] = page_score.get(page, 0.0) + weight / (k + rank)
    return _grouped([hits for _, hits in ranked], page_score)


def distinct_pages(hits: list[Hit]) -> list[tuple[str, int]]:
    """(doc, page) pairs in retrieval order, each once."""
    seen: dict[tuple[str, int], None] = {}
    for hit in hits:
        seen.setdefault((hit.doc_id, hit.page), None)
    return list(seen)
