"""The /v1 endpoints: search, query (retrieve + answer), the documents report and page images, each inside one
granted namespace."""

from __future__ import annotations

import datetime as dt
import math
import time
from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify, request
from werkzeug.routing import PathConverter

from pagelens.answer import citation
from pagelens.errors import (
    ContentGone,
    DocumentError,
    DocumentNotFound,
    PageImageError,
    PageOutOfRange,
    PageTooLarge,
    RenderBusy,
)
from pagelens.names import printable
from pagelens.pageimage import indexed_page_png
from pagelens.registry import DocumentRecord, Registry
from pagelens.settings import Settings
from pagelens.store import InvalidNamespace, validate_namespace
from query_api.answering import answer_json, answer_question, citation_json, retrieve_hits, timings
from query_api.auth import authorize_namespace, reader_principals, require_token
from query_api.errors import ApiError
from query_api.validation import parse_question_request

bp = Blueprint("api", __name__, url_prefix="/v1")
DOCUMENT_STATUSES = ("indexed", "quarantined", "deleted")
MAX_DOCUMENTS_PAGE = 500


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
    hits, mode, retrieval_s = retrieve_hits(body.question, body.namespace, settings, body.mode, body.filter_dict())
    k = body.k or settings.api_default_k
    results = [citation_json(citation(hit, hit.text), body.namespace) for hit in hits[:k]]
    return jsonify(namespace=body.namespace, mode=mode, k=k, results=results,
                   timings=timings(started, retrieval_s=retrieval_s))


@bp.post("/query")
def query() -> Response:
    """Retrieve, then answer from the k best chunks (extractive, or generated when an LLM endpoint is configured)."""
    started, settings = time.perf_counter(), _settings()
    body = parse_question_request(request, settings)
    done = answer_question(body.question, body.namespace, settings, body.k, body.mode, body.filter_dict())
    return jsonify(namespace=body.namespace, mode=done.mode, k=done.k, answer=answer_json(done.answer, body.namespace),
                   timings=timings(started, retrieval_s=done.retrieval_s, generation_s=done.generation_s))


@bp.get("/documents")
def documents() -> Response:
    """The namespace's ingestion report, a page at a time: what was indexed, what was refused and why."""
    namespace = _namespace_arg()
    authorize_namespace(namespace)
    status = request.args.get("status") or None
    if status not in (None, *DOCUMENT_STATUSES):
        raise ApiError(400, "invalid_request", f"status must be one of {', '.join(DOCUMENT_STATUSES)}")
    limit, offset = _int_arg("limit", 50, 1, MAX_DOCUMENTS_PAGE), _int_arg("offset", 0, 0, 10**9)
    registry, who = Registry(_settings().registry_url), reader_principals()
    try:
        rows, total = registry.document_page(namespace, status, request.args.get("reason") or None, limit, offset, who)
    except ValueError as exc:
        raise ApiError(400, "invalid_request", str(exc)) from exc
    return jsonify(namespace=namespace, total=total, limit=limit, offset=offset,
                   counts=registry.status_counts(namespace, who), reasons=registry.quarantine_reasons(namespace, who),
                   documents=[document_json(r) for r in rows])


class DocPathConverter(PathConverter):
    """A doc id in a URL path: any characters, newlines included (the stock `path` stops at a newline)."""

    regex = "[^/](?s:.)*?"


bp.record_once(lambda state: state.app.url_map.converters.setdefault("docpath", DocPathConverter))  # before the rule
PAGE_IMAGE_ERRORS = {DocumentNotFound: (404, "document_not_found"), PageOutOfRange: (404, "page_not_found"),
                     ContentGone: (410, "document_content_gone"), PageTooLarge: (422, "page_too_large"),
                     RenderBusy: (503, "render_busy")}


@bp.get("/documents/<docpath:doc>/pages/<int:page>.png")
def page_image(doc: str, page: int) -> Response:
    """One page of an indexed document as PNG, from the bytes that were indexed (redacted words blacked out,
    faces blurred), optionally with a box shaded, so a citation can be shown."""
    settings = _settings()
    namespace = _namespace_arg()
    authorize_namespace(namespace)
    bbox = _bbox_arg()
    try:
        png = indexed_page_png(settings, namespace, doc, page, settings.api_page_dpi, bbox, reader_principals())
    except (PageImageError, PageTooLarge) as exc:
        status, code = PAGE_IMAGE_ERRORS.get(type(exc), (404, "page_image_unavailable"))
        raise ApiError(status, code, str(exc), {"Retry-After": "5"} if status == 503 else None) from exc
    except DocumentError as exc:
        raise ApiError(422, "page_image_unavailable", f"cannot render '{printable(doc)}': {exc.reason}") from exc
    response = Response(png, mimetype="image/png")
    response.cache_control.private = True  # the image needs a token: shared caches must not keep it
    response.cache_control.max_age = settings.api_page_max_age_s
    response.vary.add("Authorization")
    response.add_etag()
    return response.make_conditional(request)


def _settings() -> Settings:
    return current_app.extensions["pagelens"].settings


def _namespace_arg() -> str:
    namespace = request.args.get("namespace", "")
    if not namespace:
        raise ApiError(400, "invalid_request", "the 'namespace' query parameter is required")
    try:
        return validate_namespace(namespace)
    except InvalidNamespace as exc:
        raise ApiError(400, "invalid_request", str(exc)) from exc


def _int_arg(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name, "")
    if raw == "":
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise ApiError(400, "invalid_request", f"{name} must be a whole number from {low} to {high}")
    return int(raw)


def document_json(row: DocumentRecord) -> dict[str, Any]:
    """One registry row as the documents view shows it (not its source URI or content hash)."""
    return {"doc": row.doc_id, "status": row.status, "reason": row.reason, "pages": row.pages,
            "ocr_pages": row.ocr_pages, "tables": row.tables, "figures": row.figures, "chunks": row.chunks,
            "seconds": row.seconds, "model_version": row.model_version,
            "updated_at": row.updated_at.replace(tzinfo=row.updated_at.tzinfo or dt.UTC).isoformat(timespec="seconds")}


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
