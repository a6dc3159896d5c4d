"""The question path every answering route shares (/v1/search, /v1/query, /v1/chat/completions).

The token is checked against the namespace before anything reveals whether it exists; then the index must
exist, the models are loaded, retrieval searches that namespace only, and the answer is written from the k
best chunks. Citations leave as JSON with the URL of their page image.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

from flask import current_app, url_for

from pagelens.answer import answer
from pagelens.pageimage import hit_page_images
from pagelens.records import Answer, Citation, Hit
from pagelens.retrieve import retrieve
from pagelens.settings import Settings
from pagelens.store import VectorStore
from query_api.auth import authorize_namespace, reader_principals
from query_api.errors import ApiError
from query_api.metrics import observe_answer, observe_retrieval


@dataclass
class Answered:
    """One answered question: the evidence, the answer and what each stage took."""

    hits: list[Hit]
    answer: Answer
    mode: str  # retrieval mode
    k: int
    retrieval_s: float
    generation_s: float


def open_namespace(namespace: str, settings: Settings) -> None:
    """403 unless the token grants it, 404 without an index, 503 while the models cannot load."""
    authorize_namespace(namespace)
    if not VectorStore(settings, namespace).exists():
        raise ApiError(404, "namespace_not_found", f"namespace '{namespace}' has no index; ingest documents into "
                                                   f"it first (`pagelens ingest PATH --namespace {namespace}`)")
    current_app.extensions["pagelens"].warmup.ensure()


def retrieve_hits(question: str, namespace: str, settings: Settings, mode: str | None = None,
                  filters: dict[str, Any] | None = None) -> tuple[list[Hit], str, float]:
    """Hits of the namespace only, and of the documents the reader's principals may see (the store filters by both
    inside every search); mode and seconds."""
    open_namespace(namespace, settings)
    mode = mode or settings.retrieval_mode
    start = time.perf_counter()
    hits = retrieve(question, namespace, settings, mode=mode, filters=filters, principals=reader_principals())
    seconds = time.perf_counter() - start
    observe_retrieval(mode, seconds)
    return hits, mode, seconds


def answer_question(question: str, namespace: str, settings: Settings, k: int | None = None, mode: str | None = None,
                    filters: dict[str, Any] | None = None) -> Answered:
    """Retrieve, then answer from the k best chunks (extractive, or generated when an LLM endpoint is configured)."""
    hits, mode, retrieval_s = retrieve_hits(question, namespace, settings, mode, filters)
    k = k or settings.api_default_k
    start = time.perf_counter()
    result = answer(question, hits[:k], settings,
                    page_images=hit_page_images(settings, namespace, principals=reader_principals()))
    generation_s = time.perf_counter() - start
    observe_answer(result.mode, generation_s, result.citations_removed)
    return Answered(hits, result, mode, k, retrieval_s, generation_s)


def answer_json(result: Answer, namespace: str) -> dict[str, Any]:
    """The `answer` object of /v1/query (and the `pagelens` extra of a chat completion)."""
    return {"text": result.text, "mode": result.mode, "fallback_reason": result.fallback_reason,
            "citations": [citation_json(c, namespace) for c in result.citations],
            "citations_removed": result.citations_removed, "abstained": result.abstained}


def citation_json(cited: Citation, namespace: str) -> dict[str, Any]:
    """A citation plus the URL of its page image with the cited box shaded."""
    box = ",".join(f"{v:g}" for v in cited.bbox)
    return {**asdict(cited), "image_url": url_for("api.page_image", doc=cited.doc, page=cited.page,
                                                  namespace=namespace, bbox=box)}


def timings(started: float, retrieval_s: float, generation_s: float | None = None) -> dict[str, float]:
    result = {"retrieval_ms": round(retrieval_s * 1000, 1)}
    if generation_s is not None:
        result["generation_ms"] = round(generation_s * 1000, 1)
    result["total_ms"] = round((time.perf_counter() - started) * 1000, 1)
    return result
