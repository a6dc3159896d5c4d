"""Blue-green rebuild of one namespace: a new generation beside the live one, judged on the gold set, then swapped.

The stages (`rebuild_decision` → `prepare_rebuild` → parse and encode per batch into the new generation →
`judge_and_swap`, or `abandon_rebuild` when a batch failed) are what `dags/pagelens_reindex.py` maps over
tasks. The registry describes the live index, so it is written only after a swap, from the rebuild's reports.

Each generation carries its story as Milvus collection properties (`pagelens.state`: building, failed or
swapped; when it started; the gate figure it earned), so every task process, the CLI and the next night's
run read the same facts from the store without another database.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pagelens.embed import model_version
from pagelens.pipeline.batches import BatchManifest
from pagelens.pipeline.retention import listed_expired
from pagelens.pipeline.stages import batches, list_sources, plan_ingest
from pagelens.records import DocumentReport
from pagelens.registry import DocumentRecord, Registry
from pagelens.settings import NamespaceConfig, Settings
from pagelens.sources import open_source
from pagelens.store import SCHEMA_VERSION, VectorStore

log = logging.getLogger(__name__)
GATE_METRIC = "recall@5"
PROPERTY = "pagelens."  # prefix of the collection properties a generation carries
# A candidate still "building" after this long was left by a run that died without marking it: fair game.
BUILD_STALE_AFTER = dt.timedelta(hours=12)


class ReindexError(LookupError):
    """A rebuild that cannot start (namespace not configured) or a rollback with nowhere to go."""


class GateFailed(RuntimeError):
    """The rebuilt generation scores worse on the gold set than allowed; the live one stays."""

    def __init__(self, verdict: Verdict) -> None:
        super().__init__(verdict.reason)
        self.verdict = verdict


@dataclass
class Verdict:
    """The gate's figures: the rebuilt generation against the live one."""

    namespace: str
    generation: str
    live: str | None
    passed: bool
    reason: str
    new_recall: float | None = None
    live_recall: float | None = None
    questions: int = 0
    max_drop: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def loaded(settings: Settings, namespace: str, generation: str) -> VectorStore:
    """A store pinned to one generation and loaded for queries (a fresh task process finds it released)."""
    store = VectorStore(settings, namespace, generation)
    store.ensure_loaded()
    return store


def namespace_config(namespace: str, settings: Settings) -> NamespaceConfig:
    config = settings.namespaces.get(namespace)
    if config is None or not config.sources:
        raise ReindexError(f"namespace '{namespace}' has no sources in PAGELENS_NAMESPACES; add "
                           f'{{"{namespace}": {{"sources": ["…"], "gold": "…"}}}} to rebuild it')
    return config


def rebuild_decision(namespace: str, settings: Settings, force: bool = False) -> tuple[bool, str]:
    """Whether to rebuild now, and why (or why not).

    Never while another run is building a candidate: a backfill run and the scheduled run of the same DAG
    can overlap (Airflow counts a backfill's active runs apart from the DAG's), and the later one would
    drop the earlier one's candidate.
    """
    store = VectorStore(settings, namespace)
    busy = in_progress(store)
    if busy:
        return False, f"another run is building {busy} (started {generation_facts(store, busy).get('started_at')})"
    reason = "forced" if force else rebuild_reason(namespace, settings)
    return bool(reason), reason or "not needed: the live generation holds the current models and nothing changed"


def rebuild_reason(namespace: str, settings: Settings) -> str:
    """Why the namespace needs rebuilding; empty when its live generation is current and nothing changed."""
    store = VectorStore(settings, namespace)
    live = store.live_generation()
    if live is None:
        return "no live generation"
    if not store.schema_current(live):
        return f"live generation {live} predates collection schema {SCHEMA_VERSION} (document permissions)"
    held, current = loaded(settings, namespace, live).model_version(), model_version(settings)
    if held is not None and held != current:
        return f"live generation {live} holds model version {held}; current is {current}"
    changed = pending_changes(namespace, settings)
    return f"{len(changed)} documents changed since the live generation was built: {changed[:5]}" if changed else ""


def pending_changes(namespace: str, settings: Settings) -> list[str]:
    """Documents the incremental ingest has not caught up with (new, changed or gone)."""
    config = namespace_config(namespace, settings)
    plan = plan_ingest(list_sources(config.sources, namespace, settings), namespace, settings)
    version = model_version(settings)
    rows = {r.doc_id: r for r in Registry(settings.registry_url).documents(namespace)}
    # A file that was refused stays refused until its version changes: no nightly rebuild for it.
    changed = [d.doc_id for d in plan.to_index if not _still_quarantined(rows.get(d.doc_id), d.etag, version)]
    return changed + plan.gone


def _still_quarantined(row: DocumentRecord | None, etag: str, version: str) -> bool:
    return bool(row and etag and row.status == "quarantined" and row.etag == etag and row.model_version == version)


