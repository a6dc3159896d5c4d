"""The /v1 endpoints: search, query (retrieve + answer) and page images, each inside one granted namespace."""

from __future__ import annotations

import math
import time
from dataclasses import asdict
from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify, request, url_for

from pagelens.answer import answer, citation
from pagelens.errors import DocumentError, DocumentNotFound, PageImageError, PageOutOfRange
from pagelens.models import Citation, Hit
from pagelens.pageimage import document_path, hit_page_images, render_page_png
from pagelens.registry import Registry
from pagelens.retrieve import retrieve
from pagelens.settings import Settings
from pagelens.store import InvalidNamespace, VectorStore, validate_namespace
from query_api.auth import authorize_namespace, require_token
from query_api.errors import ApiError
from query_api.metrics import observe_answer, observe_retrieval
from query_api.validation import QuestionRequest, parse_question_request

bp = Blueprint("api", __name__, url_prefix="/v1")


@bp.before_request
def _authenticate() -> None:
    require_token(_settings())


@bp.get("/namespaces")
def namespaces() -> Response:
    """The namespaces this token may read that have indexed documents: what a client can offer to pick from."""
    indexed = Registry(_settings().registry_url).indexed_namespaces()
    return jsonify(namespaces=[ns for ns in indexed if g.grant is None or g.grant.allows(ns)])


@bp.post("/search")
def search() -> Response:
    """Retrieval only: the k best chunks, each as a citation."""
    started, settings = time.perf_counter(), _settings()
    body = parse_question_request(request, settings)
    hits, mode, retrieval_s = _retrieve(body, settings)
    k = body.k or settings.api_default_k
    results = [_citation_json(citation(hit, hit.text), body.namespace) for hit in hits[:k]]
    return jsonify(namespace=body.namespace, mode=mode, k=k, results=results,
                   timings=_timings(started, retrieval_s=retrieval_s))


@bp.post("/query")
def query() -> Response:
    """Retrieve, then answer from the k best chunks (extractive, or generated when an LLM endpoint is configured)."""
    started, settings = time.perf_counter(), _settings()
    body = parse_question_request(request, settings)
    hits, mode, retrieval_s = _retrieve(body, settings)
    k = body.k or settings.api_default_k
    generation_start = time.perf_counter()
    result = answer(body.question, hits[:k], settings, page_images=hit_page_images(settings, body.namespace))
    generation_s = time.perf_counter() - generation_start
    observe_answer(result.mode, generation_s, result.citations_removed)
    return jsonify(namespace=body.namespace, mode=mode, k=k, answer={
        "text": result.text, "mode": result.mode, "fallback_reason": result.fallback_reason,
        "citations": [_citation_json(c, body.namespace) for c in result.citations],
        "citations_removed": result.citations_removed,
    }, timings=_timings(started, retrieval_s=retrieval_s, generation_s=generation_s))


@bp.get("/documents/<path:doc>/pages/<int:page>.png")
def page_image(doc: str, page: int) -> Response:
    """One page of an indexed document as PNG, optionally with a box shaded, so a citation can be shown."""
    settings = _settings()
    namespace = _namespace_arg()
    authorize_namespace(namespace)
    bbox = _bbox_arg()
    try:
        png = render_page_png(document_path(settings, namespace, doc), page, settings.api_page_dpi, bbox,
                              passwords=settings.pdf_passwords, max_pixels=settings.max_image_pixels)
    except PageImageError as exc:
        code = {DocumentNotFound: "document_not_found", PageOutOfRange: "page_not_found"}.get(type(exc),
                                                                                             "page_image_unavailable")
        raise ApiError(404, code, str(exc)) from exc
    except DocumentError as exc:
        raise ApiError(422, "page_image_unavailable", f"cannot render '{doc}': {exc.reason}") from exc
    response = Response(png, mimetype="image/png")
    response.cache_control.private = True  # the image needs a token: shared caches must not keep it
    response.cache_control.max_age = settings.api_page_max_age_s
    response.vary.add("Authorization")
    response.add_etag()
    return response.make_conditional(request)


def _settings() -> Settings:
    return current_app.extensions["pagelens"].settings


def _retrieve(body: QuestionRequest, settings: Settings) -> tuple[list[Hit], str, float]:
    """Hits of the request's namespace only: the token is checked first, the store filters by namespace inside."""
    authorize_namespace(body.namespace)
    if not VectorStore(settings, body.namespace).exists():
        raise ApiError(404, "namespace_not_found", f"namespace '{body.namespace}' has no index; ingest documents into "
                                                   f"it first (`pagelens ingest PATH --namespace {body.namespace}`)")
    current_app.extensions["pagelens"].warmup.ensure()
    mode = body.mode or settings.retrieval_mode
    start = time.perf_counter()
    hits = retrieve(body.question, body.namespace, settings, mode=mode, filters=body.filter_dict())
    seconds = time.perf_counter() - start
    observe_retrieval(mode, seconds)
    return hits, mode, seconds


def _citation_json(cited: Citation, namespace: str) -> dict[str, Any]:
    """A citation plus the URL of its page image with the cited box shaded."""
    box = ",".join(f"{v:g}" for v in cited.bbox)
    return {**asdict(cited), "image_url": url_for("api.page_image", doc=cited.doc, page=cited.page,
                                                  namespace=namespace, bbox=box)}


def _timings(started: float, retrieval_s: float, generation_s: float | None = None) -> dict[str, float]:
    timings = {"retrieval_ms": round(retrieval_s * 1000, 1)}
    if generation_s is not None:
        timings["generation_ms"] = round(generation_s * 1000, 1)
    timings["total_ms"] = round((time.perf_counter() - started) * 1000, 1)
    return timings


def _namespace_arg() -> str:
    namespace = request.args.get("namespace", "")
    if not namespace:
        raise ApiError(400, "invalid_request", "the 'namespace' query parameter is required")
    try:
        return validate_namespace(namespace)
    except InvalidNamespace as exc:
        raise ApiError(400, "invalid_request", str(exc)) from exc


def _bbox_arg() -> tuple[float, float, float, float] | None:
    """`bbox=x0,top,x1,bottom` in PDF points (as citations carry it), or None."""
    raw = request.args.get("bbox")
    if raw is None or raw == "":
        return None
    try:
        values = tuple(float(v) for v in raw.split(","))
    except ValueError:
        values = ()
    if len(values) != 4 or not all(math.isfinite(v) and abs(v) <= 1e6 for v in values):
        raise ApiError(400, "invalid_request", "bbox must be four numbers 'x0,top,x1,bottom' in PDF points")
    return values  # type: ignore[return-value]
