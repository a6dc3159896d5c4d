"""Fixtures of the query API tests: one Milvus Lite store, two namespaces indexed from different sample documents."""

from __future__ import annotations

from pathlib import Path

import pytest

from pagelens.settings import Settings

FINANCE_DOC = "acme_annual_report.pdf"  # namespace "finance": the four-page annual report
OPS_DOC = "warehouse_inspection_scan.png"  # namespace "ops": the scanned inspection note


@pytest.fixture(scope="session")
def api_settings(sample_docs: Path, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings of an indexed store (models warm on first use, so tests can watch /readyz change)."""
    from pagelens.pipeline.stages import ingest

    settings = Settings(data_dir=tmp_path_factory.mktemp("api") / "data", api_warm_on_start=False)
    for doc, namespace in ((FINANCE_DOC, "finance"), (OPS_DOC, "ops")):
        reports = ingest(str(sample_docs / doc), namespace, settings)
        assert [r.status for r in reports] == ["indexed"], [r.to_dict() for r in reports]
    return settings
