"""The query API through Flask's test client over a real Milvus Lite store and MiniLM: answers, auth, errors, ops."""

from __future__ import annotations

import contextlib
import io
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from pagelens.settings import Settings
from pagelens.tokens import create_token, revoke_token
from query_api import create_app
from tests.api_fixtures import FINANCE_DOC, OPS_DOC
from tests.llm_server import RecordingProxy

pytestmark = pytest.mark.integration
DOC_OF = {"finance": FINANCE_DOC, "ops": OPS_DOC}


@pytest.fixture(scope="module")
def app(api_settings: Settings) -> Flask:
    return create_app(api_settings)


@pytest.fixture(scope="module")
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture(scope="module")
def tokens(api_settings: Settings) -> dict[str, str]:
    return {"finance": create_token(api_settings, ["finance"], "finance team"),
            "ops": create_token(api_settings, ["ops"], "warehouse"),
            "both": create_token(api_settings, ["finance", "ops", "empty"], "auditor")}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def post(client: FlaskClient, path: str, body: Any, token: str | None) -> Any:
    return client.post(path, json=body, headers=bearer(token) if token else {})


# -- answers ------------------------------------------------------------------------------------
def test_search_returns_cited_chunks_with_page_image_links(client: FlaskClient, tokens: dict[str, str]) -> None:
    response = post(client, "/v1/search", {"question": "Which region had the most revenue?", "namespace": "finance",
                                           "k": 3}, tokens["finance"])
    assert response.status_code == 200, response.json
    body = response.json
    assert body["namespace"] == "finance" and body["mode"] == "hybrid" and body["k"] == 3
    assert len(body["results"]) == 3
    top = body["results"][0]
    assert (top["doc"], top["page"], top["label"]) == (FINANCE_DOC, 2, "[Page 2]")
    assert len(top["bbox"]) == 4 and top["snippet"] and top["score"] > 0
    assert top["image_url"].startswith(f"/v1/documents/{FINANCE_DOC}/pages/2.png?namespace=finance&bbox=")
    assert set(body["timings"]) == {"retrieval_ms", "total_ms"} and body["timings"]["total_ms"] >= body["timings"][
        "retrieval_ms"] > 0


def test_query_answers_extractively_with_citations(client: FlaskClient, tokens: dict[str, str]) -> None:
    response = post(client, "/v1/query", {"question": "What was Acme's revenue in Europe in 2025?",
                                          "namespace": "finance"}, tokens["finance"])
    assert response.status_code == 200, response.json
    answer = response.json["answer"]
    assert answer["mode"] == "extractive" and answer["fallback_reason"] == "" and answer["citations_removed"] == 0
    assert "Europe" in answer["text"] and "[Page 2]" in answer["text"]
    assert any(c["page"] == 2 and c["doc"] == FINANCE_DOC for c in answer["citations"])
    assert set(response.json["timings"]) == {"retrieval_ms", "generation_ms", "total_ms"}


def test_filters_and_modes_narrow_the_results(client: FlaskClient, tokens: dict[str, str]) -> None:
    body = {"question": "revenue units shipped memo", "namespace": "finance", "k": 20, "mode": "bm25",
            "filters": {"page_from": 2, "page_to": 3}}
    results = post(client, "/v1/search", body, tokens["finance"]).json["results"]
    assert results and {r["page"] for r in results} <= {2, 3}
    body["filters"], body["mode"] = {"kind": "table"}, "dense"
    results = post(client, "/v1/search", body, tokens["finance"]).json["results"]
    assert results and all("|" in r["snippet"] for r in results)  # table rows are `cell | cell` lines
    body["filters"] = {"doc": OPS_DOC}  # another namespace's document: nothing, not its chunks
    assert post(client, "/v1/search", body, tokens["finance"]).json["results"] == []
    body["filters"] = {"doc": 'Übersicht "Q3"\n\\ \u00dc\x00.pdf'}  # any characters are one literal, never syntax
    response = post(client, "/v1/search", body, tokens["finance"])
    assert response.status_code == 200 and response.json["results"] == []


def test_generated_answer_with_unsupported_citation_is_cleaned_and_counted(api_settings: Settings,
                                                                           tokens: dict[str, str]) -> None:
    with canned_llm("Europe brought the most revenue [Page 2], as did Mars [Page 99].") as url:
        client = create_app(api_settings.model_copy(update={"llm_base_url": url})).test_client()
        before = metric(client, "citations_removed_total")
        response = post(client, "/v1/query", {"question": "Which region had the most revenue?", "namespace": "finance"},
                        tokens["finance"])
    answer = response.json["answer"]
    assert response.status_code == 200 and answer["mode"] == "generated"
    assert answer["citations_removed"] == 1 and "[Page 99]" not in answer["text"] and "[Page 2]" in answer["text"]
    assert metric(client, "citations_removed_total") == before + 1


