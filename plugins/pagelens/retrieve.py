"""Retrieval: BM25 over chunks, MiniLM over page windows and CLIP text->image searched in Milvus, fused by page,
the best pages re-scored by how literally they carry the question (rerank.py); always inside one namespace.

The legs of a hybrid query run at once (a query costs about its slowest leg, not their sum): each waits on
Milvus or on a model that releases the GIL, so threads suffice. Each leg is a `query_vector` span.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from typing import Any

from pagelens.embed import image_encoder, text_encoder
from pagelens.records import Hit
from pagelens.rerank import RerankWeights, rerank
from pagelens.settings import Settings
from pagelens.store import VectorStore, concat_vector, quote
from pagelens.tracing import in_current_context, span

MODES = ("hybrid", "fused", "bm25", "dense", "concat", "rrf")
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
             filters: dict[str, Any] | None = None, generation: str | None = None,
             principals: Iterable[str] | None = None) -> list[Hit]:
    """Chunks ranked for the question, best first (several may come from the same page).

    `generation` searches that collection generation instead of the live one (a rebuild judged before its swap).
    `principals`: the reader's principal set; every search leg then sees only chunks of documents one of them
    may read (None: unrestricted, for the operator's CLI and evaluation).
    """
    mode = mode or settings.retrieval_mode
    if mode not in MODES:
        raise RetrievalError(f"unknown mode {mode!r}; use one of {', '.join(MODES)}")
    limit = limit or settings.candidates
    store, expr = VectorStore(settings, namespace, generation, principals), filter_expr(filters)
    with span("retrieve", mode=mode, namespace=namespace, collection=store.target) as retrieval:
        # a kind filter names the chunk's kind, and a window spans several: dense then searches the chunk vectors
        windows = not (filters or {}).get("kind")
        hits = _ranked(mode, question, store, settings, limit, expr, windows)
        retrieval.set_attribute("hits", len(hits))
        return hits


def _ranked(mode: str, question: str, store: VectorStore, settings: Settings, limit: int, expr: str,
            windows: bool) -> list[Hit]:
    if mode in ("bm25", "dense", "concat"):
        return _leg(mode, question, store, settings, limit, expr, windows)
    legs = search_legs(question, store, settings, limit, expr, windows)
    with span("fuse", method="rrf" if mode == "rrf" else "score", legs=sum(1 for h in legs.values() if h)) as fused:
        if mode == "rrf":
            hits = fuse_by_page([(1.0, legs["bm25"]), (1.0, legs["dense"]), (settings.vision_weight, legs["image"])])
        else:
            hits = fuse_scores(legs, fusion_weights(settings))
        fused.set_attribute("hits", len(hits))
    if mode != "hybrid":
        return hits
    with span("rerank", pages=settings.rerank_pages):
        return rerank(question, hits, (h for leg in legs.values() for h in leg), rerank_weights(settings),
                      settings.rerank_pages)


def search_legs(question: str, store: VectorStore, settings: Settings, limit: int, expr: str = "",
                windows: bool = True) -> dict[str, list[Hit]]:
    """Each retriever's chunk hits for the question, best first: BM25, MiniLM, and CLIP's text tower (when on).

    The other legs run in the leg pool while BM25 runs in the caller's thread; an error in any leg raises here.
    `windows`: MiniLM searches the page windows (False: the chunk vectors).
    """
    names = ["dense", "image"] if image_encoder(settings) is not None else ["dense"]  # CLIP off or unloadable
    pending: dict[str, Future[list[Hit]]] = {}
    if settings.retrieval_concurrent:
        for name in names:
            leg = functools.partial(_leg, name, question, store, settings, limit, expr, windows)
            pending[name] = _leg_pool(settings.retrieval_threads).submit(in_current_context(leg))
    legs = {"bm25": _leg("bm25", question, store, settings, limit, expr), "dense": [], "image": []}
    for name in names:
        legs[name] = (pending[name].result() if name in pending
                      else _leg(name, question, store, settings, limit, expr, windows))
    return legs


LEG_FIELDS = {"bm25": "sparse", "dense": "text_vec", "concat": "concat_vec", "image": "image_vec"}


def _leg(name: str, question: str, store: VectorStore, settings: Settings, limit: int, expr: str,
         windows: bool = True) -> list[Hit]:
    """One retriever: encode the question for its field (BM25 takes the text), then search that field (MiniLM:
    the page windows when asked and the generation has them, else the chunk vectors)."""
    windows = windows and name == "dense" and store.has_windows()
    with span("query_vector", leg=name, field=LEG_FIELDS[name], limit=limit, windows=windows) as leg_span:
        if windows:
            hits = store.search_windows(_query(name, question, settings), limit, expr)
        else:
            hits = store.search(LEG_FIELDS[name], _query(name, question, settings), limit, _leg_expr(name, expr))
        leg_span.set_attribute("hits", len(hits))
        return hits


def _query(leg: str, question: str, settings: Settings) -> Any:
    if leg == "bm25":
        return question
    if leg == "image":
        return image_encoder(settings).encode_texts([question])[0]  # type: ignore[union-attr]  # search_legs checked
    query_vec = text_encoder(settings).encode([question])[0]
    return concat_vector(None, query_vec, settings.vision_weight) if leg == "concat" else query_vec


def _leg_expr(leg: str, expr: str) -> str:
    return " and ".join(x for x in ("has_image == true", expr) if x) if leg == "image" else expr


@functools.lru_cache(maxsize=1)
def _leg_pool(threads: int) -> ThreadPoolExecutor:
    """The process's leg threads, shared by concurrent requests (created on the first hybrid query)."""
    return ThreadPoolExecutor(max_workers=threads, thread_name_prefix="retrieval-leg")



def fusion_weights(settings: Settings) -> dict[str, float]:
    """Convex weights of the legs: dense gets `dense_weight` of the text share, CLIP `vision_weight` of it all."""
    text_share = 1.0 - settings.vision_weight if settings.clip_model else 1.0
    return {"bm25": text_share * (1 - settings.dense_weight), "dense": text_share * settings.dense_weight,
            "image": 1.0 - text_share}


def rerank_weights(settings: Settings) -> RerankWeights:
    return RerankWeights(coverage=settings.rerank_coverage_weight, phrase=settings.rerank_phrase_weight,
                         number=settings.rerank_number_weight)


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
