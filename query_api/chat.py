"""OpenAI-compatible endpoints: /v1/models (the namespaces a token may read) and /v1/chat/completions.

A chat completion runs the same path as /v1/query: the `model` names the namespace (or a configured alias),
the last user message is the question, earlier turns make a follow-up standalone (`pagelens.followup`). The
answer's text carries its `[Page N]` labels and a Sources line; the structured citations, the abstention
and the question actually asked travel in the extra field `pagelens`. With `stream: true` the reply comes as
server-sent events in OpenAI's chunk format: the role at once, then the checked answer in pieces.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify, request, stream_with_context

from pagelens.errors import IndexMissing, StoreUnavailable
from pagelens.followup import Rewrite, Turn, standalone_question
from pagelens.records import Answer
from pagelens.registry import Registry
from pagelens.settings import Settings
from query_api.answering import Answered, answer_json, answer_question, open_namespace, timings
from query_api.auth import require_token
from query_api.chat_request import ChatRequest, conversation, model_namespace, parse_chat_request
from query_api.errors import ApiError

bp = Blueprint("chat", __name__, url_prefix="/v1")
log = logging.getLogger(__name__)
PIECE = re.compile(r"\S+\s*|\s+")  # streamed a word at a time, spaces kept


@bp.before_request
def _authenticate() -> None:
    require_token(_settings())


@bp.get("/models")
def models() -> Response:
    """Every namespace the token may read that has indexed documents, and the aliases configured for them."""
    return jsonify(object="list", data=_models())


@bp.get("/models/<path:model>")
def model(model: str) -> Response:
    for entry in _models():
        if entry["id"] == model:
            return jsonify(entry)
    raise ApiError(404, "model_not_found", f"the model '{model[:80]}' does not exist or this token may not use it",
                   param="model")


@bp.post("/chat/completions")
def chat_completions() -> Response:
    settings = _settings()
    chat = parse_chat_request(request, settings)
    namespace = model_namespace(chat.model, settings)
    turns = conversation(chat, settings)
    open_namespace(namespace, settings)  # 403/404/503 as HTTP errors, before a stream starts
    reply = Reply(chat, namespace)
    if not chat.stream:
        return jsonify(reply.completion(*_answer(turns, chat, namespace, settings)))
    return Response(stream_with_context(reply.events(lambda: _answer(turns, chat, namespace, settings))),
                    mimetype="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _answer(turns: list[Turn], chat: ChatRequest, namespace: str, settings: Settings) -> tuple[Rewrite, Answered, float]:
    """The standalone question, then the /v1/query path; when it started (for the timings)."""
    started = time.perf_counter()
    rewrite = standalone_question(turns, settings)
    filters = chat.filters.model_dump(exclude_none=True) if chat.filters else None
    return rewrite, answer_question(rewrite.question, namespace, settings, chat.k, chat.mode, filters), started


class Reply:
    """One chat completion in OpenAI's shapes, whole or as chunks."""

    def __init__(self, chat: ChatRequest, namespace: str) -> None:
        self.chat, self.namespace = chat, namespace
        self.id, self.created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())

    def completion(self, rewrite: Rewrite, done: Answered, started: float) -> dict[str, Any]:
        message = {"role": "assistant", "content": message_content(done.answer)}
        return {**self._head("chat.completion"), "choices": [{"index": 0, "message": message, "finish_reason": "stop",
                                                              "logprobs": None}],
                "pagelens": self.extra(rewrite, done, started)}

    def events(self, compute: Callable[[], tuple[Rewrite, Answered, float]]) -> Iterator[str]:
        from pymilvus.exceptions import MilvusException

        yield self._event([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
        try:
            rewrite, done, started = compute()
        except (ApiError, StoreUnavailable, IndexMissing, MilvusException) as exc:
            # the 200 status is sent already: the error travels as an event (the openai SDK raises it)
            code, message = _stream_error(exc)
            yield f"data: {json.dumps({'error': {'code': code, 'message': message, 'type': 'server_error'}})}\n\n"
            return
        for piece in PIECE.findall(message_content(done.answer)):
            yield self._event([{"index": 0, "delta": {"content": piece}, "finish_reason": None}])
        yield self._event([{"index": 0, "delta": {}, "finish_reason": "stop"}], pagelens=self.extra(rewrite, done, started))
        yield "data: [DONE]\n\n"

    def extra(self, rewrite: Rewrite, done: Answered, started: float) -> dict[str, Any]:
        """What the OpenAI shape has no place for: the question asked, the citations, the abstention, timings."""
        return {"namespace": self.namespace, "question": rewrite.question, "rewritten": rewrite.rewritten,
                "rewrite_method": rewrite.method, "rewrite_fallback_reason": rewrite.fallback_reason,
                "retrieval_mode": done.mode, "k": done.k, "answer": answer_json(done.answer, self.namespace),
                "timings": timings(started, done.retrieval_s, done.generation_s)}

    def _head(self, kind: str) -> dict[str, Any]:
        return {"id": self.id, "object": kind, "created": self.created, "model": self.chat.model}

    def _event(self, choices: list[dict[str, Any]], **extra: Any) -> str:
        return f"data: {json.dumps({**self._head('chat.completion.chunk'), 'choices': choices, **extra})}\n\n"


def message_content(answer: Answer) -> str:
    """The answer text, then which document each label names (a chat window shows only the text)."""
    if answer.abstained or not answer.citations:
        return answer.text
    sources = "; ".join(dict.fromkeys(f"{c.label} {c.doc}" if c.doc not in c.label else c.label
                                      for c in answer.citations))
    return f"{answer.text}\n\nSources: {sources}"


def _models() -> list[dict[str, Any]]:
    settings = _settings()
    updated = Registry(settings.registry_url).indexed_namespaces_updated()
    readable = {ns: when for ns, when in updated.items() if g.grant is None or g.grant.allows(ns)}
    entries = [{"id": ns, "object": "model", "created": int(when.timestamp()), "owned_by": "pagelens"}
               for ns, when in readable.items()]
    for alias, ns in sorted(settings.api_model_aliases.items()):
        if ns in readable:
            entries.append({"id": alias, "object": "model", "created": int(readable[ns].timestamp()),
                            "owned_by": "pagelens"})
    return entries


def _stream_error(exc: Exception) -> tuple[str, str]:
    if isinstance(exc, ApiError):
        return exc.code, exc.message
    log.warning("Chat stream failed after it started: %s", exc)
    return "store_unavailable", f"the vector store failed ({getattr(exc, 'message', exc)}); retry later"


def _settings() -> Settings:
    return current_app.extensions["pagelens"].settings
