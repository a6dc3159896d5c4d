"""The pods' entrypoint run as the pods run it: a manifest on S3 (moto), `python -m pagelens.pipeline.pod`
(`--step parse` in the parser pod, the default `--step encode` in the encoder pod).

The subprocess gets what the pod gets: PAGELENS_* settings and boto3's AWS configuration as environment variables.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pagelens.pipeline.batches import (
    BatchManifest,
    InvalidManifest,
    ParsedBatch,
    inline_manifest,
    read_manifest,
    write_manifests,
)
from pagelens.pipeline.handoff import ArtifactMissing
from pagelens.pipeline.pod import ModelMismatch, encode_manifest, parse_manifest
from pagelens.settings import Settings
from pagelens.sources.local import LocalSource
from tests.test_source_s3 import aws_env

REPO = Path(__file__).resolve().parents[1]
BUCKET = "pagelens-manifests"
NS = "acme"


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """A moto S3 server with the manifest bucket; yields the endpoint. The pod (no Airflow in its image) reaches it
    with boto3's own configuration, as it does with its web identity in production."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    with pytest.MonkeyPatch.context() as env:
        for name, value in aws_env(endpoint).items():
            env.setenv(name, value)
        import boto3

        boto3.client("s3").create_bucket(Bucket=BUCKET)
        yield endpoint
    server.stop()


