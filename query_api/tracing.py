"""One OpenTelemetry span per request, the parent of every stage span the question path opens.

The caller's W3C `traceparent` (a gateway, another service) becomes the parent, so the API's spans join the
caller's trace; the LLM call carries the trace on (pagelens.answer). Spans go where PAGELENS_OTEL_EXPORTER says.
"""

from __future__ import annotations

from flask import Flask, Response, g, request

from pagelens.tracing import end_span, start_span

TRACE_HEADERS = ("traceparent", "tracestate")


def install_request_tracing(app: Flask) -> None:
    """Open a span named `<METHOD> <route template>` before each request and close it when the request ends."""

    @app.before_request
    def _open_span() -> None:
        route = request.url_rule.rule if request.url_rule is not None else "<unmatched>"
        carrier = {name: request.headers[name] for name in TRACE_HEADERS if name in request.headers}
        g.request_span = start_span(f"{request.method} {route}", carrier, **{
            "http.request.method": request.method, "http.route": route})

    @app.after_request
    def _record_status(response: Response) -> Response:
        g.response_status = response.status_code
        return response

    @app.teardown_request
    def _close_span(exc: BaseException | None) -> None:
        status = g.pop("response_status", 500 if exc is not None else None)
        error = repr(exc) if exc is not None else (f"HTTP {status}" if status and status >= 500 else "")
        end_span(g.pop("request_span", None), error=error, **{"http.response.status_code": status})
