"""Faults during ingestion: a crash mid-batch, Milvus down, duplicate keys in a batch. Reruns converge."""

from __future__ import annotations

import shutil
import socket
import time

import pytest

from pagelens import liteserver
from pagelens.embed import TextEncoder
from pagelens.errors import StoreUnavailable
from pagelens.pipeline.stages import ingest
from pagelens.registry import Registry
from pagelens.settings import Settings
from pagelens.store import VectorStore
from tests.postgres import free_port
from tests.test_store import _chunk, _write

pytestmark = pytest.mark.integration
NS = "faults"


@pytest.fixture(scope="module")
def three_docs(sample_docs, tmp_path_factory):
    folder = tmp_path_factory.mktemp("three_docs")
    shutil.copytree(sample_docs, folder, dirs_exist_ok=True)
    shutil.copy(folder / "acme_annual_report.pdf", folder / "zz_copy.pdf")
    return folder


@pytest.fixture(scope="module")
def clean_run(three_docs, tmp_path_factory) -> list[str]:
    """Chunk ids of an undisturbed run: what any run that was interrupted must converge to."""
    settings = Settings(data_dir=tmp_path_factory.mktemp("clean"))
    assert {r.status for r in ingest(str(three_docs), NS, settings)} == {"indexed"}
    return sorted(VectorStore(settings, NS).chunk_ids_of())


def test_a_crash_mid_batch_then_a_rerun_equals_a_clean_run(three_docs, clean_run, settings, monkeypatch) -> None:
    encode, calls = TextEncoder.encode, []

    def crash_on_second_document(self: TextEncoder, texts: list[str]) -> list[list[float]]:
        calls.append(len(texts))
        if len(calls) == 2:
            raise RuntimeError("injected fault: the encoder died")
        return encode(self, texts)

    monkeypatch.setattr(TextEncoder, "encode", crash_on_second_document)
    with pytest.raises(RuntimeError, match="injected fault"):
        ingest(str(three_docs), NS, settings)
    store = VectorStore(settings, NS)
    assert [r.status for r in Registry(settings.registry_url).documents(NS)] == ["indexed"]  # one landed, two did not
    assert 0 < store.count() < len(clean_run)

    reports = {r.doc: r.status for r in ingest(str(three_docs), NS, settings)}
    assert sorted(reports.values()) == ["indexed", "indexed", "skipped"]  # the landed one is not redone
    assert sorted(store.chunk_ids_of()) == clean_run and store.count() == len(clean_run)  # nothing lost or doubled
    assert {r.status for r in ingest(str(three_docs), NS, settings)} == {"skipped"}


def test_milvus_down_fails_fast_with_a_clear_error_and_a_later_run_completes(sample_docs, tmp_path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    shutil.copy(sample_docs / "warehouse_inspection_scan.png", inbox)
    port = free_port()
    settings = Settings(data_dir=tmp_path / "data", milvus_uri=liteserver.server_uri(port))

    start = time.monotonic()
    with pytest.raises(StoreUnavailable, match=rf"cannot reach Milvus at http://127\.0\.0\.1:{port} .*is it running\?"):
        ingest(str(inbox), NS, settings)
    assert time.monotonic() - start < 5  # connection refused: no retry loop

    server = liteserver.start(tmp_path / "milvus.db", port, log=tmp_path / "server.log")
    try:
        liteserver.wait_ready(server, port, log=tmp_path / "server.log")
        assert [r.status for r in ingest(str(inbox), NS, settings)] == ["indexed"]
        assert VectorStore(settings, NS).count() > 0
    finally:
        liteserver.stop(server)


def test_a_server_that_never_answers_times_out_within_the_setting(tmp_path) -> None:
    with socket.socket() as silent:  # accepts TCP connections, never speaks gRPC
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        uri = liteserver.server_uri(silent.getsockname()[1])
        start = time.monotonic()
        with pytest.raises(StoreUnavailable, match="cannot reach Milvus"):
            VectorStore(Settings(data_dir=tmp_path, milvus_uri=uri, milvus_timeout_s=1.0), NS)
        assert time.monotonic() - start < 5


@pytest.mark.parametrize("served", [False, True], ids=["lite-file", "lite-server"])
def test_the_same_chunk_twice_in_one_upsert_is_stored_once_with_the_last_text(served, request, settings) -> None:
    if served:
        settings = Settings(data_dir=settings.data_dir, milvus_uri=request.getfixturevalue("milvus_server"))
    store = VectorStore(settings, "dupes")
    store.ensure_collection()
    first, again = _chunk("dupes", "r.pdf", 1, 0, "draft wording"), _chunk("dupes", "r.pdf", 1, 0, "final wording")
    assert first.id == again.id
    assert _write(store, [first, again]) == 1
    assert store.count() == 1 and store.chunk_ids_of() == [first.id]
    assert [h.text for h in store.search("sparse", "wording", 5)] == ["final wording"]