def encode(manifest: str, data_dir: Path, endpoint: str, *extra: str,
           blocked: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    """Run the pod's entrypoint where Airflow (and the `blocked` packages) cannot be imported, as in the encoder
    image."""
    no_airflow = data_dir / "no-airflow"
    for package in ("airflow", *blocked):
        (no_airflow / package).mkdir(parents=True, exist_ok=True)
        (no_airflow / package / "__init__.py").write_text(f'raise ImportError("{package} is not for the pod")\n')
    env = {**os.environ, "PAGELENS_DATA_DIR": str(data_dir), **aws_env(endpoint),
           "PYTHONPATH": os.pathsep.join([str(no_airflow), str(REPO / "plugins")]),
           "OMP_THREAD_LIMIT": "1", "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "pagelens.pipeline.pod", "--manifest", manifest, *extra],
                          env=env, capture_output=True, text=True, timeout=600, check=False)


def sample_manifest(sample_docs: Path, settings: Settings) -> BatchManifest:
    from pagelens.embed import model_version

    documents = [d.to_dict() for d in LocalSource(sample_docs).list_documents().documents]
    return BatchManifest(NS, documents, None, model_version(settings))


@pytest.mark.integration
def test_the_pod_encodes_a_batch_the_worker_parsed_without_opening_a_pdf(s3_endpoint: str, sample_docs: Path,
                                                                         tmp_path: Path) -> None:
    from pagelens.registry import Registry
    from pagelens.store import VectorStore

    settings = Settings(data_dir=tmp_path / "data", manifest_bucket=BUCKET)
    parsed = parse_manifest(sample_manifest(sample_docs, settings), settings)  # the parse task, on the worker
    assert [next(iter(i)) for i in parsed.items] == ["parsed", "parsed"]
    (uri,) = write_manifests({f"{NS}-0000": parsed}, settings, "pagelens_ingest", "manual__2025-01-01T00:00:00+00:00")
    assert uri == f"s3://{BUCKET}/pagelens/manifests/pagelens_ingest/manual__2025-01-01T00:00:00+00:00/{NS}-0000.json"

    reports_file = tmp_path / "xcom" / "return.json"
    result = encode(uri, settings.data_dir, s3_endpoint, "--reports", str(reports_file),
                    blocked=("pdfplumber", "pytesseract", "pikepdf"))  # no PDF parsing, no OCR in the pod
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Batch done: 2 indexed, 0 skipped, 0 quarantined, 0 deleted" in result.stdout + result.stderr, result.stdout

    reports = json.loads(reports_file.read_text())
    assert reports["namespace"] == NS and reports["generation"] is None
    chunks = {r["doc"]: r["chunks"] for r in reports["documents"] if r["status"] == "indexed"}
    assert set(chunks) == {"acme_annual_report.pdf", "warehouse_inspection_scan.png"}
    scan = next(r for r in reports["documents"] if r["doc"] == "warehouse_inspection_scan.png")
    assert scan["ocr_pages"] == 1  # the parse side's figures travel with the batch
    store, registry = VectorStore(settings, NS), Registry(settings.registry_url)  # the pod has exited: the file is free
    store.ensure_loaded()
    for doc, count in chunks.items():
        assert count > 0 and store.count(doc) == count
        assert registry.get(NS, doc).status == "indexed"


@pytest.mark.integration
def test_a_parser_pod_then_an_encoder_pod_index_a_batch(s3_endpoint: str, sample_docs: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """PAGELENS_PARSE_EXECUTION=pod: the planned batch goes inline to the parser pod, which writes the parsed batch
    where the worker's parse task would and returns its URI; the encoder pod indexes from that URI."""
    from pagelens.registry import Registry
    from pagelens.store import VectorStore

    monkeypatch.setenv("PAGELENS_MANIFEST_BUCKET", BUCKET)
    settings = Settings(data_dir=tmp_path / "data", manifest_bucket=BUCKET)
    planned = sample_manifest(sample_docs, settings)
    run_id = "scheduled__2025-01-01T00:00:00+00:00"
    parsed_file = tmp_path / "parse-xcom" / "return.json"
    parse = encode(inline_manifest(planned.to_dict()), settings.data_dir, s3_endpoint, "--step", "parse",
                   "--dag-id", "pagelens_ingest", "--run-id", run_id, "--map-index", "3",
                   "--reports", str(parsed_file))  # Airflow cannot be imported, as in the parser image
    assert parse.returncode == 0, parse.stderr[-3000:]
    uri = json.loads(parsed_file.read_text())
    assert uri == f"s3://{BUCKET}/pagelens/manifests/pagelens_ingest/{run_id}/{NS}-0003.json"
    parsed = read_manifest(uri, settings, ParsedBatch)
    assert parsed.namespace == NS and [next(iter(i)) for i in parsed.items] == ["parsed", "parsed"]

    reports_file = tmp_path / "encode-xcom" / "return.json"
    result = encode(uri, settings.data_dir, s3_endpoint, "--reports", str(reports_file),
                    blocked=("pdfplumber", "pytesseract", "pikepdf"))
    assert result.returncode == 0, result.stderr[-3000:]
    reports = json.loads(reports_file.read_text())["documents"]
    assert sorted(r["doc"] for r in reports if r["status"] == "indexed") == ["acme_annual_report.pdf",
                                                                             "warehouse_inspection_scan.png"]
    store, registry = VectorStore(settings, NS), Registry(settings.registry_url)
    store.ensure_loaded()
    for report in reports:
        assert store.count(report["doc"]) == report["chunks"] > 0
        assert registry.get(NS, report["doc"]).status == "indexed"


@pytest.mark.parametrize(("extra", "reason"), [
    ((), "--step parse needs --dag-id, --run-id and --map-index"),
    (("--dag-id", "d", "--run-id", "r", "--map-index", "0"), "is not a JSON object"),
])
def test_a_parser_pod_with_a_bad_batch_exits_2_with_one_line(tmp_path: Path, extra: tuple[str, ...],
                                                             reason: str) -> None:
    from pagelens.pipeline.pod import main

    termination_log = tmp_path / "termination-log"
    termination_log.touch()
    code = main(["--step", "parse", "--manifest", inline_manifest([]), *extra,  # type: ignore[arg-type]
                 "--termination-log", str(termination_log)])
    assert code == 2
    assert termination_log.read_text().startswith("parse_batch failed: bad manifest inline: ")
    assert reason in termination_log.read_text()


def test_inline_manifests_round_trip_and_bad_ones_are_refused(tmp_path: Path) -> None:
    manifest = BatchManifest("hr", [{"doc_id": "{{ a }}.pdf", "source_uri": "file:///in/a.pdf", "location": "/in"}])
    inline = inline_manifest(manifest.to_dict())
    assert inline.startswith("data:application/json;base64,") and "{{" not in inline  # safe from Jinja
    assert read_manifest(inline, Settings(data_dir=tmp_path)) == BatchManifest.from_dict(manifest.to_dict())
    with pytest.raises(InvalidManifest, match="not base64 JSON"):
        read_manifest("data:application/json;base64,not base64!", Settings(data_dir=tmp_path))


def test_a_rebuild_embeds_from_the_artifacts_without_parsing_again(sample_docs: Path, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from pagelens.pipeline import stages

    settings = Settings(data_dir=tmp_path / "data", parse_workers=1)
    first = parse_manifest(sample_manifest(sample_docs, settings), settings)
    parsed_docs: list[list[str]] = []
    real_pool = stages.ParsePool

    def recording_pool(docs: list[Any], pool_settings: Settings) -> Any:
        parsed_docs.append([d.doc_id for d in docs])
        return real_pool(docs, pool_settings)

    monkeypatch.setattr(stages, "ParsePool", recording_pool)
    manifest = sample_manifest(sample_docs, settings)
    from pagelens.store import VectorStore

    manifest.generation = VectorStore(settings, NS).create_generation()  # a rebuild: nothing is skipped as current
    again = parse_manifest(manifest, settings)
    assert parsed_docs == [[]]  # both documents came from their artifacts
    assert [i["parsed"]["stats"] for i in again.items] == [i["parsed"]["stats"] for i in first.items]
    reports = encode_manifest(again, settings)["documents"]
    assert {r["status"] for r in reports} == {"indexed"} and all(r["chunks"] > 0 for r in reports)


def test_a_parsed_batch_whose_artifact_is_gone_says_to_parse_again(sample_docs: Path, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", parse_workers=1)
    parsed = parse_manifest(sample_manifest(sample_docs, settings), settings)
    other = settings.model_copy(update={"chunk_chars": settings.chunk_chars + 100})  # another parse fingerprint
    with pytest.raises(ArtifactMissing, match="clear the batch's parse task"):
        encode_manifest(parsed, other)


@pytest.mark.integration
@pytest.mark.parametrize(("content", "reason"), [
    (None, "no manifest at s3://"),
    ("not json", "is not JSON"),
    (json.dumps({"namespace": "no such/ns", "items": []}), "invalid namespace 'no such/ns'"),
])
def test_bad_manifest_exits_2_with_one_line(s3_endpoint: str, tmp_path: Path, content: str | None,
                                            reason: str) -> None:
    import boto3

    key = f"bad/{tmp_path.name}.json"
    if content is not None:
        boto3.client("s3").put_object(Bucket=BUCKET, Key=key, Body=content.encode())
    termination_log = tmp_path / "termination-log"
    termination_log.touch()  # Kubernetes creates it in the container
    result = encode(f"s3://{BUCKET}/{key}", tmp_path / "data", s3_endpoint, "--termination-log", str(termination_log))
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"encode_batch failed: bad manifest s3://{BUCKET}/{key}: ") and reason in last
    assert termination_log.read_text() == last
    assert "Traceback" not in result.stderr


def test_manifest_file_round_trip_and_validation(tmp_path: Path) -> None:
    manifest = BatchManifest("hr", [{"doc_id": "a.pdf", "source_uri": "file:///in/a.pdf", "location": "/in"}])
    path = tmp_path / "m.json"
    path.write_text(json.dumps(manifest.to_dict()))
    read = read_manifest(path.as_uri(), Settings(data_dir=tmp_path))
    assert read.namespace == "hr" and read.documents[0]["doc_id"] == "a.pdf" and read.documents[0]["etag"] == ""
    bad: list[tuple[Any, str]] = [
        ([], "is not a JSON object"),
        ({"namespace": "hr", "documents": [{"doc": "a.pdf"}]}, "not a listed source document"),
        ({"namespace": "hr", "documents": [], "generation": 3}, "'generation' must be"),
    ]
    for data, message in bad:
        with pytest.raises(InvalidManifest, match=message):
            BatchManifest.from_dict(data)
    with pytest.raises(InvalidManifest, match="unsupported manifest URI"):
        read_manifest("https://example.com/m.json", Settings(data_dir=tmp_path))
    with pytest.raises(InvalidManifest, match="no manifest file"):
        read_manifest(str(tmp_path / "missing.json"), Settings(data_dir=tmp_path))


def test_encoder_with_other_models_refuses_the_batch(tmp_path: Path) -> None:
    other = "all-MiniLM-L6-v2+clip:clip-vit-base-patch32+parse1+chunk1"
    with pytest.raises(ModelMismatch, match="same PAGELENS_TEXT_MODEL/PAGELENS_CLIP_MODEL"):
        encode_manifest(ParsedBatch("hr", None, other), Settings(data_dir=tmp_path))
    with pytest.raises(ModelMismatch):
        parse_manifest(BatchManifest("hr", [], None, other), Settings(data_dir=tmp_path))


def test_parsed_batch_validation() -> None:
    bad: list[tuple[Any, str]] = [
        ({"namespace": "hr", "documents": []}, "with 'namespace' and 'items'"),
        ({"namespace": "hr", "items": [{"other": 1}]}, "'parsed' or 'report'"),
        ({"namespace": "hr", "items": [{"parsed": {"doc": {"doc": "a"}}}]}, "not a parsed document or a report"),
    ]
    for data, message in bad:
        with pytest.raises(InvalidManifest, match=message):
            ParsedBatch.from_dict(data)
