"""Garbage collection of kept bytes (`pagelens gc`, and TTL pruning's own sweep): a document's bytes, sidecars and
parse cache go once no indexed document of any namespace has that content and the grace period is over; the
rest stays, on the local store and on S3 (moto's server)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from pagelens.cli import main as cli
from pagelens.contentstore import content_store
from pagelens.parsing.renditions import RENDITION
from pagelens.pipeline.stages import ingest
from pagelens.pipeline.sweep import sweep, sweep_plan
from pagelens.records import DocumentReport
from pagelens.registry import Registry
from pagelens.settings import NamespaceConfig, Retention, Settings, get_settings
from pagelens.sources.local import file_sha256
from tests.test_retention import _write as write_pdf
from tests.test_source_s3 import bucket, s3, s3_endpoint  # noqa: F401 (fixtures: moto S3 and a bucket)

pytestmark = pytest.mark.integration
DAY = 86_400


def _write(folder: Path, name: str, text: str, age_days: float = 0) -> str:
    """The test PDF written as test_retention writes it; returns its content hash."""
    write_pdf(folder, name, text, age_days)
    return file_sha256(folder / name)


def _age_kept_bytes(settings: Settings, days: float) -> None:
    """As if everything the content store and the parse cache hold was last written `days` ago."""
    when = time.time() - days * DAY
    for root in (settings.data_dir / "content", settings.data_dir / "parsed"):
        for path in root.rglob("*"):
            if path.is_file():
                os.utime(path, (when, when))


def _kept(settings: Settings, sha: str) -> tuple[int, int]:
    """(content store objects, parse cache files) of one content hash."""
    return (len(list(content_store(settings).objects(sha))),
            len(list((settings.data_dir / "parsed").glob(f"{sha}-*.json.gz"))))


def _gc(settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        *args: str) -> dict[str, object]:
    monkeypatch.setenv("PAGELENS_DATA_DIR", str(settings.data_dir))
    get_settings.cache_clear()
    try:
        assert cli(["gc", "--json", *args]) == 0
    finally:
        get_settings.cache_clear()
    return json.loads(capsys.readouterr().out.splitlines()[-1])


def test_gc_keeps_what_any_namespace_indexes_and_what_was_just_put(tmp_path: Path, settings: Settings,
                                                                    monkeypatch: pytest.MonkeyPatch,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    alpha, beta = tmp_path / "alpha", tmp_path / "beta"
    kept_sha = _write(alpha, "kept.pdf", "The boiler was serviced in March.")
    gone_sha = _write(alpha, "gone.pdf", "The chiller was replaced in May.")
    assert _write(beta, "copy.pdf", "The chiller was replaced in May.") == gone_sha  # the same bytes elsewhere
    assert {r.status for r in ingest(str(alpha), "alpha", settings) + ingest(str(beta), "beta", settings)} == {"indexed"}
    objects, cached = _kept(settings, gone_sha)
    assert objects >= 2 and cached == 1  # the bytes, their redaction sidecar, the parsed pages
    registry = Registry(settings.registry_url)
    _age_kept_bytes(settings, days=3)

    registry.remove("alpha", ["gone.pdf"])  # as pruning or a rebuild without it leaves the registry
    assert sweep_plan(settings, grace_hours=0).hashes == set()  # beta's copy.pdf still has that content

    registry.remove("beta", ["copy.pdf"])
    content_store(settings).put(gone_sha, beta / "copy.pdf")  # a running ingest puts the bytes again
    fresh = _gc(settings, monkeypatch, capsys)
    assert fresh["documents"] == 0 and fresh["kept_recent"] == 1 and _kept(settings, gone_sha) == (objects, cached)

    _age_kept_bytes(settings, days=3)
    dry = _gc(settings, monkeypatch, capsys, "--dry-run")
    assert dry == {"dry_run": True, "documents": 1, "objects": objects, "parse_cache_files": 1,
                   "bytes": dry["bytes"], "kept_recent": 0} and int(dry["bytes"]) > 1000  # type: ignore[call-overload]
    assert _kept(settings, gone_sha) == (objects, cached)  # a dry run deletes nothing

    done = _gc(settings, monkeypatch, capsys)
    assert (done["dry_run"], done["documents"], done["objects"]) == (False, 1, objects)
    assert _kept(settings, gone_sha) == (0, 0) and content_store(settings).get(gone_sha) is None
    assert content_store(settings).get(kept_sha) is not None and _kept(settings, kept_sha)[1] == 1
    assert _gc(settings, monkeypatch, capsys)["documents"] == 0  # nothing left to do


def test_a_renditions_pdf_lives_and_goes_with_its_original(settings: Settings, tmp_path: Path) -> None:
    store = content_store(settings)
    office, pdf = tmp_path / "deck.pptx", tmp_path / "deck.pdf"
    office.write_bytes(b"PK office bytes")
    pdf.write_bytes(b"%PDF-1.7 its rendition")
    office_sha, pdf_sha = file_sha256(office), file_sha256(pdf)
    store.put(office_sha, office)
    store.put(pdf_sha, pdf)
    store.put_json(office_sha, RENDITION, {"sha256": pdf_sha})
    registry = Registry(settings.registry_url)
    registry.record("decks", DocumentReport(doc="deck.pptx", status="indexed", source_uri=str(office),
                                            location=str(tmp_path), content_sha256=office_sha), "minilm@1")
    later = time.time() + 5
    assert sweep_plan(settings, grace_hours=0, now=later).hashes == set()  # the PDF is live through its pointer

    registry.remove("decks", ["deck.pptx"])
    plan = sweep_plan(settings, grace_hours=0, now=later)
    assert plan.hashes == {office_sha, pdf_sha} and len(plan.objects) == 3
    targeted = sweep_plan(settings, grace_hours=0, hashes={office_sha}, now=later)  # what pruning asks
    assert {o.key for o in targeted.objects} == {o.key for o in plan.objects}
    sweep(settings, plan)
    assert list(store.objects()) == []


def test_pruning_takes_the_expired_documents_bytes_too(tmp_path: Path, settings: Settings) -> None:
    folder = tmp_path / "docs"
    old_sha = _write(folder, "old.pdf", "The boiler was serviced in March 2019.", age_days=400)
    new_sha = _write(folder, "new.pdf", "The roof was inspected today.")
    off = settings.model_copy(update={"namespaces": {"ops": NamespaceConfig(sources=[str(folder)])}})
    assert [r.status for r in ingest(str(folder), "ops", off)] == ["indexed", "indexed"]
    _age_kept_bytes(settings, days=3)
    on = settings.model_copy(update={"namespaces": {"ops": NamespaceConfig(
        sources=[str(folder)], retention=Retention(by="modified", days=30))}})
    assert {r.doc: r.status for r in ingest(str(folder), "ops", on)}["old.pdf"] == "deleted"
    assert _kept(settings, old_sha) == (0, 0)
    assert _kept(settings, new_sha)[0] >= 1 and content_store(settings).get(new_sha) is not None


def test_gc_on_an_s3_content_store(tmp_path: Path, bucket: str, s3) -> None:  # noqa: F811 (fixtures)
    settings = Settings(data_dir=tmp_path / "data", content_store=f"s3://{bucket}/kept/")
    store = content_store(settings)
    shas = {}
    for name in ("live", "dead"):
        path = tmp_path / f"{name}.pdf"
        path.write_bytes(f"%PDF-1.7 {name}".encode())
        shas[name] = file_sha256(path)
        store.put(shas[name], path)
        store.put_json(shas[name], "pii-v1", {})
        assert store.get(shas[name]) is not None  # read once: a copy sits in the local cache
    Registry(settings.registry_url).record("ns", DocumentReport(doc="live.pdf", status="indexed", source_uri="x",
                                                                location="x", content_sha256=shas["live"]), "m@1")
    assert sweep_plan(settings).hashes == set()  # just put: inside the grace period
    plan = sweep(settings, sweep_plan(settings, grace_hours=0, now=time.time() + 5))
    assert plan.hashes == {shas["dead"]} and len(plan.objects) == 2
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []))
    assert keys == [f"kept/{shas['live'][:2]}/{shas['live']}", f"kept/{shas['live'][:2]}/{shas['live']}.pii-v1.json"]
    assert store.get(shas["dead"]) is None and not list((tmp_path / "data" / "content-cache").rglob(shas["dead"]))
    assert store.get(shas["live"]) is not None


def test_the_gc_dag_sweeps_what_the_cli_would(tmp_path: Path) -> None:
    """`pagelens_gc` on a real Airflow (dag.test): a dry run first, then the sweep, with the data dir's settings."""
    from tests.airflow_env import airflow_home, load_dags, release_milvus_lite, run_dag

    data = tmp_path / "data"
    settings = Settings(data_dir=data)
    folder = tmp_path / "docs"
    kept_sha = _write(folder, "kept.pdf", "The boiler was serviced in March.")
    gone_sha = _write(folder, "gone.pdf", "The chiller was replaced in May.")
    assert {r.status for r in ingest(str(folder), "ops", settings)} == {"indexed"}
    release_milvus_lite(data)
    Registry(settings.registry_url).remove("ops", ["gone.pdf"])
    _age_kept_bytes(settings, days=3)
    objects = _kept(settings, gone_sha)[0]
    with airflow_home(tmp_path / "airflow", {"PAGELENS_DATA_DIR": str(data)}):
        dag = load_dags()["pagelens_gc"]
        dry = run_dag(dag, {"dry_run": True})
        assert dry.state == "success" and dry.xcom("sweep_kept_bytes")["documents"] == 1
        assert _kept(settings, gone_sha) == (objects, 1)
        done = run_dag(dag, {"dry_run": False})
        assert done.state == "success"
        assert {k: done.xcom("sweep_kept_bytes")[k] for k in ("dry_run", "documents", "objects")} == {
            "dry_run": False, "documents": 1, "objects": objects}
    release_milvus_lite(data)
    assert _kept(settings, gone_sha) == (0, 0) and _kept(settings, kept_sha)[1] == 1
