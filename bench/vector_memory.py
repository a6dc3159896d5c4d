"""Memory per chunk and dense search time of each PAGELENS_VECTOR_INDEX, measured on a `milvus-lite server`.

For each index kind a fresh server on 127.0.0.1 gets N synthetic chunks (short text, random unit vectors in all
three dense fields, as the pipeline writes them), flushed and loaded. The server's resident memory is read from
/proc before the writes and after the load; the difference over N is the loaded bytes per chunk. Texts are
identical across kinds, so the differences between kinds are the vector indexes alone. Then 200 dense top-100
searches are timed. Recall on real questions is `pagelens eval` with PAGELENS_VECTOR_INDEX set (not here).

Usage: python bench/vector_memory.py [--chunks 20000] [--kinds HNSW HNSW_SQ8 IVF_SQ8]; prints a JSON line per kind.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "plugins"))
os.environ.setdefault("OMP_THREAD_LIMIT", "1")

BATCH = 2000


def rss_bytes(pid: int) -> int:
    """Resident memory of a process and its children (the Lite server may fork helpers)."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(entry.name) == pid or int(stat[1]) == pid:
                total += int(stat[21]) * os.sysconf("SC_PAGE_SIZE")  # rss in pages
        except (OSError, IndexError, ValueError):
            continue
    return total


def measure(kind: str, chunks: int, workdir: Path) -> dict[str, float]:
    import numpy as np

    from pagelens import liteserver
    from pagelens.records import Chunk
    from pagelens.settings import IMAGE_DIM, TEXT_DIM, Settings
    from pagelens.store import VectorStore

    port = _free_port()
    process = liteserver.start(workdir / kind / "milvus.db", port, log=workdir / f"{kind}.log")
    try:
        uri = liteserver.wait_ready(process, port, log=workdir / f"{kind}.log")
        settings = Settings(data_dir=workdir / kind, milvus_uri=uri, vector_index=kind)
        store = VectorStore(settings, "mem")
        store.ensure_collection()
        before = rss_bytes(process.pid)
        rng = np.random.default_rng(0)
        started = time.perf_counter()
        for start in range(0, chunks, BATCH):
            count = min(BATCH, chunks - start)
            rows = [Chunk(id=f"m{n:010d}", namespace="mem", doc_id=f"d{n // 40}.pdf", source_uri="bench://m",
                          content_sha256="0" * 64, page=n % 40 + 1, chunk_no=0, bbox=(0.0, 0.0, 1.0, 1.0), kind="text",
                          text=f"chunk {n} of the memory benchmark", model_version="bench")
                    for n in range(start, start + count)]
            text = _unit(rng, count, TEXT_DIM)
            image = _unit(rng, count, IMAGE_DIM)
            store.upsert_chunks(rows, text.tolist(), image.tolist(), 0.3)
        write_s = time.perf_counter() - started
        started = time.perf_counter()
        store.flush()
        store.client.release_collection(store.target)
        store.ensure_loaded(recheck=True)
        index_s = time.perf_counter() - started
        time.sleep(2)
        after = rss_bytes(process.pid)
        queries = _unit(rng, 200, TEXT_DIM).tolist()
        store.search("text_vec", queries[0], 100)
        times = []
        for query in queries:
            t0 = time.perf_counter()
            store.search("text_vec", query, 100)
            times.append((time.perf_counter() - t0) * 1000)
        times.sort()
        return {"kind": kind, "chunks": chunks, "loaded_bytes_per_chunk": round((after - before) / chunks),
                "dense_search_p50_ms": round(statistics.median(times), 1),
                "dense_search_p95_ms": round(times[int(0.95 * len(times)) - 1], 1),
                "write_s": round(write_s, 1), "flush_and_load_s": round(index_s, 1)}
    finally:
        liteserver.stop(process)


def _unit(rng: object, count: int, dim: int) -> object:
    vectors = rng.standard_normal((count, dim)).astype("float32")  # type: ignore[attr-defined]
    return vectors / (vectors ** 2).sum(axis=1, keepdims=True) ** 0.5


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=20_000)
    parser.add_argument("--kinds", nargs="+", default=["HNSW", "HNSW_SQ8", "IVF_SQ8"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pagelens-vector-memory-") as tmp:
        for kind in args.kinds:
            sys.stdout.write(json.dumps(measure(kind, args.chunks, Path(tmp))) + "\n")
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
