"""Shared fixtures: per-test settings with their own Milvus Lite file and registry, the eval corpus."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from pagelens.settings import Settings
from tests.api_fixtures import api_settings  # noqa: F401 (fixture: a store with two indexed namespaces)
from tests.milvus_server import milvus_server  # noqa: F401 (fixture: Milvus Lite served on 127.0.0.1)
from tests.postgres import postgres, postgres_url, registry_url  # noqa: F401 (fixtures: a PostgreSQL server)

REPO = Path(__file__).resolve().parents[1]
SHARED_EVAL = REPO.parent / "shared" / "eval"

os.environ.setdefault("OMP_THREAD_LIMIT", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(autouse=True)
def plain_clients(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts outside Airflow: a DAG task run in this process installs connection-built S3, Graph and
    GCS clients for the rest of the process (as a task process would), which must not reach the next test."""
    from pagelens.sources import clients

    monkeypatch.setattr(clients, "_builders", {})


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Embedded-default settings isolated under a temporary data dir."""
    return Settings(data_dir=tmp_path / "data")


@pytest.fixture(scope="session")
def shared_eval() -> Path:
    if not SHARED_EVAL.is_dir():
        pytest.skip("../shared/eval is absent (it ships beside the repo in CI, not in a user's clone)")
    return SHARED_EVAL


@pytest.fixture(scope="session")
def sample_docs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from pagelens.samples import write_samples

    target = tmp_path_factory.mktemp("samples")
    write_samples(target)
    return target


def pytest_configure(config: pytest.Config) -> None:
    """Children started by the tests get Ctrl-C's default action whatever started pytest.

    A shell starts background jobs with SIGINT ignored (POSIX, job control off: `pytest &` in a script), and an
    ignored signal stays ignored across exec, so `pagelens ingest` and `store serve` would never see the SIGINT
    the shutdown tests send. A Python-level handler here is reset to the default in every child.
    """
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session", autouse=True)
def _stop_milvus_lite_servers():
    """Stop in-process Milvus Lite servers before pytest closes its streams (their exit logs go nowhere)."""
    yield
    from milvus_lite.server_manager import server_manager_instance

    from pagelens.liteserver import release_embedded

    release_embedded()
    server_manager_instance.release_all()  # tests that start milvus-lite's own in-process server
