"""Query-side spans, collected through a real OTLP/HTTP receiver: one trace per request, joined to the caller's."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask.testing import FlaskClient

from pagelens.settings import Settings
from pagelens.tokens import create_token
from pagelens.tracing import flush_tracing, reset_tracing
from query_api import create_app
from tests.llm_server import MODEL_ALIAS, LlamaServer, RecordingProxy, smollm2_gguf
from tests.otlp_receiver import OtlpReceiver, ReceivedSpan

pytestmark = pytest.mark.integration  # Milvus Lite, MiniLM, the OTLP exporter over HTTP, llama.cpp for one test
CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
QUESTION = {"question": "Which region had the most revenue?", "namespace": "finance", "k": 3}


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as running:
        yield running
    reset_tracing()


def traced_client(api_settings: Settings, receiver: OtlpReceiver, **overrides: object) -> tuple[FlaskClient, str]:
    settings = api_settings.model_copy(update={"otel_exporter": "otlp", "otel_endpoint": receiver.url,
                                               "otel_service_name": "pagelens-api", **overrides})
    return create_app(settings).test_client(), create_token(settings, ["finance"], "tracing test")


def ask(client: FlaskClient, token: str, path: str = "/v1/query", traceparent: str = "") -> dict:
    headers = {"Authorization": f"Bearer {token}"} | ({"traceparent": traceparent} if traceparent else {})
    response = client.post(path, json=QUESTION, headers=headers)
    assert response.status_code == 200, response.json
    flush_tracing()  # the batch processor exports now, over HTTP, to the receiver
    return response.json


def children(spans: list[ReceivedSpan], parent: ReceivedSpan) -> list[ReceivedSpan]:
    return sorted((s for s in spans if s.parent_id == parent.span_id), key=lambda s: s.start_ns)


def test_a_query_is_one_trace_under_the_callers_span_with_each_stage_a_child(api_settings, receiver) -> None:
    client, token = traced_client(api_settings, receiver)
    ask(client, token, traceparent=f"00-{CALLER_TRACE}-{CALLER_SPAN}-01")

    (root,) = receiver.named("POST /v1/query")
    assert root.trace_id == CALLER_TRACE and root.parent_id == CALLER_SPAN  # the caller's traceparent was honoured
    assert root.service == "pagelens-api" and root.attributes["http.response.status_code"] == 200
    assert {s.trace_id for s in receiver.spans} == {CALLER_TRACE}
    assert [s.name for s in children(receiver.spans, root)] == ["retrieve", "generate_answer"]

    (retrieval,) = receiver.named("retrieve")
    assert retrieval.attributes["mode"] == "hybrid" and retrieval.attributes["namespace"] == "finance"
    legs = [s for s in children(receiver.spans, retrieval) if s.name == "query_vector"]
    assert sorted(s.attributes["leg"] for s in legs) == ["bm25", "dense"]  # CLIP is off in these settings
    assert all(s.attributes["hits"] > 0 for s in legs)  # leg threads kept the request's context
    (fuse,) = receiver.named("fuse")
    assert fuse.parent_id == retrieval.span_id and fuse.start_ns >= max(s.end_ns for s in legs)
    (second_stage,) = receiver.named("rerank")
    assert second_stage.parent_id == retrieval.span_id and second_stage.start_ns >= fuse.end_ns

    (generation,) = receiver.named("generate_answer")
    assert generation.attributes["answer.mode"] == "extractive" and "llm.model" not in generation.attributes


def test_without_a_traceparent_each_request_starts_its_own_trace(api_settings, receiver) -> None:
    client, token = traced_client(api_settings, receiver)
    ask(client, token, path="/v1/search")
    ask(client, token, path="/v1/search")
    roots = receiver.named("POST /v1/search")
    assert len(roots) == 2 and all(r.parent_id == "" for r in roots)
    assert len({r.trace_id for r in roots}) == 2
    assert not receiver.named("generate_answer")  # search does not answer


def test_a_refused_request_is_traced_with_its_status(api_settings, receiver) -> None:
    client, _ = traced_client(api_settings, receiver)
    assert client.post("/v1/query", json=QUESTION, headers={"Authorization": "Bearer wrong"}).status_code == 401
    flush_tracing()
    (root,) = receiver.named("POST /v1/query")
    assert root.attributes["http.response.status_code"] == 401 and not receiver.named("retrieve")


def test_an_endpoint_failure_is_on_the_generation_span_as_the_fallback_reason(api_settings, receiver) -> None:
    with RecordingProxy("http://127.0.0.1:9", fail_status=503) as failing:
        client, token = traced_client(api_settings, receiver, llm_base_url=failing.url, llm_model="small")
        body = ask(client, token)
    assert body["answer"]["mode"] == "extractive-fallback"
    (generation,) = receiver.named("generate_answer")
    assert generation.attributes["answer.mode"] == "extractive-fallback"
    assert generation.attributes["llm.model"] == "small"
    assert generation.attributes["fallback_reason"] == body["answer"]["fallback_reason"]
    assert "503" in generation.attributes["fallback_reason"]


def test_the_llm_call_carries_the_trace_and_its_token_counts_are_recorded(api_settings, receiver, tmp_path) -> None:
    pytest.importorskip("llama_cpp", reason="llama-cpp-python[server] is not installed (pip install -r requirements-dev.txt)")
    with LlamaServer(smollm2_gguf(), tmp_path / "llm.log") as llm, RecordingProxy(llm.url) as proxy:
        client, token = traced_client(api_settings, receiver, llm_base_url=proxy.url, llm_model=MODEL_ALIAS,
                                      llm_max_tokens=32, llm_timeout_s=60.0)
        body = ask(client, token, traceparent=f"00-{CALLER_TRACE}-{CALLER_SPAN}-01")
    assert body["answer"]["mode"] == "generated"
    (generation,) = receiver.named("generate_answer")
    (exchange,) = proxy.exchanges
    version, trace_id, parent_id, flags = exchange.headers["traceparent"].split("-")
    assert (version, trace_id, parent_id, flags) == ("00", CALLER_TRACE, generation.span_id, "01")  # nests here
    assert generation.attributes["llm.model"] == MODEL_ALIAS
    usage = exchange.response["usage"]
    assert generation.attributes["llm.prompt_tokens"] == usage["prompt_tokens"] > 0
    assert generation.attributes["llm.completion_tokens"] == usage["completion_tokens"] > 0