def prepare_rebuild(namespace: str, settings: Settings, batch_size: int) -> tuple[str, list[dict[str, Any]]]:
    """List every document of the namespace's sources in full and create the generation they will fill; the
    batches come as `BatchManifest` dicts for the parse and encode steps."""
    config = namespace_config(namespace, settings)
    listings = [open_source(location, settings).list_documents() for location in config.sources]  # no cursor: all
    store = VectorStore(settings, namespace)
    for abandoned in newer_than_live(store):
        log.info("Dropping %s (%s): a candidate newer than the live generation that was never swapped in, or "
                 "one rolled back from", abandoned, generation_facts(store, abandoned).get("state", "unknown"))
        store.drop_generation(abandoned)
    generation = store.create_generation()
    mark(store, generation, state="building", started_at=_now())
    now = time.time()  # what the namespace's retention by modification time expires is not rebuilt
    documents = [doc for listing in listings for doc in listing.documents
                 if not listed_expired(doc, config.retention, now)]
    log.info("Rebuilding %s into %s: %d documents from %d sources", namespace, generation, len(documents),
             len(listings))
    version = model_version(settings)
    return generation, [BatchManifest(namespace, batch, generation, version).to_dict()
                        for batch in batches(documents, batch_size)]


def newer_than_live(store: VectorStore) -> list[str]:
    generations, live = store.generations(), store.live_generation()
    return generations[generations.index(live) + 1:] if live in generations else generations


def in_progress(store: VectorStore) -> str | None:
    """A candidate some run is still building (and recently started), if any."""
    for name in newer_than_live(store):
        facts = generation_facts(store, name)
        started = dt.datetime.fromisoformat(facts.get("started_at") or "1970-01-01T00:00:00+00:00")
        if facts.get("state") == "building" and dt.datetime.now(dt.UTC) - started < BUILD_STALE_AFTER:
            return name
    return None


def abandon_rebuild(namespace: str, settings: Settings, generation: str) -> None:
    """Mark a candidate whose build failed, so the next run drops it instead of waiting for it."""
    store = VectorStore(settings, namespace)
    if generation in store.generations():
        mark(store, generation, state="failed")
        log.warning("Rebuild of %s into %s failed; %s stays live", namespace, generation, store.live_generation())


def judge_and_swap(namespace: str, settings: Settings, generation: str, reports: list[dict[str, Any]]) -> Verdict:
    """Gate the rebuilt generation; on a pass swap the alias, record the reports and drop old generations.

    Raises GateFailed (the candidate stays, for inspection, until the next rebuild drops it).
    """
    VectorStore(settings, namespace, generation).flush()  # searches then use the index, not brute force
    verdict = judge(namespace, settings, generation)
    store = VectorStore(settings, namespace)
    if not verdict.passed:
        mark(store, generation, state="failed", reason=verdict.reason[:1000])
        raise GateFailed(verdict)
    store.point_alias(generation)
    _remember_figures(store, generation, verdict, settings)
    record_rebuild(namespace, settings, [DocumentReport(**r) for r in reports])
    dropped = prune_generations(store, settings.keep_generations)
    log.info("%s now serves %s (%s); dropped %s", namespace, generation, verdict.reason, dropped or "nothing")
    return verdict


def judge(namespace: str, settings: Settings, generation: str) -> Verdict:
    """Recall@5 on the namespace's gold questions, the candidate against the live generation."""
    live = VectorStore(settings, namespace).live_generation()
    verdict = Verdict(namespace, generation, live, passed=True, reason="", max_drop=settings.reindex_max_recall_drop)
    candidate_rows = loaded(settings, namespace, generation).count()
    live_rows = loaded(settings, namespace, live).count() if live else 0
    if candidate_rows == 0 and live_rows > 0:
        verdict.passed = False
        verdict.reason = (f"{generation} is empty while {live} holds {live_rows} chunks: is a source unreachable "
                          "or misconfigured? The live generation stays.")
        return verdict
    gold = namespace_config(namespace, settings).gold
    if not gold:
        log.warning("Namespace %s has no gold question set: %s swaps in without a quality gate (set "
                    "PAGELENS_NAMESPACES[%s].gold to a questions JSONL file)", namespace, generation, namespace)
        verdict.reason = "no gold set: swapped without a quality gate"
        return verdict
    from pagelens.evaluate import load_questions, run_eval

    questions = load_questions(Path(gold))
    verdict.questions = len(questions)
    verdict.new_recall = run_eval(questions, namespace, settings, settings.retrieval_mode,
                                  generation=generation, answers=False)[GATE_METRIC]
    verdict.live_recall = _live_recall(namespace, settings, live, questions, Path(gold)) if live else None
    if verdict.live_recall is None:
        verdict.reason = f"{GATE_METRIC} {verdict.new_recall:.3f} on {len(questions)} gold questions (no live generation)"
        return verdict
    drop = verdict.live_recall - verdict.new_recall
    verdict.passed = drop <= settings.reindex_max_recall_drop + 1e-9
    figures = (f"{GATE_METRIC} {verdict.new_recall:.3f} for {generation} vs {verdict.live_recall:.3f} for live {live} "
               f"on {len(questions)} gold questions (allowed drop {settings.reindex_max_recall_drop:.3f})")
    verdict.reason = figures if verdict.passed else (
        f"quality gate failed for {namespace}: {figures}. {live} stays live; {generation} is kept for inspection "
        f"(`pagelens ask … --namespace {namespace}` reads the live one) until the next rebuild drops it")
    return verdict


