"""OpenTelemetry spans around the ingestion stages; the exporter comes from settings, and "none" costs nothing.

`PAGELENS_OTEL_EXPORTER=otlp` sends OTLP over HTTP/protobuf to `PAGELENS_OTEL_ENDPOINT` (a collector's traces
URL, e.g. http://otel-collector:4318/v1/traces; empty: the SDK's default or `OTEL_EXPORTER_OTLP_*`). HTTP, not
gRPC: one plain request per batch with a timeout, through any proxy or ingress, and no gRPC channel state for
spawned or forked workers to inherit. `console` prints spans to stderr (stdout carries the CLI's JSON).

Parser worker processes do not export: they record their spans in memory and hand them back with the parsed
pages, and the parent exports them (`collect_worker_spans`, `take_worker_spans`, `export_worker_spans`). One
exporter then sees the whole trace, a worker killed by its memory cap strands no export buffer, and a test's
in-memory exporter sees the worker spans too. The parent's span reaches a worker as a W3C `traceparent`
carrier (`context_carrier`, `remote_parent`), so the pages nest under the run's trace.

The query API opens one span per request (`start_span` / `end_span`, parented on the caller's `traceparent`);
retrieval legs run in threads and take the request's context with them (`in_current_context`).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from pagelens.settings import Settings

OTLP_TIMEOUT_S = 10.0
_PRIMITIVE = (str, bool, int, float)


class _NoSpan:
    """Stands in for a span while tracing is off: every method is a no-op."""

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None

    def is_recording(self) -> bool:
        return False


_NO_SPAN = contextlib.nullcontext(_NoSpan())


@dataclass
class _Tracing:
    provider: TracerProvider | None = None
    processor: SpanProcessor | None = None
    tracer: Any = None  # None: tracing is off and span() is a shared no-op
    key: tuple[str, str, str] | None = None  # the settings it was configured from
    pinned: bool = False  # an exporter passed in (tests) stays until reset_tracing()
    collected: InMemorySpanExporter | None = None  # worker processes: spans waiting to go back


_state = _Tracing()


def configure_tracing(settings: Settings, exporter: SpanExporter | None = None) -> None:
    """Install the exporter the settings name, once per process; `exporter` replaces it (tests: in-memory)."""
    key = (settings.otel_exporter, settings.otel_endpoint, settings.otel_service_name)
    if exporter is None and (_state.pinned or key == _state.key):
        return
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    if exporter is not None:
        _install(SimpleSpanProcessor(exporter), settings.otel_service_name, pinned=True)
    elif settings.otel_exporter == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        _install(SimpleSpanProcessor(ConsoleSpanExporter(out=sys.stderr)), settings.otel_service_name)
    elif settings.otel_exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        otlp = OTLPSpanExporter(endpoint=settings.otel_endpoint or None, timeout=OTLP_TIMEOUT_S)
        _install(BatchSpanProcessor(otlp), settings.otel_service_name)
    else:
        reset_tracing()
    _state.key = None if exporter is not None else key


def _install(processor: SpanProcessor, service_name: str, pinned: bool = False) -> None:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    reset_tracing()
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    provider.add_span_processor(processor)
    _state.provider, _state.processor, _state.pinned = provider, processor, pinned
    _state.tracer = provider.get_tracer("pagelens")


def reset_tracing() -> None:
    """Flush and drop the current exporter; spans are no-ops until the next configure_tracing."""
    if _state.provider is not None:
        _state.provider.shutdown()
    _state.provider = _state.processor = _state.tracer = _state.key = _state.collected = None
    _state.pinned = False


def flush_tracing() -> None:
    """Export buffered spans now: call before a process that may skip exit handlers ends (a forked task)."""
    if _state.provider is not None:
        _state.provider.force_flush()


def tracing_enabled() -> bool:
    return _state.tracer is not None


def span(name: str, **attributes: Any) -> AbstractContextManager[Any]:
    """A span named after the stage, current inside the block; a shared no-op while tracing is off."""
    tracer = _state.tracer
    if tracer is None:
        return _NO_SPAN
    values = {k: v if isinstance(v, _PRIMITIVE) else str(v) for k, v in attributes.items() if v is not None}
    return tracer.start_as_current_span(name, attributes=values)


def current_span_attribute(key: str, value: Any) -> None:
    """Set an attribute on the current span (a figure known only deep inside the stage); no-op while off."""
    if _state.tracer is None:
        return
    from opentelemetry import trace

    trace.get_current_span().set_attribute(key, value if isinstance(value, _PRIMITIVE) else str(value))


def context_carrier() -> dict[str, str]:
    """The current span as a W3C `traceparent` carrier for another process; {} while tracing is off."""
    if _state.tracer is None:
        return {}
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier)
    return carrier


@contextlib.contextmanager
def remote_parent(carrier: dict[str, str]) -> Iterator[None]:
    """Spans started inside the block are children of the span the carrier names."""
    if not carrier or _state.tracer is None:
        yield
        return
    from opentelemetry import context
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    token = context.attach(TraceContextTextMapPropagator().extract(carrier))
    try:
        yield
    finally:
        context.detach(token)


def start_span(name: str, carrier: dict[str, str], **attributes: Any) -> tuple[Any, Any] | None:
    """Open a span made current until `end_span` (hooks that cannot wrap a block: a web request's before/after).

    Its parent is the span the W3C carrier names (the caller's `traceparent`), else a new trace starts.
    None while tracing is off.
    """
    if _state.tracer is None:
        return None
    from opentelemetry import context, trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    parent = TraceContextTextMapPropagator().extract(carrier) if carrier else None
    values = {k: v if isinstance(v, _PRIMITIVE) else str(v) for k, v in attributes.items() if v is not None}
    opened = _state.tracer.start_span(name, context=parent, attributes=values)
    return opened, context.attach(trace.set_span_in_context(opened))


def end_span(handle: tuple[Any, Any] | None, error: str = "", **attributes: Any) -> None:
    """Close a span from `start_span`; `error` marks it failed with that description."""
    if handle is None:
        return
    from opentelemetry import context
    from opentelemetry.trace import Status, StatusCode

    opened, token = handle
    for key, value in attributes.items():
        if value is not None:
            opened.set_attribute(key, value if isinstance(value, _PRIMITIVE) else str(value))
    if error:
        opened.set_status(Status(StatusCode.ERROR, error))
    opened.end()
    with contextlib.suppress(ValueError):  # detached in another context (a streamed response): nothing to restore
        context.detach(token)


def in_current_context(fn: Callable[..., Any]) -> Callable[..., Any]:
    """`fn` bound to a copy of the caller's context, for a thread pool: spans it opens nest under the caller's."""
    return functools.partial(contextvars.copy_context().run, fn)


def collect_worker_spans() -> None:
    """In a worker process: record spans in memory, to be returned with the work (see the module docstring)."""
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    collected = InMemorySpanExporter()
    _install(SimpleSpanProcessor(collected), "pagelens-worker", pinned=True)
    _state.collected = collected


def take_worker_spans() -> list[dict[str, Any]]:
    """The spans this worker finished since the last call, as plain picklable data."""
    if _state.collected is None:
        return []
    spans = _state.collected.get_finished_spans()
    _state.collected.clear()
    return [_span_data(s) for s in spans]


def export_worker_spans(spans: list[dict[str, Any]]) -> None:
    """Export the spans a worker recorded through this process's exporter."""
    if _state.processor is None or _state.provider is None:
        return
    for data in spans:
        _state.processor.on_end(_readable_span(data, _state.provider))


def _span_data(s: ReadableSpan) -> dict[str, Any]:
    parent = s.parent
    return {"name": s.name, "trace_id": s.context.trace_id, "span_id": s.context.span_id,
            "parent_id": parent.span_id if parent else None, "parent_remote": bool(parent and parent.is_remote),
            "attributes": dict(s.attributes or {}), "start": s.start_time, "end": s.end_time,
            "events": [(e.name, dict(e.attributes or {}), e.timestamp) for e in s.events],
            "status": (s.status.status_code.value, s.status.description)}


def _readable_span(data: dict[str, Any], provider: TracerProvider) -> ReadableSpan:
    from opentelemetry.sdk.trace import Event, ReadableSpan
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope
    from opentelemetry.trace import SpanContext, Status, StatusCode, TraceFlags

    flags = TraceFlags(TraceFlags.SAMPLED)
    context = SpanContext(data["trace_id"], data["span_id"], is_remote=False, trace_flags=flags)
    parent = (SpanContext(data["trace_id"], data["parent_id"], is_remote=data["parent_remote"], trace_flags=flags)
              if data["parent_id"] else None)
    return ReadableSpan(
        data["name"], context=context, parent=parent, resource=provider.resource, attributes=data["attributes"],
        events=[Event(name, attrs, timestamp) for name, attrs, timestamp in data["events"]],
        status=Status(StatusCode(data["status"][0]), data["status"][1]), start_time=data["start"],
        end_time=data["end"], instrumentation_scope=InstrumentationScope("pagelens"))
