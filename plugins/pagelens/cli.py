"""`pagelens` console script: ingest, ask, eval. Machine-readable output is the last line with --json."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
import time
from pathlib import Path
from typing import Any

from pagelens.errors import RegistrySchemaError, StoreUnavailable
from pagelens.names import printable
from pagelens.procs import exit_on_sigterm
from pagelens.records import DocumentReport
from pagelens.settings import get_settings
from pagelens.sources import SourceError


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if threading.current_thread() is threading.main_thread():
        exit_on_sigterm()  # SIGTERM unwinds like Ctrl-C: parse workers and a Lite server child are stopped
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for noisy in ("pdfminer", "httpx", "transformers"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    try:
        return int(args.run(args) or 0)
    except (FileNotFoundError, ValueError, LookupError, RegistrySchemaError, StoreUnavailable, SourceError) as exc:
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

    p = sub.add_parser("prune", help="remove a namespace's documents past its retention (see what goes with --dry-run)")
    p.add_argument("--namespace", required=True)
    p.add_argument("--dry-run", action="store_true", help="list what would be removed; remove nothing")
    p.add_argument("--by", choices=["modified", "last_seen"], help="instead of the configured retention (with --days)")
    p.add_argument("--days", type=float, help="instead of the configured retention (with --by)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=_prune)

    p = sub.add_parser("gc", help="delete kept bytes no indexed document references (see what goes with --dry-run)")
    p.add_argument("--dry-run", action="store_true", help="list what would be deleted; delete nothing")
    p.add_argument("--grace-hours", type=float, default=None,
                   help="leave bytes put more recently than this (default PAGELENS_CONTENT_GRACE_HOURS, 48)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=_gc)

    p = sub.add_parser("generations", help="a namespace's index generations (the live one marked *)")
    p.add_argument("--namespace", default="default")
    p.set_defaults(run=_generations)

    p = sub.add_parser("rollback", help="point a namespace's index back at the generation before the live one")
    p.add_argument("--namespace", required=True)
    p.set_defaults(run=_rollback)

    p = sub.add_parser("drift", help="compare today's encoders with the drift baseline (taken on first use)")
    p.add_argument("--rebaseline", action="store_true", help="take a new baseline (after a deliberate model upgrade)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=_drift)

    p = sub.add_parser("eval", help="retrieval/answer quality on page-labelled question files")
    p.add_argument("questions", type=Path, nargs="+", help="question files (JSONL; several are scored one by one)")
    p.add_argument("--docs", action="append", required=True, help="folder of the documents (repeatable)")
    p.add_argument("--mode", action="append", help="hybrid, bm25, dense, concat or all (repeatable)")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--details", type=Path, help="write one JSON line per question and mode: gold rank, answer")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=_eval)

    db = sub.add_parser("db", help="the registry database").add_subparsers(required=True, metavar="ACTION")
    p = db.add_parser("upgrade", help="migrate the registry schema to this version (a deploy step on PostgreSQL)")
    p.set_defaults(run=_db_upgrade)

    store = sub.add_parser("store", help="the vector store").add_subparsers(required=True, metavar="ACTION")
    p = store.add_parser("serve", help="serve the embedded Milvus Lite data on 127.0.0.1 for several processes")
    p.add_argument("--port", type=int, default=19530)
    p.set_defaults(run=_store_serve)

    p = sub.add_parser("serve", help="run the HTTP query API in this process (threaded; a Lite file works)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.set_defaults(run=_serve)

    token = sub.add_parser("token", help="bearer tokens of the query API").add_subparsers(required=True, metavar="ACTION")
    p = token.add_parser("create", help="issue a token for namespaces; prints it as the last line (shown only once)")
    p.add_argument("--namespace", action="append", required=True, help="a namespace it may read (repeatable)")
    p.add_argument("--label", default="", help="who or what the token is for")
    p.add_argument("--principal", action="append", default=[], metavar="KIND:ID",
                   help="who it acts for: user:<id>, group:<id>, sitegroup:<site>:<id>, org:<tenant> (repeatable); "
                        "without any it reads only documents open to the whole namespace")
    p.set_defaults(run=_token_create)
    p = token.add_parser("revoke", help="revoke a token at once")
    p.add_argument("token")
    p.set_defaults(run=_token_revoke)
    return parser


def _progress(total: int, desc: str) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="doc", file=sys.stderr, disable=total == 0, dynamic_ncols=True)


def _run_ingest(paths: list[str], namespace: str) -> tuple[list[DocumentReport], float]:
    from pagelens.pipeline.stages import ingest
    from pagelens.tracing import configure_tracing, flush_tracing

    settings, bar = get_settings(), None
    configure_tracing(settings)  # PAGELENS_OTEL_EXPORTER; "none" by default
    start = time.perf_counter()

    def on_plan(plan: Any) -> None:
        nonlocal bar
        bar = _progress(len(plan.to_index), f"indexing {namespace}")

    def on_document(report: DocumentReport) -> None:
        bar.set_postfix_str(report.doc[-40:])
        bar.update(1)

    reports = ingest(paths, namespace, settings, on_document=on_document, on_plan=on_plan)
    flush_tracing()
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
        print(f"{printable(r.doc)[-42:]:42} {r.status:11} {r.pages:5} {r.ocr_pages:4} {r.tables:6} {r.chunks:6} "
              f"{r.seconds:7.2f}  {printable(r.reason)}")


def _documents(args: argparse.Namespace) -> int:
    from pagelens.registry import Registry

    rows = Registry(get_settings().registry_url).documents(args.namespace)
    _print_reports([DocumentReport(doc=r.doc_id, status=r.status, reason=r.reason, pages=r.pages, ocr_pages=r.ocr_pages,
                                   tables=r.tables, figures=r.figures, chunks=r.chunks, seconds=r.seconds) for r in rows])
    return 0


def _gc(args: argparse.Namespace) -> int:
    """The content store and the parse cache against the registry of every namespace (pipeline/sweep.py)."""
    from pagelens.pipeline.sweep import collect_garbage

    settings = get_settings()
    if args.grace_hours is not None and args.grace_hours < 0:
        raise ValueError("--grace-hours must be 0 or more")
    summary = collect_garbage(settings, args.grace_hours, args.dry_run)
    verb = "would delete" if args.dry_run else "deleted"
    if not args.json or sys.stdout.isatty():
        print(f"{verb} the kept bytes of {summary['documents']} unreferenced documents: {summary['objects']} objects "
              f"and {summary['parse_cache_files']} parse cache files, {summary['bytes'] / 2**20:.1f} MiB")
        if summary["kept_recent"]:
            print(f"left {summary['kept_recent']} unreferenced documents put within the grace period "
                  f"({settings.content_grace_hours if args.grace_hours is None else args.grace_hours:g} h)")
    if args.json:
        print(json.dumps(summary))
    return 0


def _prune(args: argparse.Namespace) -> int:
    """From the registry as the last ingest runs left it; the ingest run itself prunes with today's listing."""
    from pagelens.pipeline.retention import prune, prune_plan, retention_of
    from pagelens.settings import Retention

    settings = get_settings()
    if (args.by is None) != (args.days is None):
        raise ValueError("--by and --days go together (a retention instead of the configured one)")
    retention = Retention(by=args.by, days=args.days) if args.by else retention_of(args.namespace, settings)
    if retention is None:
        raise ValueError(f"namespace {args.namespace!r} has no retention: set it in PAGELENS_NAMESPACES "
                         '({"<namespace>": {"sources": [...], "retention": {"by": "modified", "days": 365}}}) '
                         "or try one with --by and --days")
    reports = prune_plan(args.namespace, settings, retention)
    if not args.dry_run:
        prune(args.namespace, settings, reports)
        if reports:
            from pagelens.store import VectorStore

            VectorStore(settings, args.namespace).flush()
    verb = "would remove" if args.dry_run else "removed"
    if not args.json or sys.stdout.isatty():
        for r in reports:
            print(f"{verb} {printable(r.doc)}  ({printable(r.reason)})")
        print(f"namespace={args.namespace} {verb.replace(' ', '_')}={len(reports)}")
    if args.json:
        print(json.dumps({"namespace": args.namespace, "dry_run": args.dry_run, "documents": [r.to_dict() for r in reports]}))
    return 0


