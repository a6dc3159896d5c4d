"""The exact bytes of every indexed document, kept by content hash, so page images show what was indexed.

Ingest puts a document's bytes (the ones it hashed and parsed) here, with the boxes of its words that hold
personal data; page images are rendered from these bytes only, never from whatever the source holds now.
Every read is checked against the hash: bytes that changed count as gone. Locally the store is a folder
under the data dir; in production an S3 prefix (`PAGELENS_CONTENT_STORE=s3://bucket/prefix`, through the
Airflow connection of `PAGELENS_AWS_CONN_ID`), read through a local cache.

Nothing here decides what to keep: `pipeline/sweep.py` lists the objects (`objects`) and deletes those of
hashes no registry row references any more (`delete`). Putting bytes that are already kept refreshes their
timestamp, so a sweep's grace period protects content a running ingest has just put, even if it was old.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pagelens.sources.local import file_sha256

if TYPE_CHECKING:
    from pagelens.settings import Settings

REGIONS = "pii-v1"  # sidecar with the boxes of redacted words per page; bump when redact.py rules change


@dataclass(frozen=True)
class StoredObject:
    """One object of the store: a document's bytes (`<sha>`) or one of its sidecars (`<sha>.<name>.json`)."""

    key: str  # relative to the store's root or prefix
    sha256: str
    size: int
    modified: float  # Unix seconds


class ContentStore(Protocol):
    def put(self, sha256: str, path: Path) -> None:
        """Keep the file's bytes under their hash (idempotent; bytes already kept get a fresh timestamp)."""
        ...

    def objects(self, sha256: str | None = None) -> Iterator[StoredObject]:
        """Every object kept (or those of one hash)."""
        ...

    def delete(self, keys: Iterable[str]) -> None:
        """Remove these objects (missing ones are fine)."""
        ...

    def get(self, sha256: str) -> Path | None:
        """A local file holding exactly those bytes (checked), or None when they are not kept."""
        ...

    def put_json(self, sha256: str, name: str, value: Any) -> None: ...

    def get_json(self, sha256: str, name: str) -> Any | None: ...


def content_store(settings: Settings) -> ContentStore:
    if settings.content_store.startswith("s3://"):
        return S3ContentStore(settings.content_store, settings, settings.data_dir / "content-cache")
    if "://" in settings.content_store:
        raise ValueError(f"PAGELENS_CONTENT_STORE={settings.content_store!r}: use a folder or s3://bucket/prefix")
    return LocalContentStore(Path(settings.content_store) if settings.content_store else settings.data_dir / "content")


def _key(sha256: str) -> str:
    if len(sha256) != 64 or not all(c in "0123456789abcdef" for c in sha256):
        raise ValueError(f"not a SHA-256 hex digest: {sha256[:80]!r}")
    return f"{sha256[:2]}/{sha256}"


def sha_of(name: str) -> str | None:
    """The hash an object's file name is kept under (`<sha>` or `<sha>.<name>.json`), None for anything else."""
    sha = name.split(".", 1)[0]
    return sha if len(sha) == 64 and all(c in "0123456789abcdef" for c in sha) else None


def _atomic_write(target: Path, write: Any) -> None:
    """Write through a temporary file in the target's folder and rename: readers never see half a file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


class _Verified:
    """Files whose hash was checked in this process, by (inode, size, mtime): a 50 MB PDF is hashed once."""

    def __init__(self) -> None:
        self.seen: dict[str, tuple[int, int, int]] = {}

    def check(self, path: Path, sha256: str) -> bool:
        try:
            stat = path.stat()
        except FileNotFoundError:
            return False
        mark = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
        if self.seen.get(str(path)) == mark:
            return True
        if file_sha256(path) != sha256:
            return False
        self.seen[str(path)] = mark
        return True

    def remember(self, path: Path) -> None:
        """A checked file whose timestamp this process just changed is still the checked file."""
        stat = path.stat()
        self.seen[str(path)] = (stat.st_ino, stat.st_size, stat.st_mtime_ns)


class LocalContentStore:
    """`<root>/<sha[:2]>/<sha>`, sidecars beside it as `<sha>.<name>.json`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.verified = _Verified()

    def put(self, sha256: str, path: Path) -> None:
        target = self.root / _key(sha256)
        if self.verified.check(target, sha256):
            os.utime(target)  # kept again now: a sweep's grace period counts from here
            self.verified.remember(target)
            return
        with path.open("rb") as source:  # a copy, never a link: later changes to `path` must not reach it
            _atomic_write(target, lambda h: shutil.copyfileobj(source, h, 1 << 20))

    def get(self, sha256: str) -> Path | None:
        path = self.root / _key(sha256)
        return path if self.verified.check(path, sha256) else None

    def put_json(self, sha256: str, name: str, value: Any) -> None:
        _atomic_write(self.root / f"{_key(sha256)}.{name}.json", lambda h: h.write(json.dumps(value).encode()))

    def get_json(self, sha256: str, name: str) -> Any | None:
        try:
            return json.loads((self.root / f"{_key(sha256)}.{name}.json").read_bytes())
        except (FileNotFoundError, ValueError):
            return None

    def objects(self, sha256: str | None = None) -> Iterator[StoredObject]:
        folders = [self.root / _key(sha256)[:2]] if sha256 else sorted(self.root.glob("??"))
        for folder in folders:
            for path in sorted(folder.glob(f"{sha256}*" if sha256 else "*")):
                sha = sha_of(path.name)
                if sha and (sha256 is None or sha == sha256) and path.is_file():
                    stat = path.stat()
                    yield StoredObject(f"{folder.name}/{path.name}", sha, stat.st_size, stat.st_mtime)

    def delete(self, keys: Iterable[str]) -> None:
        for key in keys:
            with contextlib.suppress(FileNotFoundError):
                (self.root / key).unlink()


