"""Batch manifests: `BatchManifest` (the documents the plan gives one parse task) and `ParsedBatch` (what that
parse task hands its encode task), passed by value (XCom, local tasks) or by S3 key (pods).

In Kubernetes mode each parse task writes its parsed batch to
`s3://<manifest_bucket>/<manifest_prefix>/<dag_id>/<run_id>/<batch>.json` and the encoder pod is given only
that URI, so neither document lists nor credentials travel in the pod spec. Manifests are not deleted: a
cleared task re-reads its batch; expire them with a bucket lifecycle rule.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pagelens.records import DocumentReport
from pagelens.sources import SourceDocument
from pagelens.store import InvalidNamespace, validate_namespace

if TYPE_CHECKING:
    from pagelens.settings import Settings


class InvalidManifest(ValueError):
    """A manifest that is missing or does not describe a batch: re-running the encoder will not help."""


class ManifestUnavailable(RuntimeError):
    """The manifest store refused or could not be reached; worth a retry or a fix of the connection."""


@dataclass
class BatchManifest:
    namespace: str
    documents: list[dict[str, str]]  # `SourceDocument.to_dict()` of each document, as the plan listed it
    generation: str | None = None  # a named collection generation (a rebuild); None: the namespace's live index
    model_version: str = ""  # the planner's models; an encoder with other models refuses the batch ("": no check)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any, where: str = "the manifest") -> BatchManifest:
        """Validate what a manifest file or XCom holds; `InvalidManifest` says what is wrong with it."""
        namespace, generation = _header(data, "documents", where)
        documents = data["documents"]
        if not isinstance(documents, list) or not all(isinstance(d, dict) for d in documents):
            raise InvalidManifest(f"{where}: 'documents' must be a list of objects")
        try:
            documents = [SourceDocument(**d).to_dict() for d in documents]
        except TypeError as exc:
            raise InvalidManifest(f"{where}: a document is not a listed source document ({exc})") from exc
        return cls(namespace, documents, generation, str(data.get("model_version") or ""))


@dataclass
class ParsedBatch:
    """What the parse stage hands the encode stage for one batch: per document either its parsed artifact's
    handoff (`{"parsed": {"doc", "stats", "seconds"}}`) or its final report (`{"report": {...}}`: skipped,
    quarantined, deleted), in the batch's order."""

    namespace: str
    generation: str | None = None
    model_version: str = ""  # the parse side's models; an encoder with other models refuses the batch
    items: list[dict[str, Any]] = field(default_factory=list)

    def add(self, outcome: Any) -> None:
        from pagelens.pipeline.handoff import Parsed

        self.items.append({"parsed": outcome.handoff()} if isinstance(outcome, Parsed)
                          else {"report": outcome.to_dict()})

    def outcomes(self, settings: Settings) -> Iterator[Any]:
        """Each item as the encode stage takes it: a `Parsed` read from the content store, or a report."""
        from pagelens.pipeline.handoff import from_handoff

        for item in self.items:
            yield from_handoff(item["parsed"], settings) if "parsed" in item else DocumentReport(**item["report"])

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any, where: str = "the parsed batch") -> ParsedBatch:
        namespace, generation = _header(data, "items", where)
        items = data["items"]
        if not isinstance(items, list) or not all(isinstance(i, dict) and len(i.keys() & {"parsed", "report"}) == 1
                                                  for i in items):
            raise InvalidManifest(f"{where}: 'items' must be a list of objects with 'parsed' or 'report'")
        try:
            for item in items:
                if "parsed" in item:
                    SourceDocument(**item["parsed"]["doc"])
                else:
                    DocumentReport(**item["report"])
        except (TypeError, KeyError) as exc:
            raise InvalidManifest(f"{where}: an item is not a parsed document or a report ({exc})") from exc
        return cls(namespace, generation, str(data.get("model_version") or ""), items)


def _header(data: Any, body: str, where: str) -> tuple[str, str | None]:
    """The namespace and generation every manifest carries, validated."""
    if not isinstance(data, dict) or not {"namespace", body} <= data.keys():
        raise InvalidManifest(f"{where} is not a JSON object with 'namespace' and '{body}'")
    try:
        namespace = validate_namespace(data["namespace"] if isinstance(data["namespace"], str) else "")
    except InvalidNamespace as exc:
        raise InvalidManifest(f"{where}: {exc}") from exc
    generation = data.get("generation")
    if generation is not None and not isinstance(generation, str):
        raise InvalidManifest(f"{where}: 'generation' must be a collection name or null")
    return namespace, generation


