"""Incremental ingest of unchanged documents: the second run should cost a listing and one registry query.

Usage: python bench/incremental_ingest.py [--docs 1000] [--prepopulate] [--repeat 3]

Creates N one-page text PDFs (reportlab), indexes them once, then times the second run: its plan (listing
+ registry diff, split into the two) and the whole `ingest()` (plan, no batches, `finish_ingest`: flush and
cursors), for a local folder and for the same files on S3 (moto's server on 127.0.0.1, listed by ETag
through the Airflow connection `aws_default`). The first run is a real one (parse, embed, upsert) unless
--prepopulate, which writes the registry rows a first run leaves and skips parsing and embedding. Timings
are medians of --repeat runs in one warm process (models and the Milvus Lite client already loaded).
Prints a table and, last, a JSON line.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "plugins"), str(REPO)]
os.environ.setdefault("OMP_THREAD_LIMIT", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
NS = "bench"
BUCKET = "pagelens-bench"


def write_documents(folder: Path, count: int) -> None:
    from tests.tiny_pdf import tiny_pdf

    folder.mkdir(parents=True)
    for number in range(count):
        (folder / f"doc-{number:04d}.pdf").write_bytes(tiny_pdf(
            f"Incident report {number} of the packaging line. The operator logged a jam at station {number % 17}"))


@contextmanager
def moto_s3() -> Iterator[Any]:
    """A moto S3 server on 127.0.0.1 behind the Airflow connection `aws_default`; yields a boto3 client."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    os.environ["AIRFLOW_CONN_AWS_DEFAULT"] = json.dumps({
        "conn_type": "aws", "login": "bench", "password": "bench",
        "extra": {"endpoint_url": f"http://{host}:{port}", "region_name": "us-east-1"}})
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    try:
        yield S3Hook(aws_conn_id="aws_default").get_conn()
    finally:
        server.stop()


def upload(client: Any, folder: Path) -> str:
    client.create_bucket(Bucket=BUCKET)
    for path in sorted(folder.iterdir()):
        client.put_object(Bucket=BUCKET, Key=f"docs/{path.name}", Body=path.read_bytes())
    return f"s3://{BUCKET}/docs"


def prepopulate(location: str, settings: Any) -> None:
    """The registry rows a first run leaves (indexed, with the listing's etags), without parsing or embedding."""
    from pagelens.embed import model_version
    from pagelens.pipeline.stages import list_sources
    from pagelens.records import DocumentReport
    from pagelens.registry import Registry

    registry, version = Registry(settings.registry_url), model_version(settings)
    for listing in list_sources([location], NS, settings):
        for doc in listing.documents:
            registry.record(NS, DocumentReport(doc=doc.doc_id, status="indexed", pages=1, chunks=1,
                                               source_uri=doc.source_uri, location=doc.location, etag=doc.etag,
                                               content_sha256="0" * 64), version)


def median_seconds(run: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def measure(kind: str, location: str, data_dir: Path, count: int, args: argparse.Namespace) -> dict[str, Any]:
    from pagelens.pipeline.stages import ingest, list_sources, plan_ingest
    from pagelens.settings import Settings

    settings = Settings(data_dir=data_dir)
    start = time.perf_counter()
    if args.prepopulate:
        prepopulate(location, settings)
    else:
        first = ingest(location, NS, settings)
        assert sum(r.status == "indexed" for r in first) == count, [r for r in first if r.status != "indexed"][:3]
    first_s = time.perf_counter() - start

    listing_s, listings = median_seconds(lambda: list_sources([location], NS, settings), args.repeat)
    diff_s, plan = median_seconds(lambda: plan_ingest(listings, NS, settings), args.repeat)
    plan_s, _ = median_seconds(lambda: plan_ingest(list_sources([location], NS, settings), NS, settings), args.repeat)
    assert (len(plan.skipped), len(plan.to_index), plan.gone) == (count, 0, []), "the second run is not a no-op"
    ingest_s, reports = median_seconds(lambda: ingest(location, NS, settings), args.repeat)
    assert [r.status for r in reports] == ["skipped"] * count
    return {"source": kind, "documents": count, "first_run_s": round(first_s, 1),
            "first_run": "prepopulated" if args.prepopulate else "real", "listing_s": round(listing_s, 3),
            "registry_diff_s": round(diff_s, 3), "plan_s": round(plan_s, 3), "ingest_s": round(ingest_s, 3),
            "plan_ms_per_doc": round(1000 * plan_s / count, 3), "ingest_ms_per_doc": round(1000 * ingest_s / count, 3)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--prepopulate", action="store_true", help="skip the real first run (registry rows only)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    rows = []
    with tempfile.TemporaryDirectory(prefix="pagelens-bench-") as tmp:
        root = Path(tmp)
        write_documents(root / "docs", args.docs)
        from pagelens.embed import text_encoder
        from pagelens.settings import Settings

        text_encoder(Settings(data_dir=root / "warm")).encode(["warm-up"])  # model loading is once per process
        rows.append(measure("local", str(root / "docs"), root / "local", args.docs, args))
        with moto_s3() as client:
            rows.append(measure("s3 (moto)", upload(client, root / "docs"), root / "s3", args.docs, args))
    columns = ("source", "documents", "first_run", "first_run_s", "listing_s", "registry_diff_s", "plan_s",
               "ingest_s", "plan_ms_per_doc", "ingest_ms_per_doc")
    print(" | ".join(columns))
    for row in rows:
        print(" | ".join(str(row[c]) for c in columns))
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
