"""A local folder (or single file) as a document source."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

from pagelens.sources import DocumentVanished, Listing, SourceDocument, SourceError


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class LocalSource:
    """Every regular file under `root`; doc ids are paths relative to it (a single file: its name)."""

    def __init__(self, root: Path) -> None:
        if not root.exists():
            raise SourceError(f"source folder {root} does not exist")
        self.root = root.resolve()
        self.location = str(self.root)

    def list_documents(self, cursor: str = "") -> Listing:
        files = [self.root] if self.root.is_file() else sorted(p for p in self.root.rglob("*") if p.is_file())
        base = self.root.parent if self.root.is_file() else self.root
        documents = []
        for path in files:
            if path.name.startswith("."):
                continue
            stat = path.stat()
            documents.append(SourceDocument(doc_id=path.relative_to(base).as_posix(), source_uri=path.as_uri(),
                                            etag=f"{stat.st_mtime_ns}-{stat.st_size}", location=self.location,
                                            path=str(path)))
        return Listing(location=self.location, documents=documents)

    def fetch(self, doc: SourceDocument, workdir: Path) -> SourceDocument:
        path = Path(doc.path)
        try:
            return replace(doc, path=str(path), content_sha256=file_sha256(path))
        except FileNotFoundError as exc:
            raise DocumentVanished(f"{path} was deleted after it was listed") from exc
