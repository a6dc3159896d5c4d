"""The recall price of the dense cost levers, measured on a built eval index: a reduced text dimension (the
seed's 128-d) and the quantised vector indexes (PAGELENS_VECTOR_INDEX), each against today's 384-d vectors.

Every chunk's `text_vec` is read from the eval index. Variants of the dense leg, all in this run:
- `384 exact`: inner product over all chunks (the reference; the index's own HNSW finds the same here);
- `PCA <d>` (`--dims`): MiniLM has no 128-d output, so a reduced vector means a projection: PCA fitted on the
  namespace's own chunk vectors (no labels: what a rebuild could fit), exact search;
- `<INDEX>` (`--indexes`, e.g. HNSW_SQ8 IVF_SQ8): the vectors written to a scratch Milvus Lite collection with that
  index (IVF_SQ8 with `--nlist`, searched with `--nprobe`, as `store.py` does), flushed, loaded and searched.
Each dense leg is then fused with the question's stored BM25 leg and reranked as `hybrid` does. Beside the recalls:
the median time of one top-`--limit` dense search, and for the indexed variants the bytes per chunk of the vector
index Lite built (its faiss index file: what a loaded segment holds for that field), scaled to a million chunks.

Usage: python bench/dense_compression.py --legs DATA_DIR/legs.json.gz --docs DOCS [--docs DOCS2]
       [--dims 256 128] [--indexes HNSW_SQ8 IVF_SQ8] [--nlist 128] [--nprobe 16]
(the legs file is `bench/tune_fusion.py legs`'s output over the same index; PAGELENS_DATA_DIR names the index).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins"))

import tune_fusion

from pagelens.embed import text_encoder
from pagelens.evaluate import bootstrap_interval, eval_namespace
from pagelens.records import Hit
from pagelens.rerank import rerank
from pagelens.retrieve import fuse_scores, fusion_weights, rerank_weights
from pagelens.settings import get_settings
from pagelens.store import VECTOR_INDEXES, VectorStore

PAGE = 2000


def chunk_vectors(store: VectorStore) -> tuple[list[Hit], np.ndarray]:
    """Every chunk of the namespace (as a Hit without score) and its text vector."""
    hits, vectors = [], []
    while True:
        rows = store.client.query(store.target, filter=store._where(), offset=len(hits), limit=PAGE,
                                  output_fields=["id", "doc_id", "page", "kind", "text", "bbox", "text_vec"])
        for r in rows:
            hits.append(Hit(id=r["id"], doc_id=r["doc_id"], page=r["page"], kind=r["kind"], text=r["text"],
                            bbox=r["bbox"], score=0.0))
            vectors.append(r["text_vec"])
        if len(rows) < PAGE:
            return hits, np.asarray(vectors, dtype=np.float32)


def pca(vectors: np.ndarray, dim: int) -> Callable[[np.ndarray], np.ndarray]:
    """Centre, project on the top `dim` principal axes, renormalise (inner product stays cosine)."""
    mean = vectors.mean(axis=0)
    axes = np.linalg.svd(vectors - mean, full_matrices=False)[2][:dim].T

    def project(x: np.ndarray) -> np.ndarray:
        y = (x - mean) @ axes
        return y / np.linalg.norm(y, axis=1, keepdims=True)

    return project


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--legs", required=True)
    parser.add_argument("--docs", action="append", required=True)
    parser.add_argument("--dims", type=int, nargs="*", default=[256, 128])
    parser.add_argument("--indexes", nargs="*", default=["HNSW", "HNSW_SQ8", "IVF_SQ8"], choices=sorted(VECTOR_INDEXES))
    parser.add_argument("--nlist", type=int, default=128, help="IVF lists (about sqrt to 4 x sqrt of the chunks)")
    parser.add_argument("--nprobe", type=int, default=16, help="IVF lists scanned per search")
    parser.add_argument("--limit", type=int, default=100, help="dense candidates per question, as retrieval asks")
    args = parser.parse_args()
    settings = get_settings()
    store = VectorStore(settings, eval_namespace(args.docs))
    store.ensure_loaded()
    chunks, vectors = chunk_vectors(store)
    rows = [r for r in tune_fusion.load_rows(args.legs) if r["pages"]]
    questions = np.asarray(text_encoder(settings).encode([r["question"] for r in rows]), dtype=np.float32)
    print(f"{len(chunks)} chunks, {len(rows)} answerable questions; recall@1 [95% interval] / recall@5", flush=True)
    variants: dict[str, Callable[[int], list[Hit]]] = {"384 exact": exact(chunks, vectors, questions, args.limit)}
    index_bytes: dict[str, float] = {}
    for dim in args.dims:
        project = pca(vectors, dim)
        variants[f"PCA {dim}"] = exact(chunks, project(vectors), project(questions), args.limit)
    with tempfile.TemporaryDirectory(prefix="pagelens-dense-") as scratch:
        for kind in args.indexes:
            label = f"{kind} nlist={args.nlist} nprobe={args.nprobe}" if kind == "IVF_SQ8" else kind
            variants[label] = indexed(Path(scratch) / f"{kind}.db", kind, chunks, vectors, questions, args)
            index_bytes[label] = index_file_bytes(Path(scratch) / f"{kind}.db") / len(chunks)
        report(variants, rows, settings, index_bytes)


def exact(chunks: list[Hit], matrix: np.ndarray, queries: np.ndarray, limit: int) -> Callable[[int], list[Hit]]:
    def search(n: int) -> list[Hit]:
        scores = matrix @ queries[n]
        return [replace(chunks[i], score=float(scores[i])) for i in np.argsort(-scores)[:limit]]

    return search


def indexed(path: Path, kind: str, chunks: list[Hit], vectors: np.ndarray, queries: np.ndarray,
            args: argparse.Namespace) -> Callable[[int], list[Hit]]:
    """The vectors in a scratch Milvus Lite collection with the store's index `kind`, searched as the store does."""
    from pymilvus import DataType, MilvusClient

    client = MilvusClient(str(path))
    schema = client.create_schema(auto_id=False)
    schema.add_field("n", DataType.INT64, is_primary=True)
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=vectors.shape[1])
    index_type, params = VECTOR_INDEXES[kind]
    index = client.prepare_index_params()
    index.add_index("vec", index_type=index_type, metric_type="IP",
                    params={"nlist": args.nlist} if kind == "IVF_SQ8" else params)
    client.create_collection("bench", schema=schema, index_params=index)
    for start in range(0, len(vectors), PAGE):
        client.insert("bench", [{"n": i, "vec": vectors[i].tolist()} for i in range(start, min(start + PAGE, len(vectors)))])
    client.flush("bench")
    wait_for_index_build(path)
    client.release_collection("bench")
    client.load_collection("bench")  # a loaded flushed segment searches its built index
    search_params: dict[str, Any] = {"metric_type": "IP"}
    if kind == "IVF_SQ8":
        search_params["params"] = {"nprobe": args.nprobe}

    def search(n: int) -> list[Hit]:
        (found,) = client.search("bench", data=[queries[n].tolist()], anns_field="vec", limit=args.limit, output_fields=["n"],
                                 search_params=search_params)
        return [replace(chunks[int(r["n"])], score=float(r["distance"])) for r in found]

    return search


