"""OpenTelemetry spans around the ingestion stages (exporter configured from settings)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace

_tracer = trace.get_tracer("pagelens")


@contextmanager
def span(name: str, **attributes: Any) -> Iterator[Any]:
    """A span named after the stage; a no-op until a tracer provider is configured."""
    with _tracer.start_as_current_span(name, attributes={k: v for k, v in attributes.items() if v is not None}) as s:
        yield s
