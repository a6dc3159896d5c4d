"""`pagelens` console script: ingest, ask, eval. Machine-readable output is the last line with --json."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from pagelens.models import DocumentReport
from pagelens.settings import get_settings


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for noisy in ("pdfminer", "httpx", "transformers"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    try:
        return int(args.run(args) or 0)
    except (FileNotFoundError, ValueError, LookupError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pagelens", description="Multimodal RAG over documents.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details to stderr")
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    p = sub.add_parser("ingest", help="index a folder or file into a namespace")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--namespace", default="default")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object (last line)")
    p.set_defaults(run=_ingest)

    p = sub.add_parser("ask", help="answer a question with cited pages")
    p.add_argument("question")
    p.add_argument("--namespace", default="default")
    p.add_argument("--mode", default=None, help="hybrid (default), bm25, dense or concat")
    p.add_argument("--k", type=int, default=5, help="citations to consider")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=_ask)

    p = sub.add_parser("documents", help="list the registry's documents of a namespace")
    p.add_argument("--namespace", default="default")
    p.set_defaults(run=_documents)

    p = sub.add_parser("eval", help="retrieval/answer quality on a page-labelled question file")
    p.add_argument("questions", type=Path)
    p.add_argument("--docs", action="append", required=True, help="folder of the documents (repeatable)")
    p.add_argument("--mode", action="append", help="hybrid, bm25, dense, concat or all (repeatable)")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=_eval)
    return parser


def _progress(total: int, desc: str) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="doc", file=sys.stderr, disable=total == 0, dynamic_ncols=True)


def _run_ingest(paths: list[str], namespace: str) -> tuple[list[DocumentReport], float]:
    from pagelens.ingest import ingest

    settings, bar = get_settings(), None
    start = time.perf_counter()

    def on_plan(plan: Any) -> None:
        nonlocal bar
        bar = _progress(len(plan.to_index), f"indexing {namespace}")

    def on_document(report: DocumentReport) -> None:
        bar.set_postfix_str(report.doc[-40:])
        bar.update(1)

    reports = ingest(paths, namespace, settings, on_document=on_document, on_plan=on_plan)
    if bar is not None:
        bar.close()
    return reports, time.perf_counter() - start


def _ingest(args: argparse.Namespace) -> int:
    reports, seconds = _run_ingest(args.paths, args.namespace)
    counts = {s: sum(r.status == s for r in reports) for s in ("indexed", "skipped", "quarantined", "deleted")}
    pages = sum(r.pages for r in reports if r.status == "indexed")
    summary = {"namespace": args.namespace, **counts, "pages": pages, "seconds": round(seconds, 2),
               "pages_per_s": round(pages / seconds, 2) if seconds else 0.0}
    if not args.json or sys.stdout.isatty():
        _print_reports(reports)
        print(" ".join(f"{k}={v}" for k, v in summary.items()))
    if args.json:
        print(json.dumps({"documents": [r.to_dict() for r in reports], **summary}))
    return 0


def _print_reports(reports: list[DocumentReport]) -> None:
    print(f"{'document':42} {'status':11} {'pages':>5} {'ocr':>4} {'tables':>6} {'chunks':>6} {'sec':>7}  reason")
    for r in reports:
        print(f"{r.doc[-42:]:42} {r.status:11} {r.pages:5} {r.ocr_pages:4} {r.tables:6} {r.chunks:6} "
              f"{r.seconds:7.2f}  {r.reason}")


def _documents(args: argparse.Namespace) -> int:
    from pagelens.registry import Registry

    rows = Registry(get_settings().registry_url).documents(args.namespace)
    _print_reports([DocumentReport(doc=r.doc_id, status=r.status, reason=r.reason, pages=r.pages, ocr_pages=r.ocr_pages,
                                   tables=r.tables, figures=r.figures, chunks=r.chunks, seconds=r.seconds) for r in rows])
    return 0


def _ask(args: argparse.Namespace) -> int:
    from pagelens.answer import answer
    from pagelens.retrieve import retrieve

    settings = get_settings()
    start = time.perf_counter()
    hits = retrieve(args.question, args.namespace, settings, mode=args.mode)
    retrieved = time.perf_counter()
    result = answer(args.question, hits[: max(args.k, 1)], settings)
    result.timings.update({"retrieve_s": round(retrieved - start, 4), "total_s": round(time.perf_counter() - start, 4)})
    if args.json:
        print(json.dumps(result.to_dict()))
        return 0
    print(result.text)
    print(f"\n({result.mode} answer; {len(result.citations)} citations)")
    for c in result.citations:
        box = ", ".join(f"{v:.0f}" for v in c.bbox)
        print(f"  {c.label} {c.doc} page {c.page} bbox [{box}] score {c.score}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from pagelens.evaluate import eval_namespace, load_questions, run_eval
    from pagelens.retrieve import MODES

    questions = load_questions(args.questions)
    modes = [m for spec in (args.mode or ["hybrid"]) for m in (MODES if spec == "all" else [spec])]
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        raise ValueError(f"unknown mode(s) {unknown}; use {', '.join(MODES)} or all")
    namespace = eval_namespace(args.docs)
    reports, seconds = _run_ingest(args.docs, namespace)
    indexed = [r for r in reports if r.status == "indexed"]
    if indexed:
        sys.stderr.write(f"indexed {len(indexed)} documents ({sum(r.pages for r in indexed)} pages) in {seconds:.0f} s\n")
    results = {}
    for mode in modes:
        with _progress(len(questions), f"eval {mode}") as bar:
            results[mode] = run_eval(questions, namespace, get_settings(), mode, args.k, on_question=bar.update)
    if not args.json or sys.stdout.isatty():
        _print_eval(results)
    if args.json:
        print(json.dumps(results[modes[0]] if len(modes) == 1 else results))
    return 0


def _print_eval(results: dict[str, dict[str, Any]]) -> None:
    from pagelens.evaluate import METRICS

    print(f"{'mode':8} {'slice':8} {'n':>3} " + " ".join(f"{m:>10}" for m in METRICS))
    for mode, res in results.items():
        for name, row in [("all", res), *res["by_modality"].items()]:
            print(f"{mode:8} {name:8} {row['n']:3} " + " ".join(f"{row[m]:10.3f}" for m in METRICS))


if __name__ == "__main__":
    raise SystemExit(main())
