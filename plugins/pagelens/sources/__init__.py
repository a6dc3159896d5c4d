"""Where documents come from: one small interface, one implementation per kind of source.

A source lists cheaply (names and version markers, no content) so an unchanged corpus costs a listing and
a registry lookup; content is fetched only for documents the plan decides to index, in whichever process
indexes them (the local task or the GPU pod), which reopens the source from `SourceDocument.location`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Protocol

from pagelens.errors import OutsideSource

if TYPE_CHECKING:
    from pagelens.settings import Settings


@dataclass
class SourceDocument:
    """A document as listed by a source; `path` and `content_sha256` are filled by `Source.fetch`."""

    doc_id: str
    source_uri: str
    etag: str = ""  # the source's version marker: S3 ETag, Graph cTag, local mtime+size
    location: str = ""  # the source it was listed from, to reopen it in another process
    path: str = ""  # a local file the parser can open, once fetched
    content_sha256: str = ""
    modified: float = 0.0  # the source's modification time (Unix seconds; 0 = unknown): retention by "modified"
    # Who may read it: "*" = every reader of the namespace (local, S3, GCS); SharePoint names users and groups
    principals: list[str] = field(default_factory=lambda: ["*"])

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Listing:
    """What a source reports in one run."""

    location: str
    documents: list[SourceDocument] = field(default_factory=list)  # new or possibly changed (all, if complete)
    deleted: list[str] = field(default_factory=list)  # source URIs a delta source reports removed
    complete: bool = True  # True: a document of this location that is not listed is gone
    cursor: str = ""  # where the next run continues (a Graph delta link); saved once the run has landed


class Source(Protocol):
    location: str

    def list_documents(self, cursor: str = "") -> Listing: ...

    def fetch(self, doc: SourceDocument, workdir: Path) -> SourceDocument:
        """The document with `path` (a local file, downloaded into `workdir` if remote) and `content_sha256`."""
        ...


class SourceError(RuntimeError):
    """A source cannot be listed or read (unreachable, denied, misconfigured); worth a retry or a config fix."""


class DocumentVanished(SourceError):
    """The document was listed but is gone by the time it is fetched (deleted meanwhile)."""


def open_source(location: str, settings: Settings) -> Source:
    """Pick the implementation from the location's scheme (a plain path is a local folder), behind the rules
    every source shares (`GuardedSource`)."""
    return GuardedSource(_open(location, settings), redact_names=settings.redact_pii)


def _open(location: str, settings: Settings) -> Source:
    if location.startswith("s3://"):
        from pagelens.sources.s3 import S3Source

        return S3Source(location, settings)
    if location.startswith("gs://"):
        from pagelens.sources.gcs import GCSSource

        return GCSSource(location, settings)
    if location.startswith("sharepoint://"):
        from pagelens.sources.sharepoint import SharePointSource

        return SharePointSource(location, settings)
    if "://" in location and not location.startswith("file://"):
        raise SourceError(f"unsupported source {location!r}: use a local folder, s3://bucket/prefix, gs://bucket/prefix "
                          "or sharepoint://<site>/<drive>[/folder]")
    from pagelens.sources.local import LocalSource

    return LocalSource(Path(location.removeprefix("file://")))


def bucket_location(location: str, scheme: str, store: str) -> tuple[str, str]:
    """`<scheme>://bucket/some/prefix` -> (bucket, "some/prefix/"); the prefix is a folder ("" = the whole bucket)."""
    bucket, _, prefix = location.removeprefix(f"{scheme}://").partition("/")
    if not bucket:
        raise SourceError(f"{store} location {location!r} names no bucket: use {scheme}://bucket/prefix")
    prefix = prefix.strip("/")
    return bucket, f"{prefix}/" if prefix else ""


def check_inside(doc_id: str) -> str:
    """`doc_id` if it names something inside its source: a relative path without `.`, `..` or empty segments
    (an S3 key `docs/../hr/x.pdf` or a manifest edited to `/etc/passwd` is refused, never fetched)."""
    parts = doc_id.split("/")
    if not doc_id or PurePosixPath(doc_id).is_absolute() or any(p in ("", ".", "..") for p in parts) or "\x00" in doc_id:
        raise OutsideSource(f"the name {doc_id!r} leads outside its source ('..', '.', empty or absolute segments)")
    return doc_id


class GuardedSource:
    """A source behind the rules every kind shares: names that lead outside the source are refused at fetch
    (quarantined with the reason, never read), and with `redact_names` doc ids are listed as they may be
    shown (personal data in file names replaced, `redact.redact_name`). The source URI keeps the real name."""

    def __init__(self, inner: Source, redact_names: bool) -> None:
        self.inner, self.redact_names, self.location = inner, redact_names, inner.location

    def list_documents(self, cursor: str = "") -> Listing:
        listing = self.inner.list_documents(cursor)
        if self.redact_names:
            from pagelens.redact import redact_name

            listing.documents = [replace(d, doc_id=redact_name(d.doc_id)) for d in listing.documents]
        return listing

    def fetch(self, doc: SourceDocument, workdir: Path) -> SourceDocument:
        check_inside(doc.doc_id)
        return self.inner.fetch(doc, workdir)

    def __getattr__(self, name: str) -> object:  # the implementation's own attributes (an S3 source's client)
        if name == "inner":  # not set yet (copy, unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)
