"""S3 source against moto's S3 server on 127.0.0.1, reached with boto3's own configuration (AWS_* variables, as the
CLI and encoder pods do) or through an Airflow connection (as DAG tasks do): listing, fetch,
change detection by ETag and content hash, objects deleted before or during a run, and whole ingest runs."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path
from uuid import uuid4

import pytest

from pagelens.pipeline.stages import ingest, plan_ingest
from pagelens.records import DocumentReport
from pagelens.registry import Registry
from pagelens.settings import Settings
from pagelens.sources import DocumentVanished, SourceError, open_source
from pagelens.sources.s3 import S3Source
from tests.tiny_pdf import tiny_pdf

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def s3_endpoint() -> str:
    """A moto S3 server; boto3's environment and the default AWS connection (an `AIRFLOW_CONN_*` variable) point
    at it."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    connection = {"conn_type": "aws", "login": "testing", "password": "testing",
                  "extra": {"endpoint_url": endpoint, "region_name": "us-east-1"}}
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps(connection))
        for name, value in aws_env(endpoint).items():
            env.setenv(name, value)
        yield endpoint
    server.stop()


def aws_env(endpoint: str) -> dict[str, str]:
    """boto3's own configuration for an S3-compatible store at `endpoint`."""
    return {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture
def s3(s3_endpoint: str):
    """A boto3 client on the same store the source reads."""
    import boto3

    return boto3.client("s3")


@pytest.fixture
def bucket(s3) -> str:
    name = f"pagelens-{uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def upload_multipart(s3, bucket: str, key: str, data: bytes) -> None:
    """Upload as one multipart part: same bytes, but an ETag that is not their MD5."""
    upload = s3.create_multipart_upload(Bucket=bucket, Key=key)
    part = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload["UploadId"], PartNumber=1, Body=data)
    s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload["UploadId"],
                                 MultipartUpload={"Parts": [{"ETag": part["ETag"], "PartNumber": 1}]})


def record_indexed(settings: Settings, namespace: str, doc, sha: str = "0" * 64) -> None:
    """A registry row as a finished run leaves it."""
    from pagelens.embed import model_version

    report = DocumentReport(doc=doc.doc_id, status="indexed", chunks=1, source_uri=doc.source_uri,
                            location=doc.location, etag=doc.etag, content_sha256=sha)
    Registry(settings.registry_url).record(namespace, report, model_version(settings))


def test_listing_pages_past_1000_objects_without_downloading(s3, bucket: str, settings: Settings) -> None:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]  # the server's own store: 1000 PUTs over HTTP take ~11 s
    for n in range(1001):
        backend.put_object(bucket, f"docs/bulk/{n:04d}.txt", b"x")
    report = tiny_pdf("Quarterly report. Revenue grew by nine percent.")
    s3.put_object(Bucket=bucket, Key="docs/finance/report.pdf", Body=report)
    s3.put_object(Bucket=bucket, Key="docs/empty-folder/", Body=b"")  # a console "folder" placeholder
    s3.put_object(Bucket=bucket, Key="docs-archive/old.pdf", Body=b"%PDF")  # shares the prefix's letters only

    listing = open_source(f"s3://{bucket}/docs/", settings).list_documents()

    assert listing.location == f"s3://{bucket}/docs" and listing.complete
    assert len(listing.documents) == 1002
    docs = {d.doc_id: d for d in listing.documents}
    assert "bulk/0000.txt" in docs and "bulk/1000.txt" in docs
    pdf = docs["finance/report.pdf"]
    assert pdf.source_uri == f"s3://{bucket}/docs/finance/report.pdf"
    assert pdf.etag == md5(report) and pdf.location == listing.location
    assert pdf.path == "" and pdf.content_sha256 == ""  # nothing fetched yet


