"""An S3 prefix as a document source, read with a boto3 client (`clients.s3_client`: an Airflow connection's
inside Airflow, boto3's own configuration elsewhere).

The listing is complete (every object under the prefix), so an object that left the bucket is retired by the
plan. The version marker is the object's ETag alone: S3 derives it from the content (its MD5 for a
single-part upload; a new value for every multipart or SSE-KMS upload), so every content change changes it,
and an identical single-part re-upload keeps it and is skipped without a download. An identical re-upload
that gets a new ETag is downloaded once and then skipped by its content hash. `LastModified` would only add
downloads of unchanged bytes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from functools import cached_property
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from pagelens.sources import DocumentVanished, Listing, SourceDocument, SourceError, bucket_location

if TYPE_CHECKING:
    from pagelens.settings import Settings

MISSING_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
CONFIG_CODES = frozenset({"NoSuchBucket", "AccessDenied", "AllAccessDisabled", "InvalidAccessKeyId",
                          "SignatureDoesNotMatch", "InvalidBucketName"})


def parse_s3_location(location: str) -> tuple[str, str]:
    """`s3://bucket/some/prefix` -> (bucket, "some/prefix/")."""
    return bucket_location(location, "s3", "S3")


def split_s3_uri(uri: str) -> tuple[str, str]:
    """`s3://bucket/some/key.json` -> (bucket, "some/key.json")."""
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if not bucket or not key:
        raise SourceError(f"{uri!r} is not an S3 object URI: use s3://bucket/key")
    return bucket, key


class S3Source:
    """Every object under `s3://bucket/prefix`; doc ids are keys relative to the prefix."""

    def __init__(self, location: str, settings: Settings) -> None:
        self.bucket, self.prefix = parse_s3_location(location)
        self.location = f"s3://{self.bucket}/{self.prefix}".rstrip("/")  # one spelling: the registry keys on it
        self.settings = settings

    @cached_property
    def client(self) -> Any:
        from pagelens.sources.clients import s3_client

        return s3_client(self.settings)

    def list_documents(self, cursor: str = "") -> Listing:
        """Keys and ETags of all objects (paginated, no content); folder placeholder keys are left out."""
        with self.errors():
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix)
            objects = [obj for page in pages for obj in page.get("Contents", [])]
        documents = [self.document(obj) for obj in objects if not obj["Key"].endswith("/")]
        return Listing(location=self.location, documents=documents, complete=True)

    def document(self, obj: dict[str, Any]) -> SourceDocument:
        key, modified = obj["Key"], obj.get("LastModified")
        return SourceDocument(doc_id=key.removeprefix(self.prefix), source_uri=f"s3://{self.bucket}/{key}",
                              etag=str(obj.get("ETag", "")).strip('"'), location=self.location,
                              modified=modified.timestamp() if modified else 0.0)

    def fetch(self, doc: SourceDocument, workdir: Path) -> SourceDocument:
        """Download into `workdir`, hashing on the way; the etag becomes that of the bytes actually read."""
        key = doc.source_uri.removeprefix(f"s3://{self.bucket}/")
        target = workdir / hashlib.sha1(doc.source_uri.encode()).hexdigest()[:12] / PurePosixPath(key).name
        target.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        with self.errors(key):
            response = self.client.get_object(Bucket=self.bucket, Key=key)
            with target.open("wb") as handle:
                for block in response["Body"].iter_chunks(1 << 20):
                    digest.update(block)
                    handle.write(block)
        return replace(doc, path=str(target), content_sha256=digest.hexdigest(),
                       etag=str(response.get("ETag", doc.etag)).strip('"'))

    @contextmanager
    def errors(self, key: str = "") -> Iterator[None]:
        """Turn botocore failures into source errors that say what to do."""
        from botocore.exceptions import BotoCoreError, ClientError

        where = f"s3://{self.bucket}/{key or self.prefix}"
        try:
            yield
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if key and code in MISSING_CODES:
                raise DocumentVanished(f"{where} was deleted after it was listed") from exc
            hint = (f"check the bucket name and the permissions of {credentials(self.settings)}"
                    if code in CONFIG_CODES else "a transient failure; the task's retry reads it again")
            raise SourceError(f"S3 refused {where} ({code}): {exc}; {hint}") from exc
        except BotoCoreError as exc:
            raise SourceError(f"S3 is unreachable for {where}: {exc}; check the endpoint and "
                              f"{credentials(self.settings)}") from exc


def credentials(settings: Settings) -> str:
    """Where the S3 credentials come from, for error messages."""
    from pagelens.sources.clients import installed

    return (f"Airflow connection {settings.aws_conn_id!r}" if installed("s3")
            else "AWS credentials (AWS_ACCESS_KEY_ID / AWS_PROFILE / web identity; AWS_ENDPOINT_URL for other stores)")
