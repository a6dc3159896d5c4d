"""A `milvus-lite server` on 127.0.0.1 for the session, for tests where several processes share one store."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pagelens import liteserver
from tests.postgres import free_port


@pytest.fixture(scope="session")
def milvus_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Yields the server's URI (`http://127.0.0.1:<port>`); its data lives in a temporary folder."""
    root = tmp_path_factory.mktemp("milvus_server")
    port, log = free_port(), root / "server.log"
    process = liteserver.start(root / "milvus.db", port, log=log)
    try:
        yield liteserver.wait_ready(process, port, log=log)
    finally:
        liteserver.stop(process)