def test_fetch_downloads_into_the_workdir_and_hashes(s3, bucket: str, settings: Settings, tmp_path: Path) -> None:
    data = tiny_pdf("Maintenance manual. Check the valve every week.")
    s3.put_object(Bucket=bucket, Key="manuals/pump/manual.pdf", Body=data)
    source = S3Source(f"s3://{bucket}/manuals", settings)
    [doc] = source.list_documents().documents

    fetched = source.fetch(doc, tmp_path)

    assert Path(fetched.path).read_bytes() == data and Path(fetched.path).name == "manual.pdf"
    assert Path(fetched.path).is_relative_to(tmp_path)
    assert fetched.content_sha256 == hashlib.sha256(data).hexdigest()
    assert fetched.doc_id == "pump/manual.pdf" and fetched.etag == md5(data)
    assert abs(doc.modified - time.time()) < 600  # LastModified: what a retention by modification time reads


def test_plan_skips_unchanged_objects_by_etag_and_retires_deleted_ones(s3, bucket: str, settings: Settings) -> None:
    same, edited = tiny_pdf("Safety sheet. Wear gloves."), tiny_pdf("Price list. Widgets cost four euros.")
    s3.put_object(Bucket=bucket, Key="kb/safety.pdf", Body=same)
    s3.put_object(Bucket=bucket, Key="kb/prices.pdf", Body=edited)
    s3.put_object(Bucket=bucket, Key="kb/retired.pdf", Body=tiny_pdf("Old policy. Superseded."))
    location = f"s3://{bucket}/kb"
    for doc in S3Source(location, settings).list_documents().documents:
        record_indexed(settings, "kb", doc)

    s3.put_object(Bucket=bucket, Key="kb/safety.pdf", Body=same)  # re-uploaded as is: same ETag
    s3.put_object(Bucket=bucket, Key="kb/prices.pdf", Body=tiny_pdf("Price list. Widgets cost five euros."))
    s3.put_object(Bucket=bucket, Key="kb/new.pdf", Body=tiny_pdf("New product. It is blue."))
    s3.delete_object(Bucket=bucket, Key="kb/retired.pdf")

    listing = S3Source(location, settings).list_documents()
    plan = plan_ingest([listing], "kb", settings)

    assert "retired.pdf" not in {d.doc_id for d in listing.documents}
    assert [r.doc for r in plan.skipped] == ["safety.pdf"]
    assert sorted(d.doc_id for d in plan.to_index) == ["new.pdf", "prices.pdf"]
    assert plan.gone == ["retired.pdf"]


def test_identical_reupload_with_a_new_etag_has_the_same_content_hash(s3, bucket: str, settings: Settings,
                                                                      tmp_path: Path) -> None:
    data = tiny_pdf("Org chart. Ana leads sales.")
    s3.put_object(Bucket=bucket, Key="org.pdf", Body=data)
    source = S3Source(f"s3://{bucket}", settings)
    first = source.fetch(source.list_documents().documents[0], tmp_path / "1")
    upload_multipart(s3, bucket, "org.pdf", data)

    [relisted] = source.list_documents().documents
    second = source.fetch(relisted, tmp_path / "2")

    assert relisted.etag != first.etag  # the plan cannot skip it by etag...
    assert second.content_sha256 == first.content_sha256  # ...but the indexer skips it by content


def test_object_deleted_between_listing_and_fetch_is_reported_vanished(s3, bucket: str, settings: Settings,
                                                                       tmp_path: Path) -> None:
    s3.put_object(Bucket=bucket, Key="tmp/draft.pdf", Body=tiny_pdf("Draft. Not final."))
    source = S3Source(f"s3://{bucket}/tmp", settings)
    [doc] = source.list_documents().documents
    s3.delete_object(Bucket=bucket, Key="tmp/draft.pdf")

    with pytest.raises(DocumentVanished, match="deleted after it was listed"):
        source.fetch(doc, tmp_path)


def test_a_missing_bucket_fails_the_listing_instead_of_emptying_the_index(s3_endpoint: str, settings: Settings) -> None:
    with pytest.raises(SourceError, match="NoSuchBucket") as failure:
        S3Source("s3://pagelens-no-such-bucket/docs", settings).list_documents()
    assert not isinstance(failure.value, DocumentVanished)
    with pytest.raises(SourceError, match="names no bucket"):
        S3Source("s3:///docs", settings)


@pytest.fixture
def ingest_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"parse_workers": 1})


