"""Request bodies of /v1/search and /v1/query: parsed strictly, every mistake reported as a 400 that says what to fix."""

from __future__ import annotations

import json
from typing import Any, Literal

from flask import Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from pagelens.retrieve import MODES
from pagelens.settings import Settings
from pagelens.store import validate_namespace
from query_api.errors import ApiError

MAX_PAGE = 1_000_000  # beyond any document; keeps numbers inside Milvus's INT64 expressions


class Filters(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    doc: str | None = Field(default=None, min_length=1, max_length=1024)
    kind: Literal["text", "table", "figure", "ocr"] | None = None
    page_from: int | None = Field(default=None, ge=1, le=MAX_PAGE)
    page_to: int | None = Field(default=None, ge=1, le=MAX_PAGE)

    @field_validator("doc")
    @classmethod
    def _encodable(cls, doc: str | None) -> str | None:
        return _utf8(doc, "filters.doc")

    @model_validator(mode="after")
    def _ordered(self) -> Filters:
        if self.page_from is not None and self.page_to is not None and self.page_from > self.page_to:
            raise ValueError(f"page_from ({self.page_from}) must not exceed page_to ({self.page_to})")
        return self


class QuestionRequest(BaseModel):
    """The body both endpoints take; limits come from the settings passed as validation context."""

    model_config = ConfigDict(extra="forbid", strict=True)

    question: str
    namespace: str
    k: int | None = None
    mode: str | None = None
    filters: Filters | None = None

    @field_validator("question")
    @classmethod
    def _question(cls, question: str, info: ValidationInfo) -> str:
        question, limit = question.strip(), _settings(info).api_max_question_chars
        if not question:
            raise ValueError("question is empty; send the text to search for")
        if len(question) > limit:
            raise ValueError(f"question has {len(question)} characters; at most {limit} are allowed")
        return _utf8(question, "question") or ""

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, namespace: str) -> str:
        return validate_namespace(namespace)

    @field_validator("k")
    @classmethod
    def _k(cls, k: int | None, info: ValidationInfo) -> int | None:
        limit = _settings(info).api_max_k
        if k is not None and not 1 <= k <= limit:
            raise ValueError(f"k must be between 1 and {limit}")
        return k

    @field_validator("mode")
    @classmethod
    def _mode(cls, mode: str | None) -> str | None:
        if mode is not None and mode not in MODES:
            raise ValueError(f"unknown mode {mode[:40]!r}; use one of {', '.join(MODES)}")
        return mode

    def filter_dict(self) -> dict[str, Any] | None:
        return self.filters.model_dump(exclude_none=True) if self.filters else None


def parse_question_request(request: Request, settings: Settings) -> QuestionRequest:
    return validate_body(json_body(request), settings)


def json_body(request: Request) -> Any:
    """The decoded JSON body; 415 for another content type, 400 with the parser's complaint for bad JSON."""
    if not request.is_json:
        raise ApiError(415, "unsupported_media_type", "send the body as JSON with 'Content-Type: application/json'")
    try:
        return json.loads(request.get_data(cache=True), parse_constant=_reject_constant)
    except RecursionError:
        raise ApiError(400, "malformed_json", "request body is nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, over-long integers
        raise ApiError(400, "malformed_json", f"request body is not valid JSON: {str(exc)[:200]}") from None


def validate_body(body: Any, settings: Settings) -> QuestionRequest:
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_request", f"the body must be a JSON object with {_allowed(QuestionRequest)}, "
                                               f"not {_json_type(body)}")
    try:
        return QuestionRequest.model_validate(body, context={"settings": settings})
    except ValidationError as exc:
        raise ApiError(400, "invalid_request", "; ".join(_message(e) for e in exc.errors()[:5])) from None


def _message(error: Any) -> str:
    where = ".".join(str(p) for p in error["loc"])
    if error["type"] == "extra_forbidden":
        model = Filters if len(error["loc"]) > 1 else QuestionRequest
        return f"unknown field '{where[:60]}'; allowed: {_allowed(model)}"
    if error["type"] == "missing":
        return f"'{where}' is required"
    text = str(error["msg"]).removeprefix("Value error, ")
    return f"{where}: {text}" if where else text


def _allowed(model: type[BaseModel]) -> str:
    return ", ".join(model.model_fields)


def _settings(info: ValidationInfo) -> Settings:
    return info.context["settings"]


def _utf8(text: str | None, field: str) -> str | None:
    """Lone surrogates (legal in JSON escapes, not in UTF-8) would fail deep inside the tokenizer or Milvus."""
    try:
        (text or "").encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{field} contains an unpaired surrogate escape; send valid Unicode text") from None
    return text


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


def _json_type(value: Any) -> str:
    names = {list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)

