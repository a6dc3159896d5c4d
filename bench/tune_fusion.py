"""Choose hybrid fusion and abstention settings by k-fold cross-validation over labelled questions.

Usage: python bench/tune_fusion.py legs QUESTIONS... --docs DIR [--docs DIR] --out legs.json.gz
       python bench/tune_fusion.py tune legs.json.gz [--folds 5]
       python bench/tune_fusion.py rerank legs.json.gz [--folds 5] [--dense-weights W ...]
       python bench/tune_fusion.py abstain legs.json.gz [--dense-weight W] [--max-false-abstain 0.03]
       (`make tune` runs all three over docs/ + distractors/)

`legs` runs each retriever (BM25, MiniLM, CLIP when configured) once per question against the index
`pagelens eval` builds for those folders and keeps the raw chunk hits. `tune` then scores fusion settings
on those hits with the product's own fusion (`pagelens.retrieve.fuse_scores`; `rerank`: the product's second
stage, `pagelens.rerank.rerank`, over that fusion), and picks each setting on
k-1 folds and measures it on the held-out fold, so the figure reported for a setting is one it was not
chosen on. Folds are stratified by question file and modality. Unanswerable questions
(`"modality": "unanswerable"`) only enter the abstention threshold.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import statistics
import sys
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "plugins"))

from pagelens.records import Hit  # noqa: E402
from pagelens.retrieve import distinct_pages, fuse_by_page, fuse_scores  # noqa: E402

DENSE_WEIGHTS = [round(i / 20, 2) for i in range(21)]
RERANK_GRID = {"coverage": [0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0], "phrase": [0.0, 0.1, 0.2, 0.3, 0.4, 0.6, 0.8, 1.0],
               "number": [0.0, 0.1, 0.2, 0.3]}


def collect_legs(args: argparse.Namespace) -> None:
    from tqdm import tqdm

    from pagelens.evaluate import eval_namespace, load_questions
    from pagelens.retrieve import search_legs
    from pagelens.settings import get_settings
    from pagelens.store import VectorStore

    settings = get_settings()
    store = VectorStore(settings, eval_namespace(args.docs))
    questions = [(Path(f).name, q) for f in args.questions for q in load_questions(Path(f))]
    rows = []
    for name, q in tqdm(questions, desc="retriever legs", unit="question"):
        legs = search_legs(q["question"], store, settings, args.limit)
        rows.append({"file": name, **q, "legs": {leg: [[h.id, h.doc_id, h.page, h.kind, h.score, h.text, h.bbox]
                                                       for h in hits] for leg, hits in legs.items()}})
    Path(args.out).write_bytes(gzip.compress(json.dumps(rows).encode()))
    print(f"{len(rows)} questions -> {args.out}")


def load_rows(path: str) -> list[dict[str, Any]]:
    rows = json.loads(gzip.decompress(Path(path).read_bytes()))
    for row in rows:
        row["hits"] = {leg: [Hit(id=i, doc_id=d, page=p, kind=k, text=t, bbox=b, score=abs(s) if leg == "bm25" else s)
                             for i, d, p, k, s, t, b in hits] for leg, hits in row.pop("legs").items()}
    return rows


def first_gold_rank(ranked: list[Hit], row: dict[str, Any]) -> int | None:
    gold = {(row["doc"], int(p)) for p in row["pages"]}
    return next((i for i, page in enumerate(distinct_pages(ranked)[:10], 1) if page in gold), None)


def stratified_folds(rows: list[dict[str, Any]], k: int, seed: int = 20241124) -> list[list[int]]:
    groups: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, row in enumerate(rows):
        groups[(row["file"], row.get("modality", ""))].append(i)
    rng, folds, turn = random.Random(seed), [[] for _ in range(k)], 0
    for key in sorted(groups):
        members = groups[key]
        rng.shuffle(members)
        for i in members:
            folds[turn % k].append(i)
            turn += 1
    return folds


def table_for(rows: list[dict[str, Any]], rank: Callable[[dict[str, Any]], list[Hit]]) -> list[tuple[float, float]]:
    out = []
    for row in rows:
        first = first_gold_rank(rank(row), row)
        out.append((float(first == 1), float(bool(first and first <= 5))))
    return out


def mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def tune(args: argparse.Namespace) -> None:
    rows = [r for r in load_rows(args.legs) if r["pages"]]
    files = sorted({r["file"] for r in rows})
    fixed = {
        "bm25": lambda r: r["hits"]["bm25"],
        "dense": lambda r: r["hits"]["dense"],
        "rrf": lambda r: fuse_by_page([(1.0, r["hits"]["bm25"]), (1.0, r["hits"]["dense"])]),
    }
    convex = {w: (lambda r, w=w: fuse_scores(r["hits"], {"bm25": 1 - w, "dense": w})) for w in DENSE_WEIGHTS}
    tables = {name: table_for(rows, fn) for name, fn in fixed.items()}
    tables.update({f"convex {w:.2f}": table_for(rows, fn) for w, fn in convex.items()})

    print(f"{'setting':14}" + "".join(f"{f:>24}" for f in files) + f"{'all':>16}   (recall@1 / recall@5)")
    for name, table in tables.items():
        cells = []
        for f in files:
            mine = [t for t, r in zip(table, rows, strict=True) if r["file"] == f]
            cells.append(f"{mean([m[0] for m in mine]):.3f} / {mean([m[1] for m in mine]):.3f}")
        print(f"{name:14}" + "".join(f"{c:>24}" for c in cells)
              + f"{mean([t[0] for t in table]):.3f} / {mean([t[1] for t in table]):.3f}".rjust(16))

    folds = stratified_folds(rows, args.folds)
    print(f"\n{args.folds}-fold cross-validation of the dense weight (chosen on the other folds by recall@1 + "
          "0.5 recall@5, smoothed over +-0.1)")
    held_out: dict[str, list[float]] = defaultdict(list)
    chosen = []
    for n, test in enumerate(folds):
        train = [i for i in range(len(rows)) if i not in set(test)]
        weight = best_weight(tables, train)
        chosen.append(weight)
        line = f"fold {n + 1} ({len(test)} q): dense weight {weight:.2f}"
        for name in (f"convex {weight:.2f}", "rrf", "bm25", "dense"):
            r1 = mean([tables[name][i][0] for i in test])
            held_out[name.split()[0]].append(r1)
            line += f"  {name.split()[0]} r@1 {r1:.3f}"
        print(line)
    for name, values in held_out.items():
        print(f"held-out recall@1 {name:7} mean {mean(values):.3f}  (folds {', '.join(f'{v:.3f}' for v in values)})")
    final = best_weight(tables, list(range(len(rows))))
    print(f"\nweights chosen per fold: {chosen}; on all questions: {final:.2f} "
          f"(median of folds {statistics.median(chosen):.2f})")


def tune_rerank(args: argparse.Namespace) -> None:
    """Cross-validate the reranker's three weights jointly with the dense weight under it."""
    import itertools

    from pagelens.rerank import RerankWeights, page_evidence, reordered
    from pagelens.settings import get_settings

    settings = get_settings()
    rows = [r for r in load_rows(args.legs) if r["pages"]]
    dense_weights = args.dense_weights or [settings.dense_weight]
    grid = [(w, *g) for w in dense_weights for g in itertools.product(*RERANK_GRID.values())]
    tables = {}
    for r in rows:  # per dense weight: the fused pages and their evidence, computed once for every reranker weight
        r["fused"] = {w: fuse_scores(r["hits"], {"bm25": 1 - w, "dense": w}) for w in dense_weights}
        r["evidence"] = {w: page_evidence(r["question"], f, (h for leg in r["hits"].values() for h in leg),
                                          settings.rerank_pages) for w, f in r["fused"].items()}
    for w, *g in grid:
        weights = RerankWeights(*g)
        tables[(w, *g)] = table_for(rows, lambda r, w=w, weights=weights: reordered(r["fused"][w], r["evidence"][w],
                                                                                    weights))
    legs = {"bm25": table_for(rows, lambda r: r["hits"]["bm25"]), "dense": table_for(rows, lambda r: r["hits"]["dense"])}
    steps = {"dense": dense_weights, **RERANK_GRID}

    def smoothed(g: tuple[float, ...], idx: list[int]) -> float:
        """recall@1 + 0.5 recall@5 on idx, averaged over g and its grid neighbours (one step in each weight)."""
        at = [steps[k].index(v) for k, v in zip(steps, g, strict=True)]
        near = [n for n in grid if all(abs(steps[k].index(v) - a) <= 1 for k, v, a in zip(steps, n, at, strict=True))]
        return mean([sum(tables[n][i][0] + 0.5 * tables[n][i][1] for i in idx) for n in near])

    def choose(idx: list[int]) -> tuple[float, ...]:
        return max(grid, key=lambda g: (round(smoothed(g, idx), 6), -sum(g[1:])))

    def plain(g: tuple[float, ...]) -> tuple[float, ...]:
        return (g[0], 0.0, 0.0, 0.0)  # the same dense weight, no second stage

    folds = stratified_folds(rows, args.folds)
    held: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for n, test in enumerate(folds):
        g = choose([i for i in range(len(rows)) if i not in set(test)])
        for name, table in (("rerank", tables[g]), ("fused", tables[plain(g)]), *legs.items()):
            held[name] += [table[i] for i in test]
        print(f"fold {n + 1} ({len(test)} q): dense {g[0]}, coverage/phrase/number {g[1:]}; held-out r@1 rerank "
              f"{mean([tables[g][i][0] for i in test]):.3f}, fused {mean([tables[plain(g)][i][0] for i in test]):.3f}")
    for name, values in held.items():
        print(f"held-out {name:7} recall@1 {mean([v[0] for v in values]):.3f}  recall@5 {mean([v[1] for v in values]):.3f}")
    final = choose(list(range(len(rows))))
    print(f"\non all questions: dense {final[0]}, coverage/phrase/number {final[1:]}")
    groups = sorted({(r["file"], r.get("modality", "")) for r in rows})
    print(f"{'file / modality':28}{'n':>4}{'rerank':>8}{'fused':>8}{'bm25':>8}{'dense':>8}   (recall@1, chosen on all)")
    for f, m in [*groups, *((f, None) for f in sorted({f for f, _ in groups}))]:
        idx = [i for i, r in enumerate(rows) if r["file"] == f and m in (None, r.get("modality", ""))]
        cells = [mean([t[i][0] for i in idx]) for t in (tables[final], tables[plain(final)], legs["bm25"], legs["dense"])]
        print(f"{f + ' / ' + (m or 'all'):28}{len(idx):>4}" + "".join(f"{c:>8.3f}" for c in cells))


