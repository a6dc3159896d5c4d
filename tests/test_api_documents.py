"""GET /v1/documents: the ingestion report of one namespace, paged and filtered, behind the same tokens."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask.testing import FlaskClient

from pagelens.settings import Settings
from pagelens.tokens import create_token
from tests.tiny_pdf import tiny_pdf

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def report_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A namespace with three indexed documents and three refused ones (empty, corrupt, unsupported)."""
    from pagelens.pipeline.stages import ingest

    folder = tmp_path_factory.mktemp("reports")
    for n in range(3):
        (folder / f"memo-{n}.pdf").write_bytes(tiny_pdf(f"Memo {n} says the loading dock opens at {6 + n} am."))
    (folder / "empty.pdf").write_bytes(b"")
    (folder / "garbage.pdf").write_bytes(b"%PDF-1.4 not really")
    (folder / "zero.pdf").write_bytes(b"")
    settings = Settings(data_dir=tmp_path_factory.mktemp("docs") / "data", api_warm_on_start=False)
    reports = ingest(str(folder), "plant", settings)
    assert sorted(r.status for r in reports) == ["indexed"] * 3 + ["quarantined"] * 3
    return settings


@pytest.fixture(scope="module")
def client(report_settings: Settings) -> FlaskClient:
    from query_api import create_app

    return create_app(report_settings).test_client()


@pytest.fixture(scope="module")
def headers(report_settings: Settings) -> dict[str, str]:
    return {"Authorization": f"Bearer {create_token(report_settings, ['plant'])}"}


def test_lists_every_document_with_its_report(client: FlaskClient, headers: dict[str, str]) -> None:
    response = client.get("/v1/documents?namespace=plant", headers=headers)
    assert response.status_code == 200, response.json
    body = response.json
    assert body["total"] == 6 and body["counts"] == {"indexed": 3, "quarantined": 3}
    assert body["reasons"] == {"empty": 2, "corrupt": 1}  # most frequent first
    docs = {d["doc"]: d for d in body["documents"]}
    assert list(docs) == sorted(docs)
    memo = docs["memo-0.pdf"]
    assert (memo["status"], memo["pages"], memo["reason"]) == ("indexed", 1, "") and memo["ocr_pages"] in (0, 1)
    assert memo["chunks"] >= 1 and memo["seconds"] > 0 and memo["model_version"] and memo["updated_at"].endswith("+00:00")
    assert docs["empty.pdf"]["reason"] == "empty: the file is 0 bytes"
    assert set(memo) == {"doc", "status", "reason", "pages", "ocr_pages", "tables", "figures", "chunks", "seconds",
                         "model_version", "updated_at"}  # no source URI or content hash


def test_pages_and_filters(client: FlaskClient, headers: dict[str, str]) -> None:
    def docs(query: str) -> tuple[list[str], int]:
        body = client.get(f"/v1/documents?namespace=plant&{query}", headers=headers).json
        return [d["doc"] for d in body["documents"]], body["total"]

    assert docs("limit=2") == (["empty.pdf", "garbage.pdf"], 6)
    assert docs("limit=2&offset=2") == (["memo-0.pdf", "memo-1.pdf"], 6)
    assert docs("limit=2&offset=6") == ([], 6)
    assert docs("status=quarantined") == (["empty.pdf", "garbage.pdf", "zero.pdf"], 3)
    assert docs("status=quarantined&reason=empty") == (["empty.pdf", "zero.pdf"], 2)
    assert docs("reason=corrupt") == (["garbage.pdf"], 1)
    assert docs("status=deleted") == ([], 0)


@pytest.mark.parametrize(("query", "status", "code"), [
    ("", 400, "invalid_request"),
    ("namespace=bad-name", 400, "invalid_request"),
    ("namespace=plant&status=gone", 400, "invalid_request"),
    ("namespace=plant&limit=0", 400, "invalid_request"),
    ("namespace=plant&limit=501", 400, "invalid_request"),
    ("namespace=plant&offset=-1", 400, "invalid_request"),
    ("namespace=plant&reason=x%25", 400, "invalid_request"),  # a LIKE wildcard is no reason kind
    ("namespace=other", 403, "forbidden"),
])
def test_bad_queries_and_other_namespaces_are_refused(client: FlaskClient, headers: dict[str, str], query: str,
                                                      status: int, code: str) -> None:
    response = client.get(f"/v1/documents?{query}", headers=headers)
    assert (response.status_code, response.json["error"]["code"]) == (status, code), response.json


def test_needs_a_token(client: FlaskClient, tmp_path: Path) -> None:
    assert client.get("/v1/documents?namespace=plant").status_code == 401