def _generations(args: argparse.Namespace) -> int:
    from pagelens.reindex import list_generations

    print(f"  {'generation':40} {'rows':>8}  {'state':9} recorded")
    for g in list_generations(args.namespace, get_settings()):
        recorded = " ".join(f"{k}={v}" for k, v in sorted(g.facts.items()) if k not in ("state", "gold_sha256"))
        print(f"{'*' if g.live else ' '} {g.name:40} {g.rows:8}  {g.facts.get('state', '-'):9} {recorded}")
    return 0


def _rollback(args: argparse.Namespace) -> int:
    from pagelens.reindex import rollback

    previous, live = rollback(args.namespace, get_settings())
    print(f"{args.namespace}: {live} is live again (was {previous})")
    return 0


def _drift(args: argparse.Namespace) -> int:
    from pagelens.drift import EmbeddingDrift, check_drift

    try:
        result = check_drift(get_settings(), rebaseline=args.rebaseline)
    except EmbeddingDrift as exc:
        sys.stderr.write(f"error: {exc}\n")
        result, code = exc.result, 1
    else:
        code = 0
    if args.json:
        print(json.dumps(result.to_dict()))
        return code
    if result.baseline_created:
        print(f"baseline taken with {result.model_version}")
    for e in result.encoders:
        print(f"{e.encoder:10} median {e.median:.4f} min {e.minimum:.4f} over {e.probes} probes "
              f"(threshold {result.threshold}); histogram {dict(zip(e.bin_edges, e.histogram, strict=False))}")
    return code


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
    if result.abstained:
        print(f"\n({result.mode} answer: abstained, the indexed documents do not answer this; nothing cited)")
        return 0
    print(f"\n({result.mode} answer; {len(result.citations)} citations)")
    for c in result.citations:
        box = ", ".join(f"{v:.0f}" for v in c.bbox)
        print(f"  {c.label} {c.doc} page {c.page} bbox [{box}] score {c.score}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from pagelens.evaluate import eval_namespace, load_questions, run_eval
    from pagelens.retrieve import MODES

    question_sets = {str(path): load_questions(path) for path in args.questions}
    modes = [m for spec in (args.mode or ["hybrid"]) for m in (MODES if spec == "all" else [spec])]
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        raise ValueError(f"unknown mode(s) {unknown}; use {', '.join(MODES)} or all")
    namespace = eval_namespace(args.docs)
    reports, seconds = _run_ingest(args.docs, namespace)
    indexed = [r for r in reports if r.status == "indexed"]
    if indexed:
        sys.stderr.write(f"indexed {len(indexed)} documents ({sum(r.pages for r in indexed)} pages) in {seconds:.0f} s\n")
    results: dict[str, dict[str, Any]] = {}
    details: list[dict[str, Any]] = []
    for name, questions in question_sets.items():
        results[name] = {}
        for mode in modes:
            rows: list[dict[str, Any]] = []
            with _progress(len(questions), f"eval {Path(name).name} {mode}") as bar:
                results[name][mode] = run_eval(questions, namespace, get_settings(), mode, args.k,
                                               on_question=bar.update, details=rows)
            details += [{"file": Path(name).name, **row} for row in rows]
    if args.details:
        args.details.write_text("".join(json.dumps(row) + "\n" for row in details), encoding="utf-8")
    if not args.json or sys.stdout.isatty():
        for name, by_mode in results.items():
            print(f"\n{name}")
            _print_eval(by_mode)
    if args.json:
        if len(results) == 1:
            (only,) = results.values()
            print(json.dumps(only[modes[0]] if len(modes) == 1 else only))
        else:
            print(json.dumps(results))
    return 0


def _print_eval(results: dict[str, dict[str, Any]]) -> None:
    from pagelens.evaluate import METRICS

    if not any(res["n"] for res in results.values()):  # only unanswerable questions: there is no recall to show
        for mode, res in results.items():
            print(f"{mode:8} abstained on {_abstained_count(res)} of {res['n_unanswerable']} unanswerable questions")
        return
    print(f"{'mode':8} {'slice':12} {'n':>3} " + " ".join(f"{m:>10}" for m in METRICS) + f" {'abstain':>10}")
    for mode, res in results.items():
        for name, row in [("all", res), *res["by_modality"].items()]:
            print(f"{mode:8} {name:12} {row['n']:3} " + " ".join(f"{row[m]:10.3f}" for m in METRICS)
                  + f" {row['false_abstained']:10.3f}")
        lo1, hi1 = res["recall@1_ci95"]
        lo5, hi5 = res["recall@5_ci95"]
        line = f"{mode:8} 95% interval: recall@1 {lo1:.3f}-{hi1:.3f}, recall@5 {lo5:.3f}-{hi5:.3f}"
        if res["n_unanswerable"]:
            line += f"; abstained on {_abstained_count(res)} of {res['n_unanswerable']} unanswerable"
        print(line + " (abstain column: false abstentions on answerable questions)")


def _abstained_count(res: dict[str, Any]) -> int:
    return round(res["abstained"] * res["n_unanswerable"])


def _db_upgrade(args: argparse.Namespace) -> int:
    from pagelens.migrations import upgrade
    from pagelens.registry import make_engine

    engine = make_engine(get_settings().registry_url)
    before, after = upgrade(engine)
    print(f"registry {engine.url.render_as_string(hide_password=True)}: schema {before or '(empty)'} -> {after}")
    engine.dispose()
    return 0


def _store_serve(args: argparse.Namespace) -> int:
    from pagelens import liteserver

    data_dir = liteserver.lite_data_dir(get_settings())
    process = liteserver.start(data_dir, args.port)
    try:
        uri = liteserver.wait_ready(process, args.port)
        print(f"Milvus Lite serves {data_dir} on {uri} (Ctrl-C stops it). In every process that uses it:\n"
              f"  export PAGELENS_MILVUS_URI={uri}", flush=True)
        return process.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        liteserver.stop(process)


def _serve(args: argparse.Namespace) -> int:
    from query_api import create_app

    settings = get_settings()
    auth = "bearer tokens required" if settings.api_auth else "auth OFF: every namespace is readable"
    sys.stderr.write(f"pagelens API on http://{args.host}:{args.port} ({auth}; Milvus {settings.milvus_uri})\n")
    create_app(settings).run(host=args.host, port=args.port, threaded=True, use_reloader=False)
    return 0


def _token_create(args: argparse.Namespace) -> int:
    from pagelens.tokens import create_token

    try:
        token = create_token(get_settings(), args.namespace, args.label, args.principal)
    except ValueError as exc:
        sys.stderr.write(f"pagelens token create: {exc}\n")
        return 2
    who = f" as {', '.join(sorted(set(args.principal)))}" if args.principal else " (namespace-wide documents only)"
    sys.stderr.write(f"token for {', '.join(sorted(set(args.namespace)))}{who} (store it now: only its hash is kept)\n")
    print(token)
    return 0


def _token_revoke(args: argparse.Namespace) -> int:
    from pagelens.tokens import revoke_token

    revoke_token(get_settings(), args.token)
    print("revoked")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