def abstention(args: argparse.Namespace) -> None:
    """Cross-validate the extractive answer's abstention threshold on answerable and unanswerable questions."""
    from pagelens.answer import rank_sentences
    from pagelens.rerank import rerank
    from pagelens.retrieve import rerank_weights
    from pagelens.settings import get_settings

    settings = get_settings()
    rows = load_rows(args.legs)
    dense_weight = settings.dense_weight if args.dense_weight is None else args.dense_weight
    weights = {"bm25": 1 - dense_weight, "dense": dense_weight}
    features = []
    for row in rows:
        hits = rerank(row["question"], fuse_scores(row["hits"], weights), (h for leg in row["hits"].values() for h in leg),
                      rerank_weights(settings), settings.rerank_pages)  # what hybrid answers from
        scored = rank_sentences(row["question"], hits)
        dense_top = max((h.score for h in row["hits"]["dense"]), default=0.0)
        features.append({"support": scored[0].support if scored else -1.0, "dense_top": dense_top,
                         "answerable": bool(row["pages"])})
    answerable = [f for f in features if f["answerable"]]
    silent = [f for f in features if not f["answerable"]]
    for name in ("support", "dense_top"):
        auc = mean([float(u[name] < a[name]) + 0.5 * float(u[name] == a[name]) for u in silent for a in answerable])
        print(f"{name:10} AUC (answerable above unanswerable) {auc:.3f}; unanswerable "
              f"{sorted(round(f[name], 3) for f in silent)}")
        print(f"{'':10} answerable lowest {sorted(round(f[name], 3) for f in answerable)[:12]}")
    folds = stratified_folds(rows, args.folds)
    kept_silent, false_abstain, chosen = [], [], []
    for n, test in enumerate(folds):
        train = [features[i] for i in range(len(rows)) if i not in set(test)]
        threshold = best_threshold(train, args.max_false_abstain)
        chosen.append(threshold)
        held = [features[i] for i in test]
        u = [f["support"] < threshold for f in held if not f["answerable"]]
        a = [f["support"] < threshold for f in held if f["answerable"]]
        kept_silent += u
        false_abstain += a
        print(f"fold {n + 1}: threshold {threshold:.3f}; held out: abstained on {sum(u)}/{len(u)} unanswerable, "
              f"{sum(a)}/{len(a)} answerable")
    print(f"held-out: abstained on {mean(kept_silent):.3f} of unanswerable ({len(kept_silent)}), falsely on "
          f"{mean(false_abstain):.3f} of answerable ({len(false_abstain)}); thresholds {[round(t, 3) for t in chosen]}; "
          f"on all questions: {best_threshold(features, args.max_false_abstain):.3f}")