def batch_name(namespace: str, map_index: int) -> str:
    """The name a parsed batch is written under: its namespace and the parse task's map index."""
    return f"{namespace}-{map_index:04d}"


INLINE = "data:application/json;base64,"  # RFC 2397: a planned batch carried in a parser pod's arguments


def inline_manifest(manifest: dict[str, Any]) -> str:
    """A planned batch as a `data:` URI: a few hundred bytes per document, and no braces for Airflow's templating."""
    return INLINE + base64.b64encode(json.dumps(manifest, separators=(",", ":")).encode()).decode("ascii")


def manifest_uri(settings: Settings, dag_id: str, run_id: str, batch: str) -> str:
    parts = (settings.manifest_prefix, dag_id, run_id, f"{batch}.json")
    return f"s3://{settings.manifest_bucket}/" + "/".join(p.strip("/") for p in parts if p.strip("/"))


def write_manifests(manifests: dict[str, BatchManifest] | dict[str, ParsedBatch], settings: Settings, dag_id: str,
                    run_id: str) -> list[str]:
    """Write each batch (name -> manifest) to S3 (`clients.s3_client`); returns the URIs."""
    if not manifests:
        return []
    if not settings.manifest_bucket:
        raise ManifestUnavailable("PAGELENS_MANIFEST_BUCKET is empty: encoder pods read their batches from S3; "
                                  "name a bucket the Airflow workers can write and the pods can read")
    from pagelens.sources.clients import s3_client
    from pagelens.sources.s3 import split_s3_uri

    client, uris = s3_client(settings), []
    for batch, manifest in manifests.items():
        uri = manifest_uri(settings, dag_id, run_id, batch)
        bucket, key = split_s3_uri(uri)
        with _s3_errors(uri, settings, reading=False):
            client.put_object(Bucket=bucket, Key=key, Body=json.dumps(manifest.to_dict()).encode(),
                              ContentType="application/json")
        uris.append(uri)
    return uris


def read_manifest(uri: str, settings: Settings, kind: type[Any] = BatchManifest) -> Any:
    """The manifest (`kind`: `BatchManifest` or `ParsedBatch`) at `s3://bucket/key`, `file:///path`, a path, or
    inline in a `data:application/json;base64,` URI."""
    if uri.startswith(INLINE):
        try:
            text = base64.b64decode(uri.removeprefix(INLINE), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise InvalidManifest(f"the inline manifest is not base64 JSON ({exc})") from exc
    elif uri.startswith("s3://"):
        from pagelens.sources.clients import s3_client
        from pagelens.sources.s3 import split_s3_uri

        bucket, key = split_s3_uri(uri)
        with _s3_errors(uri, settings):
            text = s3_client(settings).get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8")
    elif "://" in uri and not uri.startswith("file://"):
        raise InvalidManifest(f"unsupported manifest URI {uri[:80]!r}: use s3://bucket/key.json or file:///path.json")
    else:
        path = Path(uri.removeprefix("file://"))
        if not path.is_file():
            raise InvalidManifest(f"no manifest file at {path}")
        text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidManifest(f"{uri} is not JSON ({exc})") from exc
    return kind.from_dict(data, where=uri)


@contextmanager
def _s3_errors(uri: str, settings: Settings, reading: bool = True) -> Iterator[None]:
    """Turn botocore failures into manifest errors: a manifest missing when read is final, the rest retriable."""
    from botocore.exceptions import BotoCoreError, ClientError

    from pagelens.sources.s3 import MISSING_CODES, credentials

    try:
        yield
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if reading and (code in MISSING_CODES or code == "NoSuchBucket"):
            raise InvalidManifest(f"no manifest at {uri} ({code}): the plan task writes it; re-run the plan") from exc
        raise ManifestUnavailable(f"S3 refused {uri} ({code}): check the permissions of "
                                  f"{credentials(settings)}") from exc
    except BotoCoreError as exc:
        raise ManifestUnavailable(f"S3 is unreachable for {uri}: {exc}; check the endpoint and "
                                  f"{credentials(settings)}") from exc
