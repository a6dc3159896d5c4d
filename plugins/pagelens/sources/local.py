"""A local folder (or single file) as a document source."""

from __future__ import annotations

import hashlib
import os
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

from pagelens.errors import OutsideSource
from pagelens.sources import DocumentVanished, Listing, SourceDocument, SourceError


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class LocalSource:
    """Every regular file under `root`; doc ids are paths relative to it (a single file: its name).

    The folder is a boundary: a symlink (file or folder) that resolves outside it is listed, so the run reports
    it, but never read: `fetch` quarantines it as `outside-source`. Links that stay inside are followed.
    """

    def __init__(self, root: Path) -> None:
        if not root.exists():
            raise SourceError(f"source folder {root} does not exist")
        self.root = root.resolve()
        self.location = str(self.root)

    def list_documents(self, cursor: str = "") -> Listing:
        files = [self.root] if self.root.is_file() else sorted(p for p in self.root.rglob("*") if _file_or_link(p))
        base = self.root.parent if self.root.is_file() else self.root
        documents = []
        for path in files:
            if path.name.startswith("."):
                continue
            documents.append(SourceDocument(doc_id=path.relative_to(base).as_posix(), source_uri=path.as_uri(),
                                            etag=_etag(path), location=self.location, path=str(path),
                                            modified=_modified(path)))
        return Listing(location=self.location, documents=documents)

    def fetch(self, doc: SourceDocument, workdir: Path) -> SourceDocument:
        """Copy the file into `workdir` while hashing it, so what is parsed, hashed and kept is one set of bytes
        (the file may change or become a link meanwhile); refuse it if it resolves outside the folder."""
        path = self._inside(Path(url2pathname(urlparse(doc.source_uri).path)))
        target = workdir / hashlib.sha1(doc.source_uri.encode()).hexdigest()[:12] / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        try:
            source = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)  # resolved: a link swapped in now fails here
        except FileNotFoundError as exc:
            raise DocumentVanished(f"{doc.doc_id} was deleted after it was listed") from exc
        except OSError as exc:
            raise OutsideSource(f"{doc.doc_id} changed into a link while it was read ({exc.strerror})") from exc
        with os.fdopen(source, "rb") as handle, target.open("wb") as out:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
                out.write(block)
        return replace(doc, path=str(target), content_sha256=digest.hexdigest())

    def _inside(self, path: Path) -> Path:
        """The file `path` really is, if that is inside the folder (or is the single-file source itself)."""
        try:
            resolved = path.resolve(strict=True)
        except FileNotFoundError as exc:
            raise DocumentVanished(f"{path.name} was deleted after it was listed") from exc
        except (OSError, RuntimeError) as exc:  # a link loop
            raise OutsideSource(f"{path.name} cannot be resolved ({exc})") from exc
        if resolved != self.root and self.root not in resolved.parents:
            raise OutsideSource(f"{path.relative_to(self.root) if path.is_relative_to(self.root) else path.name} is "
                                "a link to a file outside the source folder; it was not read")
        if not resolved.is_file():
            raise OutsideSource(f"{path.name} is not a regular file")
        return resolved


def _file_or_link(path: Path) -> bool:
    """Regular files, and symlinks to files (inside or out: those outside are refused at fetch, and so reported)."""
    return path.is_file() or (path.is_symlink() and not path.is_dir())


def _modified(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:  # a dangling link
        return 0.0


def _etag(path: Path) -> str:
    """Size and mtime of the file, and of the link itself for a symlink: re-pointing a link is a change."""
    try:
        stat = path.stat()
        mark = f"{stat.st_mtime_ns}-{stat.st_size}"
    except OSError:  # a dangling link: listed, so the fetch reports it
        mark = "missing"
    return f"{mark}-l{path.lstat().st_mtime_ns}" if path.is_symlink() else mark