def test_failing_llm_endpoint_falls_back_with_the_reason(api_settings: Settings, tokens: dict[str, str]) -> None:
    with RecordingProxy("http://127.0.0.1:9", fail_status=503) as proxy:
        client = create_app(api_settings.model_copy(update={"llm_base_url": proxy.url})).test_client()
        response = post(client, "/v1/query", {"question": "Which region had the most revenue?", "namespace": "finance"},
                        tokens["finance"])
    answer = response.json["answer"]
    assert response.status_code == 200 and answer["mode"] == "extractive-fallback"
    assert "HTTP 503" in answer["fallback_reason"] and answer["citations"]


# -- access control -----------------------------------------------------------------------------
def test_missing_wrong_or_revoked_token_is_401_with_a_bearer_challenge(client: FlaskClient, api_settings: Settings) -> None:
    body = {"question": "revenue", "namespace": "finance"}
    doomed = create_token(api_settings, ["finance"])
    assert post(client, "/v1/search", body, doomed).status_code == 200
    revoke_token(api_settings, doomed)
    for token in (None, "pl_not-a-real-token", "garbage", doomed):
        response = post(client, "/v1/search", body, token)
        assert response.status_code == 401, token
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert response.json["error"]["code"] in ("unauthorized", "invalid_token")
    response = client.post("/v1/search", json=body, headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert response.status_code == 401


def test_other_namespace_is_403_and_unindexed_granted_namespace_is_404(client: FlaskClient,
                                                                      tokens: dict[str, str]) -> None:
    response = post(client, "/v1/query", {"question": "revenue", "namespace": "finance"}, tokens["ops"])
    assert response.status_code == 403 and "finance" in response.json["error"]["message"]
    response = post(client, "/v1/search", {"question": "revenue", "namespace": "empty"}, tokens["both"])
    assert response.status_code == 404 and response.json["error"]["code"] == "namespace_not_found"
    assert "pagelens ingest" in response.json["error"]["message"]


QUESTIONS = [
    "What was the revenue in Europe?", "Which region grew fastest?", "How many units were shipped in Q4?",
    "Who signed the letter from the chief executive?", "What does the memo say about the robot arm?",
    "What was found during the warehouse inspection?", "Which aisle had damaged racking?", "Fire extinguisher status",
    "When is the next inspection due?", "Who is the inspector?", "revenue by region table", "units shipped per quarter",
    "calibration interval", "contact e-mail address", "safety issues", "total revenue 2025", "Asia Pacific share",
    "North America change", "scanned memo", "annual report", "forklift", "loading dock", "emergency exit blocked",
    "inspection note", "quarterly shipments chart",
]


def test_no_chunk_leaks_across_namespaces(client: FlaskClient, tokens: dict[str, str]) -> None:
    """50 queries from each side, many about the other namespace's documents: every hit is the token's own."""
    returned = 0
    for own, other in (("finance", "ops"), ("ops", "finance")):
        for i, question in enumerate(QUESTIONS * 2):
            mode = ("hybrid", "bm25", "dense", "concat")[i % 4]
            path = "/v1/query" if i % 5 == 0 else "/v1/search"
            body = {"question": question, "namespace": own, "k": 50, "mode": mode}
            if i % 7 == 0:  # a filter naming the other side's document, or trying to widen the expression
                body["filters"] = {"doc": DOC_OF[other] if i % 2 else f'x" or namespace == "{other}'}
            response = post(client, path, body, tokens[own])
            assert response.status_code == 200, response.json
            hits = response.json["results"] if path == "/v1/search" else response.json["answer"]["citations"]
            assert {h["doc"] for h in hits} <= {DOC_OF[own]}, (question, hits)
            returned += len(hits)
            crossed = post(client, path, {"question": question, "namespace": other}, tokens[own])
            assert crossed.status_code == 403
    assert returned > 200  # the namespaces were searched, not silently empty


# -- page images --------------------------------------------------------------------------------
def test_page_image_is_a_cacheable_png_with_optional_highlight(client: FlaskClient, tokens: dict[str, str]) -> None:
    from PIL import Image

    url = f"/v1/documents/{FINANCE_DOC}/pages/2.png?namespace=finance"
    plain = client.get(url, headers=bearer(tokens["finance"]))
    assert plain.status_code == 200 and plain.mimetype == "image/png"
    assert plain.headers["Cache-Control"] in ("private, max-age=3600", "max-age=3600, private")
    assert Image.open(io.BytesIO(plain.data)).size[0] > 500
    shaded = client.get(url + "&bbox=68,140,527,272", headers=bearer(tokens["finance"]))
    assert shaded.status_code == 200 and shaded.data != plain.data
    again = client.get(url, headers={**bearer(tokens["finance"]), "If-None-Match": plain.headers["ETag"]})
    assert again.status_code == 304


@pytest.mark.parametrize(("url", "token", "status", "code"), [
    (f"/v1/documents/{FINANCE_DOC}/pages/9.png?namespace=finance", "finance", 404, "page_not_found"),
    ("/v1/documents/nope.pdf/pages/1.png?namespace=finance", "finance", 404, "document_not_found"),
    (f"/v1/documents/{FINANCE_DOC}/pages/1.png?namespace=ops", "ops", 404, "document_not_found"),
    (f"/v1/documents/{FINANCE_DOC}/pages/1.png?namespace=finance", "ops", 403, "forbidden"),
    (f"/v1/documents/{FINANCE_DOC}/pages/1.png?namespace=finance", None, 401, "unauthorized"),
    (f"/v1/documents/{FINANCE_DOC}/pages/1.png", "finance", 400, "invalid_request"),
    (f"/v1/documents/{FINANCE_DOC}/pages/1.png?namespace=finance&bbox=1,2,3", "finance", 400, "invalid_request"),
    (f"/v1/documents/{FINANCE_DOC}/pages/1.png?namespace=finance&bbox=1,2,nan,4", "finance", 400, "invalid_request"),
])
def test_page_image_errors(client: FlaskClient, tokens: dict[str, str], url: str, token: str | None, status: int,
                           code: str) -> None:
    response = client.get(url, headers=bearer(tokens[token]) if token else {})
    assert response.status_code == status and response.json["error"]["code"] == code, response.json


# -- bad requests -------------------------------------------------------------------------------
BAD = [
    ({"namespace": "finance"}, "'question' is required"),
    ({"question": "   ", "namespace": "finance"}, "question is empty"),
    ({"question": "x" * 2001, "namespace": "finance"}, "at most 2000"),
    ({"question": "q", "namespace": "finance", "k": 0}, "k must be between 1 and 50"),
    ({"question": "q", "namespace": "finance", "k": 51}, "k must be between 1 and 50"),
    ({"question": "q", "namespace": "finance", "k": "5"}, "k: Input should be a valid integer"),
    ({"question": "q", "namespace": "finance", "k": True}, "k: Input should be a valid integer"),
    ({"question": "q", "namespace": "finance", "mode": "magic"}, "unknown mode 'magic'"),
    ({"question": "q", "namespace": "fin-ance"}, "invalid namespace"),
    ({"question": 42, "namespace": "finance"}, "question: Input should be a valid string"),
    ({"question": "q", "namespace": "finance", "top_k": 3}, "unknown field 'top_k'; allowed: question, namespace"),
    ({"question": "q", "namespace": "finance", "filters": {"pages": 2}}, "unknown field 'filters.pages'"),
    ({"question": "q", "namespace": "finance", "filters": {"page_from": 5, "page_to": 2}}, "must not exceed"),
    ({"question": "q", "namespace": "finance", "filters": {"kind": "video"}}, "filters.kind"),
    ({"question": "q", "namespace": "finance", "filters": []}, "filters"),
    ({"question": "\ud800", "namespace": "finance"}, "unpaired surrogate"),
    ([1, 2], "must be a JSON object"),
    (None, "must be a JSON object"),
]


@pytest.mark.parametrize(("body", "message"), BAD)
@pytest.mark.parametrize("path", ["/v1/search", "/v1/query"])
def test_bad_bodies_get_400_saying_what_to_fix(client: FlaskClient, tokens: dict[str, str], path: str, body: Any,
                                                message: str) -> None:
    response = client.post(path, data=json.dumps(body), content_type="application/json",
                           headers=bearer(tokens["finance"]))
    assert response.status_code == 400, response.json
    assert response.json["error"]["code"] == "invalid_request" and message in response.json["error"]["message"]


@pytest.mark.parametrize(("data", "content_type", "status", "code"), [
    (b'{"question": "q", ', "application/json", 400, "malformed_json"),
    (b"\xff\xfe\x00garbage", "application/json", 400, "malformed_json"),
    (b'{"question": NaN, "namespace": "finance"}', "application/json", 400, "malformed_json"),
    (b"[" * 50_000, "application/json", 400, "malformed_json"),  # deeper than the JSON parser recurses
    (b"question=q&namespace=finance", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
    (b'{"question": "' + b"x" * 70_000 + b'"}', "application/json", 413, "body_too_large"),
])
def test_malformed_bodies_get_4xx_json(client: FlaskClient, tokens: dict[str, str], data: bytes, content_type: str,
                                       status: int, code: str) -> None:
    response = client.post("/v1/search", data=data, content_type=content_type, headers=bearer(tokens["finance"]))
    assert response.status_code == status and response.json["error"]["code"] == code, response.json


def test_unknown_routes_and_methods_answer_json(client: FlaskClient) -> None:
    response = client.get("/v2/nothing")
    assert response.status_code == 404 and response.json["error"]["code"] == "not_found"
    response = client.get("/v1/search")
    assert response.status_code == 405 and "POST" in response.headers["Allow"]
    assert response.json["error"]["code"] == "method_not_allowed"


def test_namespaces_lists_what_the_token_may_read_and_is_indexed(client: FlaskClient, tokens: dict[str, str]) -> None:
    listed = {name: client.get("/v1/namespaces", headers=bearer(token)).json["namespaces"]
              for name, token in tokens.items()}
    assert listed == {"finance": ["finance"], "ops": ["ops"], "both": ["finance", "ops"]}  # "empty" has no index
    assert client.get("/v1/namespaces").status_code == 401


def test_auth_off_serves_every_namespace_without_a_token(api_settings: Settings) -> None:
    client = create_app(api_settings.model_copy(update={"api_auth": False})).test_client()
    for namespace in ("finance", "ops"):
        response = client.post("/v1/search", json={"question": "inspection revenue", "namespace": namespace})
        assert response.status_code == 200 and {r["doc"] for r in response.json["results"]} == {DOC_OF[namespace]}


# -- operations ---------------------------------------------------------------------------------
def test_health_and_readiness_follow_the_warm_up(api_settings: Settings) -> None:
    app = create_app(api_settings)
    client = app.test_client()
    assert client.get("/healthz").json == {"status": "ok"}
    response = client.get("/readyz")
    assert response.status_code == 503 and response.json["checks"]["models"] == {"ok": False, "detail": "loading"}
    assert "models: loading" in response.json["error"]["message"]
    app.extensions["pagelens"].warmup.ensure()
    response = client.get("/readyz")
    assert response.status_code == 200, response.json
    assert response.json["checks"]["collections"] == {"ok": True, "detail": "every indexed namespace is loaded"}
    detailed = client.get("/readyz", headers=bearer(create_token(api_settings, ["finance", "ops"], "probe")))
    assert detailed.json["checks"]["collections"] == {"ok": True, "detail": "loaded: finance, ops"}


def test_readiness_names_the_missing_index(tmp_path) -> None:
    app = create_app(Settings(data_dir=tmp_path / "data", api_warm_on_start=False))
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert "collections: no namespace has an index yet" in response.json["error"]["message"]


def test_metrics_count_requests_by_route_and_time_stages(client: FlaskClient, tokens: dict[str, str]) -> None:
    post(client, "/v1/query", {"question": "revenue in Europe", "namespace": "finance"}, tokens["finance"])
    post(client, "/v1/search", {"question": "revenue", "namespace": "finance"}, None)
    text = client.get("/metrics").get_data(as_text=True)
    assert metric(client, 'http_requests_total{route="/v1/query",status="200"}') >= 1
    assert metric(client, 'http_requests_total{route="/v1/search",status="401"}') >= 1
    assert 'request_latency_seconds_bucket{le="0.5",route="/v1/query"}' in text
    assert metric(client, 'retrieval_duration_seconds_count{mode="hybrid"}') >= 1
    assert metric(client, 'generation_duration_seconds_count{answer_mode="extractive"}') >= 1
    assert "# TYPE citations_removed_total counter" in text


def test_openapi_document_is_valid_and_lists_exactly_the_routes(app: Flask, client: FlaskClient) -> None:
    from openapi_spec_validator import validate

    document = client.get("/openapi.json").json
    validate(document)
    documented = {(path, method.upper()) for path, item in document["paths"].items() for method in item}
    registered = {(_openapi_path(rule.rule), method) for rule in app.url_map.iter_rules()
                  for method in rule.methods - {"HEAD", "OPTIONS"} if rule.endpoint != "static"}
    assert documented == registered


def _openapi_path(rule: str) -> str:
    import re

    return re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule)


def metric(client: FlaskClient, sample: str) -> float:
    """The value of one sample line of /metrics (0 when absent)."""
    for line in client.get("/metrics").get_data(as_text=True).splitlines():
        if line.startswith(sample + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@contextlib.contextmanager
def canned_llm(text: str) -> Iterator[str]:
    """An OpenAI-compatible endpoint on 127.0.0.1 answering every chat completion with `text`; yields its base URL."""
    payload = json.dumps({"id": "c1", "object": "chat.completion", "created": 0, "model": "canned",
                          "choices": [{"index": 0, "finish_reason": "stop",
                                       "message": {"role": "assistant", "content": text}}],
                          "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # the name http.server dispatches POST requests to
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:  # quiet test output
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()
