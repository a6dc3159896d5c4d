"""Metrics of the batch jobs (ingest runs, drift checks, sweeps of kept bytes), pushed to a Pushgateway when set.

Airflow tasks end before any scrape could reach them, so they push: each run replaces its own figures under the
grouping `job`/`namespace` (last-run gauges, not counters), and the alerting rules in k8s/monitoring read them.
A push that fails logs a warning and never fails the ingest or the drift check it describes.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from pagelens.drift import DriftResult
    from pagelens.settings import Settings

log = logging.getLogger(__name__)
INGEST_JOB, DRIFT_JOB, GC_JOB = "pagelens_ingest", "pagelens_drift", "pagelens_gc"
STATUSES = ("indexed", "skipped", "quarantined", "deleted", "expired")  # always pushed, 0 included: ratios stay defined


def push_ingest_run(settings: Settings, namespace: str, reports: Iterable[Mapping[str, Any]], seconds: float) -> bool:
    """Push one ingest run's outcome (its document reports as dicts), replacing that namespace's last run;
    False when no gateway is set."""
    if not settings.metrics_pushgateway:
        return False
    return _push(settings, INGEST_JOB, ingest_registry(reports, seconds), {"namespace": namespace}, replace=True)


def push_drift_check(settings: Settings, result: DriftResult) -> bool:
    """Push a finished drift check, added to what the gateway holds (not replacing it), so a drifted check keeps
    the time of the last clean one; False when no gateway is set."""
    if not settings.metrics_pushgateway:
        return False
    return _push(settings, DRIFT_JOB, drift_registry(result), {}, replace=False)


def push_gc_sweep(settings: Settings, summary: Mapping[str, Any]) -> bool:
    """Push a finished sweep of kept bytes (`pipeline/sweep.py`'s summary), replacing the last one; False when no
    gateway is set."""
    if not settings.metrics_pushgateway:
        return False
    return _push(settings, GC_JOB, gc_registry(summary), {}, replace=True)


def gc_registry(summary: Mapping[str, Any]) -> CollectorRegistry:
    """A finished sweep: what it deleted, what it left for being recent, and when it finished."""
    from prometheus_client import CollectorRegistry, Gauge

    registry = CollectorRegistry()
    Gauge("pagelens_gc_deleted_documents", "Unreferenced documents whose kept bytes the last sweep deleted.",
          registry=registry).set(summary["documents"])
    Gauge("pagelens_gc_deleted_bytes", "Bytes the last sweep deleted (content store and parse cache).",
          registry=registry).set(summary["bytes"])
    Gauge("pagelens_gc_kept_recent_documents", "Unreferenced documents the last sweep left: put within the grace.",
          registry=registry).set(summary["kept_recent"])
    Gauge("pagelens_gc_last_success_timestamp_seconds", "When the last sweep of kept bytes finished (Unix time).",
          registry=registry).set(time.time())
    return registry


def ingest_registry(reports: Iterable[Mapping[str, Any]], seconds: float) -> CollectorRegistry:
    """One ingest run's outcome: documents by status, pages, chunks, duration and when it finished."""
    from prometheus_client import CollectorRegistry, Gauge

    reports = list(reports)
    registry = CollectorRegistry()
    documents = Gauge("pagelens_ingest_documents", "Documents of the last ingest run, by outcome.", ["status"],
                      registry=registry)
    counts = Counter(r["status"] for r in reports)
    for status in sorted(set(STATUSES) | set(counts)):
        documents.labels(status).set(counts.get(status, 0))
    indexed = [r for r in reports if r["status"] == "indexed"]
    Gauge("pagelens_ingest_pages", "Pages parsed and indexed by the last ingest run.",
          registry=registry).set(sum(r.get("pages", 0) for r in indexed))
    Gauge("pagelens_ingest_chunks", "Chunks written by the last ingest run.",
          registry=registry).set(sum(r.get("chunks", 0) for r in indexed))
    Gauge("pagelens_ingest_duration_seconds", "Wall time of the last ingest run.", registry=registry).set(seconds)
    Gauge("pagelens_ingest_last_run_timestamp_seconds", "When the last ingest run finished (Unix time).",
          registry=registry).set(time.time())
    return registry


def drift_registry(result: DriftResult) -> CollectorRegistry:
    """A finished drift check: each encoder's median cosine, the threshold, and the time of the last clean check."""
    from prometheus_client import CollectorRegistry, Gauge

    registry = CollectorRegistry()
    median = Gauge("pagelens_drift_median_cosine", "Median cosine of the probe embeddings today vs the baseline.",
                   ["encoder"], registry=registry)
    for encoder in result.encoders:
        median.labels(encoder.encoder).set(encoder.median)
    Gauge("pagelens_drift_min_median", "Median below which drift is reported (PAGELENS_DRIFT_MIN_MEDIAN).",
          registry=registry).set(result.threshold)
    now = time.time()
    Gauge("pagelens_drift_last_run_timestamp_seconds", "When the last drift check finished (Unix time).",
          registry=registry).set(now)
    if not result.drifted:
        Gauge("pagelens_drift_last_success_timestamp_seconds", "When the last drift check found no drift (Unix time).",
              registry=registry).set(now)
    return registry


def _push(settings: Settings, job: str, registry: CollectorRegistry, grouping: dict[str, str], replace: bool) -> bool:
    from prometheus_client import push_to_gateway, pushadd_to_gateway

    push = push_to_gateway if replace else pushadd_to_gateway
    try:
        push(settings.metrics_pushgateway, job=job, registry=registry, grouping_key=grouping,
             timeout=settings.metrics_push_timeout_s)
    except OSError as exc:
        log.warning("Could not push %s metrics to the Pushgateway at %s (%s): check PAGELENS_METRICS_PUSHGATEWAY; "
                    "the run itself is unaffected", job, settings.metrics_pushgateway, exc)
        return False
    return True
