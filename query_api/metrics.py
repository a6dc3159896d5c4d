"""Prometheus metrics of the query API, per process or aggregated over gunicorn workers (multiprocess mode).

prometheus_client switches to multiprocess storage by itself when `PROMETHEUS_MULTIPROC_DIR` is set before
it is imported (that variable is its interface, not a pagelens setting); /metrics then sums every
worker's files instead of reporting the one worker that happened to answer the scrape.
"""

from __future__ import annotations

import os
import time

from flask import Flask, Response, g, request
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# 1.2 s is the query SLO's threshold: a bucket edge there makes the SLO ratio exact instead of interpolated.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.2, 1.5, 2.5, 5.0, 10.0, 30.0, 60.0)

REQUEST_LATENCY = Histogram("request_latency_seconds", "Time to answer an HTTP request, by route template.",
                            ["route"], buckets=LATENCY_BUCKETS)
HTTP_REQUESTS = Counter("http_requests", "HTTP requests answered, by route template and status.", ["route", "status"])
RETRIEVAL_SECONDS = Histogram("retrieval_duration_seconds", "Time spent retrieving chunks, by retrieval mode.",
                              ["mode"], buckets=LATENCY_BUCKETS)
GENERATION_SECONDS = Histogram("generation_duration_seconds", "Time spent writing an answer, by answer mode.",
                               ["answer_mode"], buckets=LATENCY_BUCKETS)
CITATIONS_REMOVED = Counter("citations_removed", "Citations a model made that named no retrieved excerpt (removed).")
ANSWERS = Counter("answers", "Answers written, by answer mode (extractive, generated, extractive-fallback).",
                  ["answer_mode"])
# The seed's error budget counts an answer that cited something it was not given as an error, even when it is a 200.
ANSWERS_WITH_REMOVED_CITATIONS = Counter("answers_with_removed_citations",
                                         "Answers from which at least one unsupported citation was removed.")


def install_request_metrics(app: Flask) -> None:
    """Time and count every request by its route template (never the raw path: doc ids would explode the labels)."""

    @app.before_request
    def _start_timer() -> None:
        g.request_started = time.perf_counter()

    @app.after_request
    def _observe(response: Response) -> Response:
        route = request.url_rule.rule if request.url_rule is not None else "<unmatched>"
        started = g.get("request_started")
        if started is not None:
            REQUEST_LATENCY.labels(route).observe(time.perf_counter() - started)
        HTTP_REQUESTS.labels(route, str(response.status_code)).inc()
        return response


def metrics_response() -> Response:
    registry = REGISTRY
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


def observe_retrieval(mode: str, seconds: float) -> None:
    RETRIEVAL_SECONDS.labels(mode).observe(seconds)


def observe_answer(answer_mode: str, seconds: float, citations_removed: int) -> None:
    GENERATION_SECONDS.labels(answer_mode).observe(seconds)
    ANSWERS.labels(answer_mode).inc()
    if citations_removed:
        CITATIONS_REMOVED.inc(citations_removed)
        ANSWERS_WITH_REMOVED_CITATIONS.inc()
