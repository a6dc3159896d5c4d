"""Check weekly that today's encoders still embed like the ones the index was built with.

`check_drift` embeds a fixed probe sample with the current models and compares each vector with the stored
baseline (taken on the first run). The task fails, and alerts like any failed task, when the median cosine
similarity of an encoder falls below `PAGELENS_DRIFT_MIN_MEDIAN`; the figures (median, minimum, histogram)
are its return value, or its `drift` XCom when it fails. After a deliberate model upgrade, reindex the
namespaces and trigger this DAG with `{"rebaseline": true}`.

**Params:** `rebaseline` (default false) takes a new baseline with today's encoders instead of comparing.
The baseline lives in Milvus, reached through the Airflow connection `milvus_default` when it is defined.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import Param, dag, task

log = logging.getLogger("pagelens.dags.drift")


def _schedule() -> str:
    from pagelens.settings import Settings  # light (pydantic only)

    return Settings().drift_schedule


@dag(
    schedule=_schedule(),
    start_date=datetime(2025, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=5)},
    params={"rebaseline": Param(False, type="boolean", description="take a new baseline instead of comparing")},
    tags=["pagelens", "drift"],
)
def pagelens_drift() -> None:
    @task
    def check_drift(params: dict[str, Any] | None = None, ti: Any = None) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowFailException

        from pagelens import drift
        from pagelens.airflow.hooks.milvus import task_settings

        try:
            result = drift.check_drift(task_settings(), rebaseline=bool((params or {}).get("rebaseline")))
        except drift.EmbeddingDrift as exc:
            ti.xcom_push(key="drift", value=exc.result.to_dict())
            raise AirflowFailException(str(exc)) from exc  # the models disagree: a retry would say the same
        for e in result.encoders:
            log.info("Drift %s: median %.4f, min %.4f over %d probes; histogram %s over %s", e.encoder, e.median,
                     e.minimum, e.probes, e.histogram, e.bin_edges)
        return result.to_dict()

    check_drift()


pagelens_drift()
