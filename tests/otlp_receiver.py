"""A real OTLP/HTTP trace receiver on 127.0.0.1: decodes each protobuf ExportTraceServiceRequest it is sent."""

from __future__ import annotations

from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.loopback_http import LoopbackHTTPServer, QuietHandler


@dataclass
class ReceivedSpan:
    """One span as the collector saw it on the wire (ids as hex, like a `traceparent`)."""

    name: str
    trace_id: str
    span_id: str
    parent_id: str
    start_ns: int
    end_ns: int
    status_code: int  # 0 unset, 1 ok, 2 error
    service: str
    attributes: dict[str, Any] = field(default_factory=dict)


class OtlpReceiver(LoopbackHTTPServer):
    """POST /v1/traces (application/x-protobuf), as an OpenTelemetry collector's HTTP receiver takes it."""

    path = "/v1/traces"

    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []
        self.requests = 0
        super().__init__()

    def named(self, name: str) -> list[ReceivedSpan]:
        return [s for s in self.spans if s.name == name]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:  # the name http.server dispatches POST requests to
                from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
                    ExportTraceServiceRequest,
                    ExportTraceServiceResponse,
                )

                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.path != "/v1/traces" or self.headers.get("Content-Type") != "application/x-protobuf":
                    self.send_response(415 if self.path == "/v1/traces" else 404)
                    self.end_headers()
                    return
                receiver.spans += _decode(ExportTraceServiceRequest.FromString(body))
                receiver.requests += 1
                self.reply(200, ExportTraceServiceResponse().SerializeToString(), "application/x-protobuf")

        return Handler


def _decode(request: Any) -> list[ReceivedSpan]:
    spans = []
    for resource_spans in request.resource_spans:
        resource = {kv.key: _value(kv.value) for kv in resource_spans.resource.attributes}
        for scope_spans in resource_spans.scope_spans:
            for s in scope_spans.spans:
                spans.append(ReceivedSpan(
                    name=s.name, trace_id=s.trace_id.hex(), span_id=s.span_id.hex(), parent_id=s.parent_span_id.hex(),
                    start_ns=s.start_time_unix_nano, end_ns=s.end_time_unix_nano, status_code=s.status.code,
                    service=str(resource.get("service.name", "")),
                    attributes={kv.key: _value(kv.value) for kv in s.attributes}))
    return spans


def _value(any_value: Any) -> Any:
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind) if kind else None
