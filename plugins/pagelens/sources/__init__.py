"""Where documents come from: one small interface, one implementation per kind of source."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol


@dataclass
class SourceDocument:
    """A document as listed by a source; `path` is a local file the parser can open."""

    doc_id: str
    path: str
    source_uri: str
    content_sha256: str
    etag: str = ""

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


class Source(Protocol):
    def list_documents(self) -> list[SourceDocument]: ...


def open_source(location: str) -> Source:
    """Pick the implementation from the location's scheme (a plain path is a local folder)."""
    from pagelens.sources.local import LocalSource

    if "://" in location and not location.startswith("file://"):
        raise ValueError(f"unsupported source {location!r}: use a local folder or file (S3/SharePoint come next)")
    return LocalSource(Path(location.removeprefix("file://")))
