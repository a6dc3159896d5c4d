"""The OpenAI-compatible endpoints with the real openai SDK as the client, over HTTP on 127.0.0.1.

The Flask app (real Milvus Lite store with two namespaces, real MiniLM) is served by werkzeug's threaded
server on a free loopback port; the SDK talks to it exactly as it talks to OpenAI: plain and streamed chat
completions, model listing, follow-up questions, and errors raised as the SDK's own exception classes.
"""

from __future__ import annotations

import contextlib
import threading
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from pagelens.settings import Settings
from pagelens.tokens import create_token
from tests.api_fixtures import FINANCE_DOC
from tests.llm_server import RecordingProxy

pytestmark = pytest.mark.integration
ALIASES = {"pagelens-finance": "finance", "pagelens-ops": "ops"}
REVENUE = "Which region had the most revenue?"


@contextlib.contextmanager
def serve(settings: Settings) -> Iterator[str]:
    """The query API on a free 127.0.0.1 port for the duration of a `with`/fixture; yields its base URL."""
    from werkzeug.serving import make_server

    from query_api import create_app

    server = make_server("127.0.0.1", 0, create_app(settings), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def chat_settings(api_settings: Settings) -> Settings:
    return api_settings.model_copy(update={"api_model_aliases": ALIASES})


@pytest.fixture(scope="module")
def base_url(chat_settings: Settings) -> Iterator[str]:
    with serve(chat_settings) as url:
        yield url


@pytest.fixture(scope="module")
def tokens(api_settings: Settings) -> dict[str, str]:
    return {"finance": create_token(api_settings, ["finance"], "chat front-end"),
            "both": create_token(api_settings, ["finance", "ops", "empty"], "auditor")}


def sdk(base_url: str, token: str) -> Any:
    import openai

    return openai.OpenAI(base_url=f"{base_url}/v1", api_key=token, max_retries=0, timeout=120)


def ask(base_url: str, token: str, *messages: str, model: str = "pagelens-finance", **kwargs: Any) -> Any:
    """A chat completion of alternating user/assistant messages (the last one the user's)."""
    roles = ["user", "assistant"] * len(messages)
    turns = [{"role": role, "content": text} for role, text in zip(roles, messages, strict=False)]
    return sdk(base_url, token).chat.completions.create(model=model, messages=turns, **kwargs)


def test_models_are_the_namespaces_and_aliases_the_token_may_read(base_url: str, tokens: dict[str, str]) -> None:
    listed = {m.id: m for m in sdk(base_url, tokens["finance"]).models.list()}
    assert set(listed) == {"finance", "pagelens-finance"}
    assert listed["finance"].owned_by == "pagelens" and listed["finance"].created > 0
    assert {m.id for m in sdk(base_url, tokens["both"]).models.list()} == {"finance", "ops", *ALIASES}  # not "empty"
    assert sdk(base_url, tokens["finance"]).models.retrieve("pagelens-finance").id == "pagelens-finance"


def test_completion_cites_pages_in_the_text_and_in_the_extra_field(base_url: str, tokens: dict[str, str]) -> None:
    completion = ask(base_url, tokens["finance"], REVENUE, temperature=0.2, max_tokens=200, user="u1")
    assert completion.object == "chat.completion" and completion.model == "pagelens-finance"
    [choice] = completion.choices
    assert choice.finish_reason == "stop" and choice.message.role == "assistant"
    text = choice.message.content
    assert "Europe" in text and "[Page 2]" in text
    assert text.rstrip().endswith(f"Sources: [Page 2] {FINANCE_DOC}")
    extra = completion.model_extra["pagelens"]
    assert extra["namespace"] == "finance" and extra["question"] == REVENUE and extra["rewritten"] is False
    answer = extra["answer"]
    assert answer["mode"] == "extractive" and answer["abstained"] is False
    cited = answer["citations"][0]
    assert (cited["doc"], cited["page"], cited["label"]) == (FINANCE_DOC, 2, "[Page 2]") and len(cited["bbox"]) == 4
    request = urllib.request.Request(base_url + cited["image_url"], headers={"Authorization": f"Bearer {tokens['finance']}"})
    with urllib.request.urlopen(request, timeout=60) as response:  # the citation's page image, shaded
        assert response.status == 200 and response.headers["Content-Type"] == "image/png"


def test_streaming_sends_openai_chunks_that_add_up_to_the_plain_answer(base_url: str, tokens: dict[str, str]) -> None:
    plain = ask(base_url, tokens["finance"], REVENUE).choices[0].message.content
    chunks = list(ask(base_url, tokens["finance"], REVENUE, stream=True, stream_options={"include_usage": False}))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(c.object == "chat.completion.chunk" and c.id == chunks[0].id for c in chunks)
    assert len(chunks) > 5  # word by word, not one blob
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == plain
    assert [c.choices[0].finish_reason for c in chunks][-1] == "stop"
    assert chunks[-1].model_extra["pagelens"]["answer"]["citations"][0]["page"] == 2


def test_a_follow_up_is_rewritten_into_a_standalone_question(base_url: str, tokens: dict[str, str]) -> None:
    completion = ask(base_url, tokens["finance"], "What was the revenue in Europe in 2025?",
                     "Europe brought 21.4 million EUR in 2025 [Page 2].", "and North America?")
    extra = completion.model_extra["pagelens"]
    assert extra["question"] == "What was the revenue in North America in 2025?"
    assert (extra["rewritten"], extra["rewrite_method"]) == (True, "rules")
    assert "North America" in completion.choices[0].message.content
    assert {c["page"] for c in extra["answer"]["citations"]} == {2}


def test_abstention_is_visible_in_the_text_and_the_extra_field(chat_settings: Settings, tokens: dict[str, str]) -> None:
    with serve(chat_settings.model_copy(update={"abstain_below": 1e9})) as url:  # no sentence is support enough
        completion = ask(url, tokens["finance"], REVENUE)
    answer = completion.model_extra["pagelens"]["answer"]
    assert answer["abstained"] is True and answer["citations"] == []
    assert completion.choices[0].message.content == answer["text"] and "Sources" not in answer["text"]


def test_llm_rewrite_failure_falls_back_to_the_rules_with_the_reason(chat_settings: Settings,
                                                                     tokens: dict[str, str]) -> None:
    with RecordingProxy("http://127.0.0.1:9", fail_status=503) as proxy:
        settings = chat_settings.model_copy(update={"llm_base_url": proxy.url, "api_chat_rewrite": "llm"})
        with serve(settings) as url:
            completion = ask(url, tokens["finance"], "How many units were shipped in Q3 2025?", "1,610 [Figure 3].",
                             "what about Q4?")
    extra = completion.model_extra["pagelens"]
    assert extra["question"] == "How many units were shipped in Q4 2025?" and extra["rewrite_method"] == "rules"
    assert "503" in extra["rewrite_fallback_reason"]
    sent = proxy.exchanges[0].request["messages"][1]["content"]  # the conversation went to the endpoint first
    assert "Q3 2025" in sent and "what about Q4?" in sent


# -- errors, as the SDK raises them ---------------------------------------------------------------
def test_errors_arrive_as_the_sdk_exception_classes(base_url: str, tokens: dict[str, str]) -> None:
    import openai

    cases = [
        (lambda: ask(base_url, "pl_not-a-real-token", REVENUE), openai.AuthenticationError, "invalid_token"),
        (lambda: ask(base_url, tokens["finance"], REVENUE, model="ops"), openai.PermissionDeniedError, "forbidden"),
        (lambda: ask(base_url, tokens["both"], REVENUE, model="empty"), openai.NotFoundError, "namespace_not_found"),
        (lambda: ask(base_url, tokens["finance"], REVENUE, model="no such-model"), openai.NotFoundError,
         "model_not_found"),
        (lambda: ask(base_url, tokens["finance"], REVENUE, extra_body={"top_k": 3}), openai.BadRequestError,
         "invalid_request"),
        (lambda: ask(base_url, tokens["finance"], REVENUE, n=2), openai.BadRequestError, "invalid_request"),
        (lambda: ask(base_url, tokens["finance"], REVENUE, "an answer"), openai.BadRequestError, "invalid_request"),
        (lambda: sdk(base_url, tokens["finance"]).models.retrieve("ops"), openai.NotFoundError, "model_not_found"),
    ]
    for call, error, code in cases:
        with pytest.raises(error) as raised:
            call()
        body = raised.value.body
        assert body["code"] == code and body["type"] and body["message"], body


def test_an_image_part_is_refused_with_the_field_named(base_url: str, tokens: dict[str, str]) -> None:
    import openai

    content = [{"type": "text", "text": REVENUE}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,"}}]
    with pytest.raises(openai.BadRequestError) as raised:
        sdk(base_url, tokens["finance"]).chat.completions.create(model="finance",
                                                                messages=[{"role": "user", "content": content}])
    assert raised.value.body["param"] == "messages.0.content" and "only text parts" in raised.value.body["message"]


def test_pagelens_extensions_narrow_retrieval(base_url: str, tokens: dict[str, str]) -> None:
    completion = ask(base_url, tokens["finance"], "How many units were shipped?", model="finance",
                     extra_body={"k": 3, "mode": "bm25", "filters": {"page_from": 3, "page_to": 3}})
    extra = completion.model_extra["pagelens"]
    assert extra["retrieval_mode"] == "bm25" and extra["k"] == 3
    assert {c["page"] for c in extra["answer"]["citations"]} == {3}


def test_llm_rewrite_and_answer_go_through_a_real_openai_compatible_server(chat_settings: Settings,
                                                                           tokens: dict[str, str],
                                                                           tmp_path_factory: pytest.TempPathFactory) -> None:
    """Plumbing only: SmolLM2-135M writes poor questions and answers; what matters is what travels where."""
    pytest.importorskip("llama_cpp", reason="llama-cpp-python[server] is not installed")
    from pagelens.followup import REWRITE_PROMPT
    from tests.llm_server import MODEL_ALIAS, LlamaServer, smollm2_gguf

    with LlamaServer(smollm2_gguf(), tmp_path_factory.mktemp("llm") / "server.log") as llm, \
            RecordingProxy(llm.url) as proxy:
        settings = chat_settings.model_copy(update={"llm_base_url": proxy.url, "llm_model": MODEL_ALIAS,
                                                    "llm_max_tokens": 48, "llm_timeout_s": 120})
        with serve(settings) as url:
            completion = ask(url, tokens["finance"], "What was the revenue in Europe in 2025?",
                             "21.4 million EUR [Page 2].", "and North America?")
    extra = completion.model_extra["pagelens"]
    rewrite, generation = proxy.exchanges[0], proxy.exchanges[-1]
    assert rewrite.request["messages"][0]["content"] == REWRITE_PROMPT
    assert "user: What was the revenue in Europe in 2025?" in rewrite.request["messages"][1]["content"]
    assert "assistant: 21.4 million EUR" in rewrite.request["messages"][1]["content"]
    if extra["rewrite_method"] == "llm":  # the model's line is the question retrieval and the answer used
        reply = rewrite.response["choices"][0]["message"]["content"]
        assert extra["question"] in reply and extra["rewrite_fallback_reason"] == ""
    else:  # an unusable reply (empty, no words) falls back to the rules, and says so
        assert extra["rewrite_method"] == "rules" and extra["rewrite_fallback_reason"]
    assert extra["question"] in generation.request["messages"][-1]["content"]  # what the answer was written for
    assert extra["answer"]["mode"] in ("generated", "extractive-fallback")
    assert completion.choices[0].message.content.startswith(extra["answer"]["text"])


def test_a_failure_after_the_stream_started_arrives_as_an_error_event(base_url: str, tokens: dict[str, str],
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import openai

    from pagelens.errors import StoreUnavailable
    from query_api import chat

    def store_down(*args: Any, **kwargs: Any) -> Any:
        raise StoreUnavailable("cannot reach Milvus at http://milvus:19530")

    monkeypatch.setattr(chat, "answer_question", store_down)  # after the checks, inside the stream
    stream = ask(base_url, tokens["finance"], REVENUE, stream=True)
    first = next(iter(stream))
    assert first.choices[0].delta.role == "assistant"  # the 200 and the role went out before the failure
    with pytest.raises(openai.APIError, match="cannot reach Milvus"):
        list(stream)
