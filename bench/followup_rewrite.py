"""How much the follow-up rewrite (`pagelens.followup`) helps retrieval, on the pairs in followup_pairs.jsonl.

Each pair is a first question, its answer, and a follow-up whose gold page is known. The follow-up is searched
as it is ("alone"), glued to the first question ("concat", the usual baseline), rewritten by the rules
("rules"), by an OpenAI-compatible endpoint when --llm-url is given ("llm"), and as the standalone question a
person would write ("standalone", the ceiling). Printed: recall@1, recall@5 and MRR over distinct pages.

    python bench/followup_rewrite.py [--pairs bench/followup_heldout.jsonl] [--docs ../shared/eval/docs]
                                     [--llm-url http://127.0.0.1:8000/v1 --llm-model M]

followup_pairs.jsonl was in view while the rules were written (its figures are in-sample); followup_heldout.jsonl
was written after the rules were frozen.

The documents the pairs cite (and the demo samples) are indexed once into bench/out/followup/.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "plugins"))

from pagelens.followup import Turn, llm_rewrite, rules_rewrite  # noqa: E402
from pagelens.settings import Settings  # noqa: E402

PAIRS = Path(__file__).with_name("followup_pairs.jsonl")
NAMESPACE = "followups"
VARIANTS = ("alone", "concat", "rules", "llm", "standalone")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=Path, default=REPO.parent / "shared" / "eval" / "docs")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "followup")
    parser.add_argument("--llm-url", default="")
    parser.add_argument("--llm-model", default="")
    parser.add_argument("--pairs", type=Path, action="append", help=f"pair files (default {PAIRS.name})")
    args = parser.parse_args()
    pairs = [json.loads(line) for path in args.pairs or [PAIRS] for line in path.read_text().splitlines() if line.strip()]
    settings = Settings(data_dir=args.out / "data", llm_base_url=args.llm_url, llm_model=args.llm_model or "model",
                        llm_timeout_s=120)
    index(pairs, args.docs, args.out, settings)
    rows = [measure(pair, settings, bool(args.llm_url)) for pair in pairs]
    report(rows, [v for v in VARIANTS if v != "llm" or args.llm_url])
    return 0


def index(pairs: list[dict[str, Any]], docs: Path, out: Path, settings: Settings) -> None:
    from pagelens.pipeline.stages import ingest
    from pagelens.samples import write_samples

    samples = out / "samples"
    write_samples(samples)
    paths = [str(samples), *sorted({str(docs / p["doc"]) for p in pairs if p["docs"] == "eval"})]
    missing = [p for p in paths if not Path(p).exists()]
    if missing:
        raise SystemExit(f"missing documents (is ../shared/eval there?): {missing}")
    start = time.perf_counter()
    reports = ingest(paths, NAMESPACE, settings)
    indexed = [r for r in reports if r.status == "indexed"]
    print(f"index: {len(reports)} documents ({len(indexed)} newly indexed, "
          f"{sum(r.pages for r in indexed)} pages) in {time.perf_counter() - start:.0f} s")


def measure(pair: dict[str, Any], settings: Settings, with_llm: bool) -> dict[str, Any]:
    from pagelens.embed import text_encoder
    from pagelens.followup import _minilm

    turns = [Turn("user", pair["first"]), Turn("assistant", pair["reply"]), Turn("user", pair["followup"])]
    text_encoder(settings)  # loaded before timing the rewrite
    start = time.perf_counter()
    rules = rules_rewrite(turns, _minilm(settings)).question
    rules_ms = (time.perf_counter() - start) * 1000
    questions = {"alone": pair["followup"], "concat": f"{pair['first']} {pair['followup']}", "rules": rules,
                 "standalone": pair["standalone"]}
    if with_llm:
        try:
            questions["llm"] = llm_rewrite(turns, settings)
        except RuntimeError as exc:
            questions["llm"] = pair["followup"]
            print(f"{pair['id']}: LLM rewrite failed ({exc}); counted as the follow-up alone")
    ranks = {name: gold_rank(q, pair, settings) for name, q in questions.items()}
    return {"pair": pair, "questions": questions, "ranks": ranks, "rules_ms": rules_ms}


def gold_rank(question: str, pair: dict[str, Any], settings: Settings) -> int | None:
    from pagelens.retrieve import distinct_pages, retrieve

    pages = distinct_pages(retrieve(question, NAMESPACE, settings, mode="hybrid"))
    gold = {(pair["doc"], page) for page in pair["pages"]}
    return next((n for n, page in enumerate(pages, 1) if page in gold), None)


def report(rows: list[dict[str, Any]], variants: list[str]) -> None:
    for row in rows:
        pair = row["pair"]
        print(f"\n{pair['id']} [{pair['kind']}] {pair['followup']!r}")
        print(f"  rules -> {row['questions']['rules']!r}")
        if "llm" in row["questions"]:
            print(f"  llm   -> {row['questions']['llm']!r}")
        print("  gold rank: " + ", ".join(f"{v} {row['ranks'][v]}" for v in variants))
    print(f"\n{'variant':11} {'n':>3} {'R@1':>6} {'R@5':>6} {'MRR':>6}   by kind (R@5)")
    kinds = sorted({r["pair"]["kind"] for r in rows})
    for variant in variants:
        ranks = [r["ranks"][variant] for r in rows]
        by_kind = " ".join(f"{k} {recall([r['ranks'][variant] for r in rows if r['pair']['kind'] == k], 5):.2f}"
                           for k in kinds)
        print(f"{variant:11} {len(ranks):3} {recall(ranks, 1):6.3f} {recall(ranks, 5):6.3f} {mrr(ranks):6.3f}   {by_kind}")
    rewritten = sum(r["questions"]["rules"] != r["pair"]["followup"] for r in rows)
    median_ms = sorted(r["rules_ms"] for r in rows)[len(rows) // 2]
    print(f"rules rewrote {rewritten} of {len(rows)} follow-ups; median {median_ms:.1f} ms per rewrite")


def recall(ranks: list[int | None], k: int) -> float:
    return sum(1 for r in ranks if r is not None and r <= k) / len(ranks) if ranks else 0.0


def mrr(ranks: list[int | None]) -> float:
    return sum(1 / r for r in ranks if r) / len(ranks) if ranks else 0.0


if __name__ == "__main__":
    raise SystemExit(main())