def best_threshold(features: list[dict[str, Any]], max_false: float) -> float:
    """The support threshold abstaining on the most unanswerable questions while at most `max_false` of the
    answerable ones fall below it; the midpoint between neighbouring scores, so it does not sit on a question."""
    answerable = sorted(f["support"] for f in features if f["answerable"])
    allowed = int(max_false * len(answerable))  # answerable questions that may fall below
    upper = answerable[allowed] if allowed < len(answerable) else answerable[-1]
    below = [x for x in answerable if x < upper]
    lower = max(below) if below else upper - 0.05
    return (lower + upper) / 2


def best_weight(tables: dict[str, list[tuple[float, float]]], idx: list[int]) -> float:
    """The dense weight with the best smoothed recall@1 + 0.5 * recall@5 on `idx`.

    Each weight is scored by the mean over itself and its two neighbours on each side (+-0.1): with a few
    dozen questions a lone spike is one question, a broad plateau is a property of the fusion.
    """
    raw = [(sum(tables[f"convex {w:.2f}"][i][0] for i in idx) + 0.5 * sum(tables[f"convex {w:.2f}"][i][1] for i in idx))
           for w in DENSE_WEIGHTS]
    smooth = [mean(raw[max(0, n - 2):n + 3]) for n in range(len(raw))]
    return DENSE_WEIGHTS[max(range(len(raw)), key=lambda n: (smooth[n], -abs(DENSE_WEIGHTS[n] - 0.5)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    sub = parser.add_subparsers(required=True)
    p = sub.add_parser("legs", help="run each retriever once per question and keep the hits")
    p.add_argument("questions", nargs="+")
    p.add_argument("--docs", action="append", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--limit", type=int, default=100)
    p.set_defaults(run=collect_legs)
    p = sub.add_parser("tune", help="cross-validate fusion settings on kept hits")
    p.add_argument("legs")
    p.add_argument("--folds", type=int, default=5)
    p.set_defaults(run=tune)
    p = sub.add_parser("rerank", help="cross-validate the second stage's weights on kept hits")
    p.add_argument("legs")
    p.add_argument("--dense-weights", type=float, nargs="+", help="fusion weights to choose from with the reranker's "
                   "(default: the settings' alone)")
    p.add_argument("--folds", type=int, default=5)
    p.set_defaults(run=tune_rerank)
    p = sub.add_parser("abstain", help="cross-validate the abstention threshold on kept hits")
    p.add_argument("legs")
    p.add_argument("--dense-weight", type=float, help="fusion weight to answer from (default: the settings')")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--max-false-abstain", type=float, default=0.03)
    p.set_defaults(run=abstention)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
