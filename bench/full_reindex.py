"""A full reindex of a document folder through the `pagelens_reindex__<namespace>` DAG: wall time, pages/s, gate.

Usage: python bench/full_reindex.py [DOCS_DIR] [GOLD_JSONL] [--runs N]
       (defaults: ../shared/eval/docs, ../shared/eval/dev.jsonl, 2 runs)

Runs the real DAG in this process with `dag.test()` against a throwaway Airflow home and pagelens data dir
(Milvus Lite file, SQLite registry). Run 1 builds the namespace from nothing (cold: every page parsed and
OCR'd, no live generation to compare with); each later run is forced and rebuilds beside the live generation
with the parse cache warm, so its gate compares new against old. Prints one line per run and, last, a JSON
line. Timings include model loading (once per process: in run 1) and the gold-set evaluations of the gate.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "eval"
NAMESPACE = "bench"


def _environment(root: Path, docs: Path, gold: Path) -> None:
    """Before Airflow is imported: it reads its home and database from the environment once."""
    os.environ.update({
        "AIRFLOW_HOME": str(root / "airflow"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{root / 'airflow' / 'airflow.db'}",
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "PAGELENS_DATA_DIR": str(root / "data"),
        "PAGELENS_NAMESPACES": json.dumps({NAMESPACE: {"sources": [str(docs)], "gold": str(gold)}}),
    })
    os.environ.setdefault("OMP_THREAD_LIMIT", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    (root / "airflow").mkdir(parents=True)
    sys.path.insert(0, str(REPO / "plugins"))


def _reindex_dag() -> object:
    from airflow.dag_processing.dagbag import DagBag
    from airflow.utils import db

    db.upgradedb()
    dag = DagBag(dag_folder=REPO / "dags").dags[f"pagelens_reindex__{NAMESPACE}"]
    for task in dag.tasks:
        task.retries = 0
    return dag


def _gate(dagrun: object) -> dict[str, object]:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        for key, task in (("return_value", "swap"), ("gate", "swap")):
            row = session.scalars(XComModel.get_many(run_id=dagrun.run_id, key=key, task_ids=task,
                                                     dag_ids=dagrun.dag_id)).first()
            if row is not None:
                return XComModel.deserialize_value(row)
    return {}


def _indexed_pages() -> tuple[int, int, int]:
    from pagelens.registry import Registry
    from pagelens.settings import Settings

    rows = Registry(Settings().registry_url).documents(NAMESPACE)
    indexed = [r for r in rows if r.status == "indexed"]
    return len(indexed), sum(r.status == "quarantined" for r in rows), sum(r.pages for r in indexed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("docs", nargs="?", type=Path, default=SHARED / "docs")
    parser.add_argument("gold", nargs="?", type=Path, default=SHARED / "dev.jsonl")
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="pagelens-reindex-bench-"))
    _environment(root, args.docs.resolve(), args.gold.resolve())
    dag = _reindex_dag()
    results = []
    for number in range(1, args.runs + 1):
        start = time.perf_counter()
        dagrun = dag.test(run_conf={"force": number > 1})
        seconds = time.perf_counter() - start
        documents, quarantined, pages = _indexed_pages()
        gate = _gate(dagrun)
        result = {"run": number, "parse_cache": "warm" if number > 1 else "cold", "state": str(dagrun.state),
                  "seconds": round(seconds, 1), "documents": documents, "quarantined": quarantined, "pages": pages,
                  "pages_per_s": round(pages / seconds, 2), "generation": gate.get("generation"),
                  "recall@5_new": gate.get("new_recall"), "recall@5_live": gate.get("live_recall"),
                  "gate_passed": gate.get("passed")}
        results.append(result)
        print(f"run {number} ({result['parse_cache']} parse cache): {result['state']} in {seconds:.0f} s, "
              f"{documents} documents, {pages} pages, {result['pages_per_s']} pages/s; gate recall@5 new "
              f"{result['recall@5_new']} vs live {result['recall@5_live']} -> "
              f"{'swapped' if result['gate_passed'] else 'kept live'} {result['generation']}")
    print(json.dumps({"docs": str(args.docs), "runs": results}))


if __name__ == "__main__":
    main()
