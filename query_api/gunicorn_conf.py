"""gunicorn settings of the query API (`gunicorn -c python:query_api.gunicorn_conf ...`): metrics over all workers.

With `PROMETHEUS_MULTIPROC_DIR` set, every worker writes its metrics to files there and /metrics sums them;
the folder is emptied when gunicorn starts, so counts from an earlier run are not added in.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
preload_app = False  # each worker builds its own app after the fork: torch and the warm-up thread do not survive a fork
timeout = 120  # a CPU-only worker answering a long question must not be killed as hung


def on_starting(server: Any) -> None:
    directory = os.environ.get(MULTIPROC_ENV)
    if directory:
        Path(directory).mkdir(parents=True, exist_ok=True)
        for stale in Path(directory).glob("*.db"):
            stale.unlink()


def child_exit(server: Any, worker: Any) -> None:
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
