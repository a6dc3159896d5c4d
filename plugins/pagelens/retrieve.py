"""Retrieval: BM25, MiniLM dense, CLIP text->image, fused in Milvus; always inside one namespace."""

from __future__ import annotations

import json
from typing import Any

from pagelens.embed import image_encoder, text_encoder
from pagelens.models import Hit
from pagelens.settings import Settings
from pagelens.store import VectorStore, concat_vector, quote

MODES = ("hybrid", "bm25", "dense", "concat")


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
             filters: dict[str, Any] | None = None) -> list[Hit]:
    """Chunks ranked for the question, best first (several may come from the same page)."""
    mode = mode or settings.retrieval_mode
    if mode not in MODES:
        raise RetrievalError(f"unknown mode {mode!r}; use one of {', '.join(MODES)}")
    limit = limit or settings.candidates
    store, expr = VectorStore(settings), filter_expr(filters)
    if mode == "bm25":
        return store.search("sparse", question, namespace, limit, expr)
    query_vec = text_encoder(settings).encode([question])[0]
    if mode == "dense":
        return store.search("text_vec", query_vec, namespace, limit, expr)
    if mode == "concat":
        return store.search("concat_vec", concat_vector(None, query_vec, settings.vision_weight), namespace, limit, expr)
    requests: list[tuple[str, Any, str]] = [("sparse", question, expr), ("text_vec", query_vec, expr)]
    clip = image_encoder(settings)
    if clip is not None:
        image_expr = " and ".join(x for x in ("has_image == true", expr) if x)
        requests.append(("image_vec", clip.encode_texts([question])[0], image_expr))
    return store.hybrid_search(requests, namespace, limit, per_field=settings.candidates)


def distinct_pages(hits: list[Hit]) -> list[tuple[str, int]]:
    """(doc, page) pairs in retrieval order, each once."""
    seen: dict[tuple[str, int], None] = {}
    for hit in hits:
        seen.setdefault((hit.doc_id, hit.page), None)
    return list(seen)


def hits_json(hits: list[Hit]) -> str:
    return json.dumps([h.__dict__ for h in hits])