def _live_recall(namespace: str, settings: Settings, live: str, questions: list[dict[str, Any]],
                 gold: Path) -> float:
    """The live generation measured now, or, when its vectors come from other models, the figure it earned.

    Queries are encoded with today's models, which would understate a generation built with other ones.
    """
    from pagelens.evaluate import run_eval

    held = loaded(settings, namespace, live).model_version()
    if held is not None and held != model_version(settings):
        recorded = generation_facts(VectorStore(settings, namespace), live)
        if recorded.get("gold_sha256") == _sha256(gold) and "recall_at_5" in recorded:
            log.info("Live %s was built with %s: comparing with the recall it earned at its swap", live, held)
            return float(recorded["recall_at_5"])
        log.warning("Live %s was built with %s and has no recorded figure for this gold set: it is measured with "
                    "today's query encoders, which may understate it", live, held)
    return float(run_eval(questions, namespace, settings, settings.retrieval_mode, generation=live,
                          answers=False)[GATE_METRIC])


def _remember_figures(store: VectorStore, generation: str, verdict: Verdict, settings: Settings) -> None:
    """Store the gate figure on the generation itself, for the next model change's comparison and for humans."""
    facts = {"state": "swapped", "model_version": model_version(settings), "swapped_at": _now()}
    gold = settings.namespaces[verdict.namespace].gold
    if gold and verdict.new_recall is not None:
        facts |= {"recall_at_5": str(verdict.new_recall), "gold_sha256": _sha256(Path(gold))}
    mark(store, generation, **facts)


def mark(store: VectorStore, generation: str, **facts: str) -> None:
    store.client.alter_collection_properties(generation, properties={PROPERTY + k: v for k, v in facts.items()})


def generation_facts(store: VectorStore, generation: str) -> dict[str, str]:
    """What the rebuilds recorded on a generation (state, started_at, swapped_at, model_version, recall_at_5...)."""
    properties = store.client.describe_collection(generation).get("properties") or {}
    return {k.removeprefix(PROPERTY): str(v) for k, v in properties.items() if k.startswith(PROPERTY)}


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def record_rebuild(namespace: str, settings: Settings, reports: list[DocumentReport]) -> None:
    """Make the registry describe the generation now live: its documents' outcomes, the rest deleted."""
    registry, version = Registry(settings.registry_url), model_version(settings)
    for report in reports:
        if report.status in ("indexed", "quarantined"):
            registry.record(namespace, report, version)
    rebuilt = {r.doc for r in reports if r.status != "deleted"}
    gone = [r.doc_id for r in registry.documents(namespace) if r.status != "deleted" and r.doc_id not in rebuilt]
    if gone:
        registry.mark_deleted(namespace, gone)


def prune_generations(store: VectorStore, keep: int) -> list[str]:
    """Drop generations older than the `keep` newest up to the live one (live + previous by default)."""
    if keep < 1:
        raise ValueError(f"keep_generations must be at least 1 (the live generation), not {keep}")
    generations, live = store.generations(), store.live_generation()
    if live not in generations:
        return []
    older = generations[:max(generations.index(live) + 1 - keep, 0)]
    for name in older:
        store.drop_generation(name)
    return older


@dataclass
class GenerationInfo:
    name: str
    live: bool
    rows: int
    facts: dict[str, str]  # what the rebuilds recorded on it (generation_facts)


def list_generations(namespace: str, settings: Settings) -> list[GenerationInfo]:
    store = VectorStore(settings, namespace)
    live = store.live_generation()
    return [GenerationInfo(name, name == live, int(store.client.get_collection_stats(name).get("row_count", 0)),
                           generation_facts(store, name)) for name in store.generations()]


def rollback(namespace: str, settings: Settings) -> tuple[str, str]:
    """Point the namespace's alias back at the generation before the live one; returns (from, to)."""
    store = VectorStore(settings, namespace)
    generations, live = store.generations(), store.live_generation()
    if live not in generations or generations.index(live) == 0:
        raise ReindexError(f"namespace '{namespace}' has no generation older than {live or 'none'} to roll back to "
                           f"(generations: {generations or 'none'})")
    previous = generations[generations.index(live) - 1]
    store.point_alias(previous)
    log.warning("Rolled %s back from %s to %s; the next rebuild that runs drops %s", namespace, live, previous, live)
    return live, previous
