"""The parsed-document artifact: what the parse stage (CPUs) hands to the encode stage (a GPU pod, or in-process).

One artifact per content hash and *parse fingerprint* (parser, OCR, chunking and redaction versions and knobs),
kept in the content store: the data dir by default, S3 in production (`PAGELENS_CONTENT_STORE`), where parse
tasks and encoder pods both reach it. It holds chunks already redacted (and figure images with faces blurred),
never the names a namespace gives them, so a model change re-embeds from it and never parses or OCRs again.
Chunk ids, namespace, doc id and model version are given at encode time (`Parsed.chunks_for`).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
from dataclasses import dataclass, field, replace
from typing import Any

from pagelens.chunk import CHUNK_VERSION, chunk_id
from pagelens.contentstore import content_store
from pagelens.parsing.pdf import PARSE_VERSION
from pagelens.records import Chunk, DocumentReport
from pagelens.settings import Settings
from pagelens.sources import SourceDocument

ARTIFACT_VERSION = 1  # bump when the artifact's layout changes
STATS = ("pages", "ocr_pages", "tables", "figures")


def fingerprint(settings: Settings) -> str:
    """What shapes a document's chunks; a change of any of these makes a new artifact (not of the models)."""
    knobs = [ARTIFACT_VERSION, PARSE_VERSION, CHUNK_VERSION, settings.ocr_dpi, settings.ocr_lang, settings.ocr_figures,
             settings.min_figure_area, settings.chunk_chars, settings.chunk_max_chars, settings.redact_pii,
             settings.blur_faces, bool(settings.clip_model)]
    return hashlib.sha1(json.dumps(knobs).encode()).hexdigest()[:12]


def artifact_name(settings: Settings) -> str:
    return f"parsed-{fingerprint(settings)}"


@dataclass
class Parsed:
    """A document parsed, chunked and redacted, ready to embed."""

    doc: SourceDocument
    chunks: list[Chunk]
    stats: dict[str, int] = field(default_factory=dict)  # pages, ocr_pages, tables, figures
    seconds: float = 0.0  # fetch excluded: conversion, parse, OCR, chunking

    def chunks_for(self, namespace: str, model_version: str) -> list[Chunk]:
        """The chunks under this namespace's names and the encoder's model version (ids follow both)."""
        return [replace(c, id=chunk_id(namespace, self.doc.doc_id, c.page, c.chunk_no, model_version),
                        namespace=namespace, doc_id=self.doc.doc_id, source_uri=self.doc.source_uri,
                        content_sha256=self.doc.content_sha256, model_version=model_version)
                for c in self.chunks]

    def report(self, seconds: float) -> DocumentReport:
        doc = self.doc
        return DocumentReport(doc=doc.doc_id, status="indexed", chunks=len(self.chunks), seconds=round(seconds, 2),
                              source_uri=doc.source_uri, location=doc.location, etag=doc.etag,
                              content_sha256=doc.content_sha256, principals=list(doc.principals),
                              **{k: self.stats.get(k, 0) for k in STATS})

    def handoff(self) -> dict[str, Any]:
        """What travels in a parsed batch (XCom or an S3 manifest): the document and its stats, not its chunks."""
        return {"doc": self.doc.to_dict(), "stats": dict(self.stats), "seconds": round(self.seconds, 2)}


def save(parsed: Parsed, settings: Settings) -> None:
    """Keep the chunks in the content store under the document's hash and the parse fingerprint."""
    content_store(settings).put_json(parsed.doc.content_sha256, artifact_name(settings),
                                     {"chunks": [_plain(c) for c in parsed.chunks], "stats": parsed.stats})


def load(doc: SourceDocument, settings: Settings, seconds: float = 0.0) -> Parsed | None:
    """The document's artifact for these settings, or None when it was never parsed with them."""
    data = content_store(settings).get_json(doc.content_sha256, artifact_name(settings))
    if not isinstance(data, dict):
        return None
    return Parsed(doc, [_chunk(c) for c in data["chunks"]], dict(data.get("stats", {})), seconds)


def from_handoff(item: dict[str, Any], settings: Settings) -> Parsed:
    """The artifact a parsed batch names; `ArtifactMissing` if the content store lost it (re-run the parse task)."""
    doc = SourceDocument(**item["doc"])
    parsed = load(doc, settings, float(item.get("seconds", 0.0)))
    if parsed is None:
        where = settings.content_store or "of the data dir"
        raise ArtifactMissing(f"no parsed artifact {artifact_name(settings)} for {doc.doc_id} "
                              f"({doc.content_sha256[:12]}) in the content store {where}: the parse task and the "
                              "encoder must share PAGELENS_CONTENT_STORE and the parse settings; clear the batch's "
                              "parse task to write it again")
    return parsed


class ArtifactMissing(LookupError):
    """A parsed batch names an artifact the content store does not hold."""


def _plain(chunk: Chunk) -> dict[str, Any]:
    image = None
    if chunk.image is not None:
        buffer = io.BytesIO()
        chunk.image.save(buffer, format="PNG")
        image = base64.b64encode(buffer.getvalue()).decode()
    return {"page": chunk.page, "chunk_no": chunk.chunk_no, "bbox": list(chunk.bbox), "kind": chunk.kind,
            "text": chunk.text, "context": chunk.context, "image": image}


def _chunk(data: dict[str, Any]) -> Chunk:
    image = None
    if data.get("image"):
        from PIL import Image

        image = Image.open(io.BytesIO(base64.b64decode(data["image"])))
        image.load()
    return Chunk(id="", namespace="", doc_id="", source_uri="", content_sha256="", page=int(data["page"]),
                 chunk_no=int(data["chunk_no"]), bbox=tuple(data["bbox"]), kind=data["kind"], text=data["text"],
                 model_version="", context=data.get("context", ""), image=image)
