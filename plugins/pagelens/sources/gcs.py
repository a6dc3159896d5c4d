"""A Google Cloud Storage prefix as a document source, read with a `google.cloud.storage.Client`
(`clients.gcs_client`: built from an Airflow connection through the Google provider's `GCSHook` inside Airflow,
from Application Default Credentials and `PAGELENS_GCS_PROJECT` elsewhere; `STORAGE_EMULATOR_HOST` points the
library at an emulator).

The listing is complete, so an object that left the bucket is retired by the plan. The version marker is the
object's generation: GCS gives every write of an object's content a new one and keeps it across metadata
updates, so a changed file is always downloaded and a relabelled one is not. (The ETag would change with
metadata too; an identical re-upload gets a new generation and is downloaded once, then skipped by its hash.)
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
from pagelens.sources.local import file_sha256

if TYPE_CHECKING:
    import datetime as dt

    from pagelens.settings import Settings


def parse_gcs_location(location: str) -> tuple[str, str]:
    """`gs://bucket/some/prefix` -> (bucket, "some/prefix/")."""
    return bucket_location(location, "gs", "GCS")


class GCSSource:
    """Every object under `gs://bucket/prefix`; doc ids are object names relative to the prefix."""

    def __init__(self, location: str, settings: Settings, client: Any | None = None) -> None:
        self.bucket_name, self.prefix = parse_gcs_location(location)
        self.location = f"gs://{self.bucket_name}/{self.prefix}".rstrip("/")  # one spelling: the registry keys on it
        self.settings = settings
        if client is not None:
            self.__dict__["client"] = client

    @cached_property
    def client(self) -> Any:
        from pagelens.sources.clients import gcs_client

        return gcs_client(self.settings)

    def list_documents(self, cursor: str = "") -> Listing:
        """Names and generations of all objects (paginated by the library, no content); folder placeholders left out."""
        with self.errors():
            blobs = list(self.client.list_blobs(self.bucket_name, prefix=self.prefix or None))
        documents = [self.document(b.name, b.generation, getattr(b, "updated", None))
                     for b in blobs if not b.name.endswith("/")]
        return Listing(location=self.location, documents=documents, complete=True)

    def document(self, name: str, generation: int | None, updated: dt.datetime | None = None) -> SourceDocument:
        return SourceDocument(doc_id=name.removeprefix(self.prefix), source_uri=f"gs://{self.bucket_name}/{name}",
                              etag=str(generation or ""), location=self.location,
                              modified=updated.timestamp() if updated else 0.0)

    def fetch(self, doc: SourceDocument, workdir: Path) -> SourceDocument:
        """Download the object's current generation into `workdir`, hashing on the way; the etag becomes the
        generation actually read."""
        name = doc.source_uri.removeprefix(f"gs://{self.bucket_name}/")
        target = workdir / hashlib.sha1(doc.source_uri.encode()).hexdigest()[:12] / PurePosixPath(name).name
        target.parent.mkdir(parents=True, exist_ok=True)
        with self.errors(name):
            blob = self.client.bucket(self.bucket_name).get_blob(name)
            if blob is None:
                raise DocumentVanished(f"gs://{self.bucket_name}/{name} was deleted after it was listed")
            with target.open("wb") as handle:
                blob.download_to_file(handle)
        return replace(doc, path=str(target), content_sha256=file_sha256(target), etag=str(blob.generation or doc.etag))

    @contextmanager
    def errors(self, name: str = "") -> Iterator[None]:
        """Turn google-cloud failures into source errors that say what to do."""
        from google.api_core import exceptions as gexc
        from google.auth.exceptions import GoogleAuthError

        where = f"gs://{self.bucket_name}/{name or self.prefix}"
        try:
            yield
        except gexc.NotFound as exc:
            if name:
                raise DocumentVanished(f"{where} was deleted after it was listed") from exc
            raise SourceError(f"GCS has no bucket {self.bucket_name!r} ({exc.message}); check the location") from exc
        except (gexc.Forbidden, gexc.Unauthorized) as exc:
            raise SourceError(f"GCS refused {where} ({exc.code}): {exc.message}; grant "
                              f"roles/storage.objectViewer on the bucket to {credentials(self.settings)}") from exc
        except gexc.GoogleAPICallError as exc:
            raise SourceError(f"GCS failed on {where} ({exc.code}): {exc.message}; a transient failure, the "
                              "task's retry reads it again") from exc
        except (GoogleAuthError, OSError) as exc:
            raise SourceError(f"GCS is unreachable or has no credentials for {where}: {exc}; check "
                              f"{credentials(self.settings)}") from exc


def credentials(settings: Settings) -> str:
    """Where the GCS credentials come from, for error messages."""
    from pagelens.sources.clients import installed

    return (f"the Airflow connection {settings.gcp_conn_id!r}" if installed("gcs")
            else "Application Default Credentials (GOOGLE_APPLICATION_CREDENTIALS, gcloud auth, workload identity)")
