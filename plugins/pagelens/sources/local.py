"""A local folder (or single file) as a document source."""

from __future__ import annotations

import hashlib
from pathlib import Path

from pagelens.sources import SourceDocument


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
            raise FileNotFoundError(f"source folder {root} does not exist")
        self.root = root.resolve()

    def list_documents(self) -> list[SourceDocument]:
        files = [self.root] if self.root.is_file() else sorted(p for p in self.root.rglob("*") if p.is_file())
        base = self.root.parent if self.root.is_file() else self.root
        return [SourceDocument(doc_id=p.relative_to(base).as_posix(), path=str(p), source_uri=p.as_uri(),
                               content_sha256=file_sha256(p)) for p in files if not p.name.startswith(".")]