class S3ContentStore:
    """`s3://bucket/prefix/<sha[:2]>/<sha>` (`clients.s3_client`); reads land in a local cache, checked by hash."""

    def __init__(self, location: str, settings: Settings, cache_dir: Path) -> None:
        from pagelens.sources.s3 import parse_s3_location

        self.bucket, self.prefix = parse_s3_location(location)
        self.settings, self.cache = settings, LocalContentStore(cache_dir)

    @cached_property
    def client(self) -> Any:
        from pagelens.sources.clients import s3_client

        return s3_client(self.settings)

    def put(self, sha256: str, path: Path) -> None:
        key = self.prefix + _key(sha256)
        if not self._exists(key):
            self.client.upload_file(str(path), self.bucket, key)
        else:  # kept again now: copying the object onto itself gives it a new LastModified (the sweep's grace)
            self.client.copy_object(Bucket=self.bucket, Key=key, CopySource={"Bucket": self.bucket, "Key": key},
                                    Metadata={"kept-at": str(int(time.time()))}, MetadataDirective="REPLACE")

    def objects(self, sha256: str | None = None) -> Iterator[StoredObject]:
        start = self.prefix + (_key(sha256) if sha256 else "")
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=start):
            for item in page.get("Contents", []):
                key = item["Key"][len(self.prefix):]
                sha = sha_of(key.rsplit("/", 1)[-1])
                if sha and key.count("/") == 1 and (sha256 is None or sha == sha256):
                    yield StoredObject(key, sha, int(item["Size"]), item["LastModified"].timestamp())

    def delete(self, keys: Iterable[str]) -> None:
        keys = list(keys)
        for start in range(0, len(keys), 1000):  # DeleteObjects takes at most 1,000 keys
            batch = [{"Key": self.prefix + k} for k in keys[start:start + 1000]]
            response = self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
            if response.get("Errors"):
                first = response["Errors"][0]
                raise OSError(f"S3 refused to delete {len(response['Errors'])} objects of s3://{self.bucket}/"
                              f"{self.prefix} (first: {first.get('Key')}: {first.get('Message')})")
        self.cache.delete(keys)  # the local copies of what is gone

    def get(self, sha256: str) -> Path | None:
        cached = self.cache.get(sha256)
        if cached is not None:
            return cached
        body = self._read(self.prefix + _key(sha256))
        if body is None:
            return None
        target = self.cache.root / _key(sha256)
        _atomic_write(target, lambda h: shutil.copyfileobj(body, h, 1 << 20))
        return self.cache.get(sha256)  # None if the object's bytes do not match their name

    def put_json(self, sha256: str, name: str, value: Any) -> None:
        self.client.put_object(Bucket=self.bucket, Key=f"{self.prefix}{_key(sha256)}.{name}.json",
                               Body=json.dumps(value).encode(), ContentType="application/json")

    def get_json(self, sha256: str, name: str) -> Any | None:
        body = self._read(f"{self.prefix}{_key(sha256)}.{name}.json")
        try:
            return None if body is None else json.loads(body.read())
        except ValueError:
            return None

    def _exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
            return True
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in ("404", "NoSuchKey", "NotFound"):
                return False
            raise

    def _read(self, key: str) -> Any | None:
        from botocore.exceptions import ClientError

        try:
            return self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
