"""GCS source against gcp-storage-emulator on 127.0.0.1, reached with the library's own configuration
(`STORAGE_EMULATOR_HOST`, as the CLI and encoder pods would): listing by generation, fetch and hashing,
metadata-only updates, objects deleted before or during a run, and whole ingest runs that converge."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path
from uuid import uuid4

import pytest

from pagelens.embed import model_version
from pagelens.pipeline.stages import ingest, plan_ingest
from pagelens.records import DocumentReport
from pagelens.registry import Registry
from pagelens.settings import Settings
from pagelens.sources import DocumentVanished, SourceError
from pagelens.sources.gcs import GCSSource
from tests.tiny_pdf import tiny_pdf

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def gcs_endpoint() -> str:
    """gcp-storage-emulator in memory on a free port; the storage library is pointed at it."""
    port = _free_port()
    binary = Path(sys.executable).with_name("gcp-storage-emulator")
    server = subprocess.Popen([str(binary), "start", "--host", "127.0.0.1", "--port", str(port), "--in-memory"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.2)
    else:
        server.kill()
        pytest.fail("gcp-storage-emulator did not start within 30 s")
    endpoint = f"http://127.0.0.1:{port}"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("STORAGE_EMULATOR_HOST", endpoint)
        env.setenv("GOOGLE_CLOUD_PROJECT", "pagelens-test")
        yield endpoint
    server.terminate()
    server.wait(10)


@pytest.fixture
def gcs(gcs_endpoint: str):
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    return storage.Client(project="pagelens-test", credentials=AnonymousCredentials())


@pytest.fixture
def bucket(gcs) -> str:
    name = f"docs-{uuid4().hex[:10]}"
    gcs.create_bucket(name)
    return name


def _put(gcs, bucket: str, name: str, data: bytes) -> int:
    blob = gcs.bucket(bucket).blob(name)
    blob.upload_from_string(data, content_type="application/pdf")
    blob.reload()
    return int(blob.generation)


def test_listing_names_relative_to_the_prefix_with_generations(gcs, bucket: str, settings: Settings) -> None:
    generation = _put(gcs, bucket, "kb/hr/leave.pdf", tiny_pdf("Leave policy. Thirty days a year."))
    _put(gcs, bucket, "kb/folder/", b"")  # a console-made folder placeholder
    _put(gcs, bucket, "other/skip.pdf", tiny_pdf("Not under the prefix."))
    listing = GCSSource(f"gs://{bucket}/kb/", settings, gcs).list_documents()
    assert listing.location == f"gs://{bucket}/kb" and listing.complete
    assert [(d.doc_id, d.source_uri, d.etag) for d in listing.documents] == [
        ("hr/leave.pdf", f"gs://{bucket}/kb/hr/leave.pdf", str(generation))]


def test_fetch_downloads_and_hashes_and_metadata_updates_keep_the_generation(gcs, bucket: str, settings: Settings,
                                                                            tmp_path: Path) -> None:
    import hashlib

    data = tiny_pdf("Security policy. Badges are worn at all times.")
    _put(gcs, bucket, "kb/security.pdf", data)
    source = GCSSource(f"gs://{bucket}/kb", settings, gcs)
    (doc,) = source.list_documents().documents
    fetched = source.fetch(doc, tmp_path)
    assert Path(fetched.path).read_bytes() == data and fetched.content_sha256 == hashlib.sha256(data).hexdigest()
    assert fetched.etag == doc.etag

    blob = gcs.bucket(bucket).get_blob("kb/security.pdf")
    blob.metadata = {"owner": "it"}
    blob.patch()  # a relabel: same content, same generation, so not downloaded again
    assert source.list_documents().documents[0].etag == doc.etag
    new_generation = _put(gcs, bucket, "kb/security.pdf", data + b"\n")
    assert source.list_documents().documents[0].etag == str(new_generation) != doc.etag


def test_object_deleted_between_listing_and_fetch_is_reported_vanished(gcs, bucket: str, settings: Settings,
                                                                      tmp_path: Path) -> None:
    _put(gcs, bucket, "kb/gone.pdf", tiny_pdf("Soon gone."))
    source = GCSSource(f"gs://{bucket}/kb", settings, gcs)
    (doc,) = source.list_documents().documents
    gcs.bucket(bucket).blob("kb/gone.pdf").delete()
    with pytest.raises(DocumentVanished, match="deleted after it was listed"):
        source.fetch(doc, tmp_path)


def test_a_missing_bucket_fails_the_listing_instead_of_emptying_the_index(gcs, settings: Settings) -> None:
    with pytest.raises(SourceError, match="no bucket 'no-such-bucket-x1'"):
        GCSSource("gs://no-such-bucket-x1/kb", settings, gcs).list_documents()


def test_plan_skips_unchanged_generations_and_retires_deleted_objects(gcs, bucket: str, settings: Settings) -> None:
    for name in ("a.pdf", "b.pdf"):
        _put(gcs, bucket, f"kb/{name}", tiny_pdf(f"Document {name}."))
    source = GCSSource(f"gs://{bucket}/kb", settings, gcs)
    registry, version = Registry(settings.registry_url), model_version(settings)
    for doc in source.list_documents().documents:
        registry.record("kb", DocumentReport(doc=doc.doc_id, status="indexed", source_uri=doc.source_uri,
                                             location=doc.location, etag=doc.etag, content_sha256="0" * 64), version)
    _put(gcs, bucket, "kb/a.pdf", tiny_pdf("Document a, second version."))
    gcs.bucket(bucket).blob("kb/b.pdf").delete()
    plan = plan_ingest([source.list_documents()], "kb", settings)
    assert [d.doc_id for d in plan.to_index] == ["a.pdf"] and plan.gone == ["b.pdf"]
def test_ingest_from_gcs_converges_on_the_bucket(gcs, bucket: str, settings: Settings) -> None:
    from pagelens.store import VectorStore

    settings, location = settings.model_copy(update={"parse_workers": 1}), f"gs://{bucket}/policies"
    _put(gcs, bucket, "policies/travel.pdf", tiny_pdf("Travel policy. Book trains for trips under four hours."))
    _put(gcs, bucket, "policies/remote.pdf", tiny_pdf("Remote work policy. Two days a week."))
    first = {r.doc: r.status for r in ingest(location, "policies", settings)}
    assert first == {"travel.pdf": "indexed", "remote.pdf": "indexed"}

    gcs.bucket(bucket).blob("policies/remote.pdf").delete()
    plans = []
    second = {r.doc: r for r in ingest(location, "policies", settings, on_plan=plans.append)}
    assert plans[0].to_index == [] and second["travel.pdf"].status == "skipped"
    assert second["remote.pdf"].status == "deleted" and VectorStore(settings, "policies").count("remote.pdf") == 0


def test_inside_airflow_gcs_clients_come_from_the_google_provider_or_say_how_to_get_it(settings: Settings) -> None:
    import importlib.util

    from pagelens.airflow import clients as airflow_clients
    from pagelens.sources import clients

    try:
        airflow_clients.install()
        assert clients.installed("gcs")
        if importlib.util.find_spec("airflow.providers.google") is None:  # not in this virtualenv (see README)
            with pytest.raises(RuntimeError, match="pip install apache-airflow-providers-google"):
                clients.gcs_client(settings)
        else:
            assert type(clients.gcs_client(settings)).__name__ == "Client"
    finally:
        for kind in clients.KINDS:
            clients.uninstall(kind)