def test_ingest_from_s3_converges_on_the_bucket(s3, bucket: str, ingest_settings: Settings) -> None:
    from pagelens.store import VectorStore

    settings, location = ingest_settings, f"s3://{bucket}/policies"
    keep = tiny_pdf("Travel policy. Book trains for trips under four hours.")
    s3.put_object(Bucket=bucket, Key="policies/travel.pdf", Body=keep)
    s3.put_object(Bucket=bucket, Key="policies/expenses.pdf",
                  Body=tiny_pdf("Expense policy. Receipts are required above twenty euros.",
                                "Expense limits. Dinner is capped at forty euros. Hotels at one hundred and twenty."))
    s3.put_object(Bucket=bucket, Key="policies/remote.pdf", Body=tiny_pdf("Remote work policy. Two days a week."))

    first = {r.doc: r.status for r in ingest(location, "policies", settings)}
    store = VectorStore(settings, "policies")
    before = {doc: store.count(doc) for doc in first}
    assert first == dict.fromkeys(("travel.pdf", "expenses.pdf", "remote.pdf"), "indexed")
    assert all(n > 0 for n in before.values()) and before["expenses.pdf"] >= 2

    s3.put_object(Bucket=bucket, Key="policies/expenses.pdf", Body=tiny_pdf("Expense policy. Submit receipts monthly."))
    s3.delete_object(Bucket=bucket, Key="policies/remote.pdf")
    plans = []
    second = {r.doc: r for r in ingest(location, "policies", settings, on_plan=plans.append)}

    assert [d.doc_id for d in plans[0].to_index] == ["expenses.pdf"]  # travel.pdf is not even downloaded
    assert second["travel.pdf"].status == "skipped" and second["remote.pdf"].status == "deleted"
    assert store.count("remote.pdf") == 0
    assert 0 < store.count("expenses.pdf") < before["expenses.pdf"]  # the old version's extra chunks are gone
    assert store.count("travel.pdf") == before["travel.pdf"]

    upload_multipart(s3, bucket, "policies/travel.pdf", keep)  # same bytes, new ETag
    third = {r.doc: r for r in ingest(location, "policies", settings)}
    assert (third["travel.pdf"].status, third["travel.pdf"].reason) == ("skipped", "unchanged content")
    plans.clear()
    ingest(location, "policies", settings, on_plan=plans.append)
    assert plans[0].to_index == []  # the new ETag was recorded: nothing is downloaded any more


def test_cli_ingests_an_s3_prefix(s3, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    from pagelens import cli
    from pagelens.settings import get_settings

    s3.put_object(Bucket=bucket, Key="cli/guide.pdf", Body=tiny_pdf("Quick start guide. Press the green button."))
    monkeypatch.setenv("PAGELENS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("PAGELENS_PARSE_WORKERS", "1")
    get_settings.cache_clear()
    try:
        assert cli.main(["ingest", f"s3://{bucket}/cli", "--namespace", "cli", "--json"]) == 0
    finally:
        get_settings.cache_clear()
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["indexed"] == 1 and summary["documents"][0]["doc"] == "guide.pdf"


def test_inside_airflow_the_source_reads_through_the_connection(s3, bucket: str, settings: Settings,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """DAG tasks install connection-built clients: the connection wins over boto3's environment."""
    from pagelens.airflow.clients import install
    from pagelens.sources import clients

    s3.put_object(Bucket=bucket, Key="docs/a.pdf", Body=tiny_pdf("A."))
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # boto3 alone would find nothing there
    monkeypatch.setattr(clients, "_builders", {})
    with pytest.raises(SourceError, match=r"unreachable.*AWS credentials"):
        S3Source(f"s3://{bucket}/docs", settings).list_documents()
    install()
    assert clients.installed("s3") and clients.installed("graph")
    listing = S3Source(f"s3://{bucket}/docs", settings).list_documents()
    assert [d.doc_id for d in listing.documents] == ["a.pdf"]
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps({"conn_type": "aws", "login": "testing",
        "password": "testing", "extra": {"endpoint_url": "http://127.0.0.1:9", "region_name": "us-east-1"}}))
    with pytest.raises(SourceError, match="Airflow connection 'aws_default'"):
        S3Source(f"s3://{bucket}/docs", settings).list_documents()
