"""The encoder pod's entrypoint run as the pod runs it: a manifest on S3 (moto), `python -m pagelens.pipeline.pod`.

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

from pagelens.pipeline.batches import BatchManifest, InvalidManifest, read_manifest, write_manifests
from pagelens.pipeline.pod import ModelMismatch, index_manifest
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


def encode(manifest: str, data_dir: Path, endpoint: str, *extra: str) -> subprocess.CompletedProcess[str]:
    """Run the pod's entrypoint where Airflow cannot be imported, as in the encoder image."""
    no_airflow = data_dir / "no-airflow"
    (no_airflow / "airflow").mkdir(parents=True, exist_ok=True)
    (no_airflow / "airflow" / "__init__.py").write_text('raise ImportError("Airflow is not in the encoder image")\n')
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
def test_pod_entrypoint_indexes_a_manifest_from_s3(s3_endpoint: str, sample_docs: Path, tmp_path: Path) -> None:
    from pagelens.registry import Registry
    from pagelens.store import VectorStore

    settings = Settings(data_dir=tmp_path / "data")
    (uri,) = write_manifests({f"{NS}-0000": sample_manifest(sample_docs, settings)}, settings.model_copy(
        update={"manifest_bucket": BUCKET}), "pagelens_ingest", "manual__2025-01-01T00:00:00+00:00")
    assert uri == f"s3://{BUCKET}/pagelens/manifests/pagelens_ingest/manual__2025-01-01T00:00:00+00:00/{NS}-0000.json"

    reports_file = tmp_path / "xcom" / "return.json"
    result = encode(uri, settings.data_dir, s3_endpoint, "--reports", str(reports_file))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Batch done: 2 indexed, 0 skipped, 0 quarantined, 0 deleted" in result.stdout + result.stderr, result.stdout

    reports = json.loads(reports_file.read_text())
    assert reports["namespace"] == NS and reports["generation"] is None
    chunks = {r["doc"]: r["chunks"] for r in reports["documents"] if r["status"] == "indexed"}
    assert set(chunks) == {"acme_annual_report.pdf", "warehouse_inspection_scan.png"}
    store, registry = VectorStore(settings, NS), Registry(settings.registry_url)  # the pod has exited: the file is free
    store.ensure_loaded()
    for doc, count in chunks.items():
        assert count > 0 and store.count(doc) == count
        assert registry.get(NS, doc).status == "indexed"


@pytest.mark.integration
@pytest.mark.parametrize(("content", "reason"), [
    (None, "no manifest at s3://"),
    ("not json", "is not JSON"),
    (json.dumps({"namespace": "no such/ns", "documents": []}), "invalid namespace 'no such/ns'"),
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
    manifest = BatchManifest("hr", [], None, "all-MiniLM-L6-v2+clip:clip-vit-base-patch32+parse1+chunk1")
    with pytest.raises(ModelMismatch, match="same PAGELENS_TEXT_MODEL/PAGELENS_CLIP_MODEL"):
        index_manifest(manifest, Settings(data_dir=tmp_path))