def index_file_bytes(path: Path) -> int:
    """Bytes of the vector index files Lite wrote for the scratch collection (one per sealed segment)."""
    return sum(f.stat().st_size for f in path.rglob("*.idx"))


def wait_for_index_build(path: Path) -> None:
    """Block until Milvus Lite's background compaction and index build of the scratch file are done.

    Lite reports every index as Finished at once (its DescribeIndex does not look), and searches brute-force
    the segments not yet indexed, so without this an index would be measured before it exists.
    """
    from milvus_lite.server_manager import server_manager_instance

    entry = server_manager_instance._servers.get(str(path.resolve()))
    if entry is None:
        raise RuntimeError(f"no in-process Milvus Lite serves {path}: cannot tell when its index is built")
    for collection in entry[1]._collections.values():
        collection._wait_for_bg()


def report(variants: dict[str, Callable[[int], list[Hit]]], rows: list[dict[str, Any]], settings: Any,
           index_bytes: dict[str, float]) -> None:
    for name, search in variants.items():
        table: dict[tuple[str, str], list[tuple[float, float]]] = {}
        times = []
        for n, row in enumerate(rows):
            started = time.perf_counter()
            dense = search(n)
            times.append((time.perf_counter() - started) * 1000)
            legs = {"bm25": row["hits"]["bm25"], "dense": dense, "image": []}
            hybrid = rerank(row["question"], fuse_scores(legs, fusion_weights(settings)),
                            (h for leg in legs.values() for h in leg), rerank_weights(settings), settings.rerank_pages)
            for mode, ranked in (("dense", dense), ("hybrid", hybrid)):
                first = tune_fusion.first_gold_rank(ranked, row)
                table.setdefault((mode, row["file"]), []).append((float(first == 1), float(bool(first and first <= 5))))
        cells = []
        for (mode, file), values in sorted(table.items()):
            at1 = [a for a, _ in values]
            low, high = bootstrap_interval(at1)
            cells.append(f"{mode} {file}: {np.mean(at1):.3f} [{low:.2f}-{high:.2f}] / {np.mean([b for _, b in values]):.3f}")
        size = (f"; index {index_bytes[name]:,.0f} B/chunk = {index_bytes[name] * 1e6 / 2**30:.2f} GiB per million"
                if name in index_bytes else "")
        print(f"{name:34} " + "; ".join(cells) + f"; search p50 {statistics.median(times):.1f} ms{size}")


if __name__ == "__main__":
    main()
