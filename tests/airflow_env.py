"""Airflow in this process against a throwaway home: DAG files parsed, runs made with `dag.test()`, XComs read back."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

DAGS_DIR = Path(__file__).resolve().parents[1] / "dags"


def configure_airflow(migrate: bool) -> None:
    """Re-read the metadata DB URL and dags folder from the environment: airflow may already be imported."""
    from airflow import settings

    settings.dispose_orm()
    settings.configure_vars()
    settings.configure_orm()
    if migrate:
        from airflow.utils import db

        db.upgradedb()  # what `airflow db migrate` runs; on an empty SQLite file it creates the schema


@contextmanager
def airflow_home(home: Path, env: dict[str, str]) -> Iterator[pytest.MonkeyPatch]:
    """A fresh metadata DB under `home` with `env` set (PAGELENS_* read when DAG files are parsed and tasks run)."""
    home.mkdir(parents=True, exist_ok=True)  # Airflow creates its home only when first imported
    with pytest.MonkeyPatch.context() as mp:
        for name, value in {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_DIR),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            **env,
        }.items():
            mp.setenv(name, value)
        configure_airflow(migrate=True)
        try:
            yield mp
        finally:
            configure_airflow(migrate=False)  # back to what the session had (after the env is restored)


def load_dags() -> dict[str, Any]:
    """Every DAG of dags/, parsed now (so with the current environment), without retries."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=DAGS_DIR)
    assert bag.import_errors == {}, bag.import_errors
    for dag in bag.dags.values():
        for task in dag.tasks:
            task.retries = 0  # a failure should fail the test now, not after minutes of backoff
    return bag.dags


@dataclass
class Run:
    dag_id: str
    run_id: str
    state: str
    tasks: dict[str, str]  # "task" or "task[i]" -> state

    def xcom(self, task_id: str, key: str = "return_value") -> Any:
        from airflow.models.xcom import XComModel
        from airflow.utils.session import create_session

        with create_session() as session:
            row = session.scalars(XComModel.get_many(run_id=self.run_id, key=key, task_ids=task_id,
                                                     dag_ids=self.dag_id)).one()
            return XComModel.deserialize_value(row)


def run_dag(dag: Any, conf: dict[str, Any] | None = None) -> Run:
    dagrun = dag.test(run_conf=conf or {})
    states = {ti.task_id + (f"[{ti.map_index}]" if ti.map_index >= 0 else ""): str(ti.state)
              for ti in dagrun.get_task_instances()}
    return Run(dagrun.dag_id, dagrun.run_id, str(dagrun.state), states)


def release_milvus_lite(data_dir: Path) -> None:
    """Stop the embedded Milvus of a data dir now; otherwise it lives until the process exits."""
    from pagelens.liteserver import release_embedded

    release_embedded(str(data_dir / "milvus.db"))


def asset_events(name: str) -> list[dict[str, Any]]:
    """The events of the asset `name` recorded in the metadata DB, oldest first: source run and extra."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        query = (select(AssetEvent).join(AssetModel, AssetModel.id == AssetEvent.asset_id)
                 .where(AssetModel.name == name).order_by(AssetEvent.id))
        return [{"dag_id": e.source_dag_id, "run_id": e.source_run_id, "task_id": e.source_task_id, **e.extra}
                for e in session.scalars(query)]
