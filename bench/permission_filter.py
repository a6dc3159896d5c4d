"""What the permission filter costs a search: MiniLM-sized dense and BM25 searches over N chunks in Milvus Lite,
unfiltered (the operator) against `array_contains_any(principals, [...])` for a reader who may see a share of the
documents, after a flush (the HNSW index built), as production searches run.

Usage: python bench/permission_filter.py [--chunks 20000] [--docs 500] [--queries 200]
Prints median and p95 per leg and filter, and last a JSON line. Synthetic data: random unit vectors, text drawn
from a small vocabulary; each document is shared with one of 20 groups, a tenth also with everyone.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "plugins"), str(REPO)]

from pagelens.records import Chunk  # noqa: E402
from pagelens.settings import TEXT_DIM, Settings  # noqa: E402
from pagelens.store import EVERYONE, VectorStore  # noqa: E402

WORDS = ("policy budget travel expense merger salary canteen parking invoice contract supplier audit risk "
         "safety training laptop badge holiday remote pension bonus hiring quarter revenue forecast").split()


def _unit(rng: random.Random) -> list[float]:
    values = [rng.gauss(0, 1) for _ in range(TEXT_DIM)]
    norm = sum(v * v for v in values) ** 0.5
    return [v / norm for v in values]


def fill(store: VectorStore, chunks: int, docs: int, rng: random.Random) -> None:
    batch: list[Chunk] = []
    for n in range(chunks):
        doc = n % docs
        principals = [f"group:g{doc % 20}"] + ([EVERYONE] if doc % 10 == 0 else [])
        batch.append(Chunk(id=f"c{n}", namespace="bench", doc_id=f"doc{doc}.pdf", source_uri="", content_sha256="0" * 64,
                           page=1, chunk_no=n, bbox=(0, 0, 1, 1), kind="text",
                           text=" ".join(rng.choice(WORDS) for _ in range(40)), model_version="m",
                           principals=principals))
        if len(batch) == 1000:
            store.upsert_chunks(batch, [_unit(rng) for _ in batch], [None] * len(batch), 0.3)
            batch = []
    if batch:
        store.upsert_chunks(batch, [_unit(rng) for _ in batch], [None] * len(batch), 0.3)
    store.flush()


def timed(store: VectorStore, leg: str, queries: int, rng: random.Random) -> list[float]:
    seconds = []
    for _ in range(queries):
        query = _unit(rng) if leg == "text_vec" else " ".join(rng.choice(WORDS) for _ in range(4))
        start = time.perf_counter()
        store.search(leg, query, 100)
        seconds.append(time.perf_counter() - start)
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=20000)
    parser.add_argument("--docs", type=int, default=500)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    rng = random.Random(7)
    figures = {}
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as tmp:
        settings = Settings(data_dir=Path(tmp))
        store = VectorStore(settings, "bench")
        store.ensure_collection()
        fill(store, args.chunks, args.docs, rng)
        readers = {"unfiltered": None, "one group (~12% of chunks)": ["user:u1", "group:g3"],
                   "many principals (40)": [f"user:u{i}" for i in range(38)] + ["group:g3", "group:g4"]}
        for leg in ("text_vec", "sparse"):
            for name, principals in readers.items():
                reader = VectorStore(settings, "bench", principals=principals)
                timed(reader, leg, 10, rng)  # warm
                seconds = sorted(timed(reader, leg, args.queries, rng))
                figures[f"{leg} {name}"] = {"median_ms": round(1000 * statistics.median(seconds), 2),
                                            "p95_ms": round(1000 * seconds[int(0.95 * len(seconds)) - 1], 2)}
    for key, value in figures.items():
        print(f"{key:45s} median {value['median_ms']:7.2f} ms   p95 {value['p95_ms']:7.2f} ms")
    print(json.dumps({"chunks": args.chunks, "docs": args.docs, **figures}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
