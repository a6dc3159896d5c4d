"""The error contract: every failure is `{"error": {"code": ..., "message": ...}}` with a 4xx/5xx status.

On the OpenAI-compatible routes the same error also carries OpenAI's `type` and `param`, so the openai SDK
and chat front-ends raise and show it as they would OpenAI's own (AuthenticationError for 401, …).
"""

from __future__ import annotations

import logging

from flask import Flask, Response, has_request_context, jsonify, request
from werkzeug.exceptions import HTTPException

from pagelens.errors import IndexMissing, StoreUnavailable

log = logging.getLogger(__name__)
# Werkzeug's names ("Not Found", "Request Entity Too Large") as stable codes; messages say what to fix.
HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
              413: "body_too_large", 415: "unsupported_media_type", 503: "unavailable"}
HTTP_MESSAGES = {
    404: "no such route; see /openapi.json for the endpoints",
    413: "request body too large (PAGELENS_API_MAX_BODY_BYTES)",
}


OPENAI_ROUTES = ("/v1/chat/", "/v1/models")
OPENAI_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                404: "invalid_request_error", 405: "invalid_request_error", 413: "invalid_request_error",
                415: "invalid_request_error", 422: "invalid_request_error", 429: "rate_limit_error"}


class ApiError(Exception):
    """A request the API refuses, with the status, a stable code and a message saying what to fix."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None,
                 param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}
        self.param = param  # the request field at fault (OpenAI's error `param`)


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None,
                   param: str | None = None) -> Response:
    error: dict[str, str | None] = {"code": code, "message": message}
    if has_request_context() and request.path.startswith(OPENAI_ROUTES):
        error |= {"type": OPENAI_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error"),
                  "param": param}
    response = jsonify(error=error)
    response.status_code = status
    response.headers.update(headers or {})
    return response


def register_error_handlers(app: Flask) -> None:
    from pymilvus.exceptions import MilvusException

    @app.errorhandler(ApiError)
    def api_error(exc: ApiError) -> Response:
        return error_response(exc.status, exc.code, exc.message, exc.headers, exc.param)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        message = HTTP_MESSAGES.get(status) or exc.description or exc.name
        headers = {k: v for k, v in exc.get_headers() if k.lower() not in ("content-type", "content-length")}
        return error_response(status, HTTP_CODES.get(status, exc.name.lower().replace(" ", "_")), message, headers)

    @app.errorhandler(IndexMissing)
    def index_missing(exc: IndexMissing) -> Response:
        return error_response(404, "namespace_not_found", str(exc))

    @app.errorhandler(StoreUnavailable)
    def store_unavailable(exc: StoreUnavailable) -> Response:
        return error_response(503, "store_unavailable", str(exc), {"Retry-After": "5"})

    @app.errorhandler(MilvusException)
    def milvus_failed(exc: MilvusException) -> Response:
        log.exception("Milvus request failed")
        return error_response(503, "store_unavailable", f"the vector store failed ({exc.message}); retry later",
                              {"Retry-After": "5"})

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Response:
        log.exception("Unhandled error in the query API")
        return error_response(500, "internal_error", "an internal error occurred; it was logged")
