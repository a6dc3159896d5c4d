"""The body of /v1/chat/completions: OpenAI's chat request, parsed strictly into what pagelens uses.

OpenAI's own sampling and tool parameters are accepted (SDKs and chat front-ends send them) and have no
effect; anything else is refused with the list of allowed fields, as the other endpoints do.
"""

from __future__ import annotations

from typing import Any, Literal

from flask import Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pagelens.followup import Turn
from pagelens.retrieve import MODES
from pagelens.settings import Settings
from pagelens.store import InvalidNamespace, validate_namespace
from query_api.errors import ApiError
from query_api.validation import Filters, json_body

# OpenAI chat-completions parameters a client may send; pagelens reads none of them (its answer is not sampled).
OPENAI_PARAMS = frozenset({
    "audio", "frequency_penalty", "function_call", "functions", "logit_bias", "logprobs", "max_completion_tokens",
    "max_tokens", "metadata", "modalities", "n", "parallel_tool_calls", "prediction", "presence_penalty",
    "prompt_cache_key", "reasoning_effort", "response_format", "safety_identifier", "seed", "service_tier", "stop",
    "store", "stream_options", "temperature", "tool_choice", "tools", "top_logprobs", "top_p", "user", "verbosity",
    "web_search_options",
})
TEXT_PART_TYPES = ("text", "input_text")


class Message(BaseModel):
    model_config = ConfigDict(extra="allow")  # name, tool_calls, refusal…: OpenAI's message fields, unused here

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1, max_length=200)
    messages: list[Message] = Field(min_length=1)
    stream: bool = False
    n: int | None = None
    # pagelens extensions (the openai SDK sends them with `extra_body`)
    k: int | None = None
    mode: str | None = None
    filters: Filters | None = None


def parse_chat_request(request: Request, settings: Settings) -> ChatRequest:
    body = json_body(request)
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_request", "the body must be a JSON object with model and messages")
    unknown = sorted(set(body) - set(ChatRequest.model_fields) - OPENAI_PARAMS)
    if unknown:
        raise ApiError(400, "invalid_request", f"unknown field '{unknown[0][:60]}'; allowed: model, messages, stream, "
                                               "k, mode, filters and OpenAI's chat parameters (ignored)", param=unknown[0])
    try:
        chat = ChatRequest.model_validate(body)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"])
        raise ApiError(400, "invalid_request", f"{where}: {error['msg']}", param=where) from None
    if chat.n not in (None, 1):
        raise ApiError(400, "invalid_request", "n must be 1: pagelens writes one answer", param="n")
    if chat.k is not None and not 1 <= chat.k <= settings.api_max_k:
        raise ApiError(400, "invalid_request", f"k must be between 1 and {settings.api_max_k}", param="k")
    if chat.mode is not None and chat.mode not in MODES:
        raise ApiError(400, "invalid_request", f"unknown mode {chat.mode[:40]!r}; use one of {', '.join(MODES)}",
                       param="mode")
    return chat


def conversation(chat: ChatRequest, settings: Settings) -> list[Turn]:
    """User and assistant turns, oldest first, ending with the question (the last message, which must be a user's)."""
    last = chat.messages[-1]
    if last.role != "user":
        raise ApiError(400, "invalid_request", f"the last message must be the user's question, not a {last.role} "
                                               "message", param="messages")
    question = message_text(last, len(chat.messages) - 1).strip()
    if not question:
        raise ApiError(400, "invalid_request", "the last user message is empty; send the question", param="messages")
    if len(question) > settings.api_max_question_chars:
        raise ApiError(400, "invalid_request", f"the question has {len(question)} characters; at most "
                                               f"{settings.api_max_question_chars} are allowed", param="messages")
    _check_utf8(question)
    history = [(n, m) for n, m in enumerate(chat.messages[:-1]) if m.role in ("user", "assistant")]
    turns = [Turn(m.role, message_text(m, n)) for n, m in history[-settings.api_chat_history_messages:]]
    return [*turns, Turn("user", question)]


def message_text(message: Message, index: int) -> str:
    """A message's text: a string, or its text parts joined; images and audio are refused (pagelens reads text)."""
    if message.content is None or isinstance(message.content, str):
        return message.content or ""
    texts = []
    for part in message.content:
        if part.get("type") not in TEXT_PART_TYPES or not isinstance(part.get("text"), str):
            raise ApiError(400, "invalid_request", f"messages[{index}] has a '{str(part.get('type'))[:30]}' part; "
                                                   "only text parts are read", param=f"messages.{index}.content")
        texts.append(part["text"])
    return "\n".join(texts)


def model_namespace(model: str, settings: Settings) -> str:
    """The namespace a model name selects: a configured alias, or the namespace's own name."""
    name = settings.api_model_aliases.get(model, model)
    try:
        return validate_namespace(name)
    except InvalidNamespace:
        raise ApiError(404, "model_not_found", f"the model '{model[:80]}' does not exist; GET /v1/models lists the "
                                               "models (namespaces) this token may use", param="model") from None


def _check_utf8(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ApiError(400, "invalid_request", "the question contains an unpaired surrogate escape; send valid "
                                               "Unicode text", param="messages") from None
