"""What a reduced text dimension (the seed's 128-d) would cost in recall, measured on a built eval index.

MiniLM has no 128-d output, so a reduced vector means a projection: PCA fitted on the namespace's own chunk
vectors (no labels; what a rebuild could fit). This reads every chunk's `text_vec` from the eval index, ranks
the questions' dense leg by exact inner product at 384 dimensions and at each `--dims` (all in this run), then
fuses each with the stored BM25 leg and reranks as `hybrid` does. Exact search on both sides, so the figures are
the dimension's effect alone, not an index's.

Usage: python bench/text_dim.py --legs DATA_DIR/legs.json.gz --docs DOCS [--docs DOCS2] [--dims 256 128]
(the legs file is `bench/tune_fusion.py legs`'s output over the same index; PAGELENS_DATA_DIR names the index).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

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
from pagelens.store import VectorStore

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
    parser.add_argument("--dims", type=int, nargs="+", default=[256, 128])
    parser.add_argument("--limit", type=int, default=100, help="dense candidates per question, as retrieval asks")
    args = parser.parse_args()
    settings = get_settings()
    store = VectorStore(settings, eval_namespace(args.docs))
    store.ensure_loaded()
    chunks, vectors = chunk_vectors(store)
    rows = [r for r in tune_fusion.load_rows(args.legs) if r["pages"]]
    questions = np.asarray(text_encoder(settings).encode([r["question"] for r in rows]), dtype=np.float32)
    print(f"{len(chunks)} chunks, {len(rows)} answerable questions; recall@1 [95% interval] / recall@5")
    variants = {"384 (as indexed)": (vectors, questions)}
    for dim in args.dims:
        project = pca(vectors, dim)
        variants[f"PCA {dim}"] = (project(vectors), project(questions))
    for name, (matrix, queries) in variants.items():
        table: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for row, query in zip(rows, queries, strict=True):
            scores = matrix @ query
            dense = [replace(chunks[i], score=float(scores[i])) for i in np.argsort(-scores)[:args.limit]]
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
        print(f"{name:18} " + "; ".join(cells))


if __name__ == "__main__":
    main()
