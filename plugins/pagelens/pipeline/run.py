"""One ingest run over several namespaces: what it covers, a plan and batch manifests per namespace, the summary.

The DAG `pagelens_ingest` wires these around the encode step; each stage is a plain function of settings.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from pagelens.embed import model_version
from pagelens.jobmetrics import push_ingest_run
from pagelens.names import printable
from pagelens.pipeline.batches import BatchManifest
from pagelens.pipeline.stages import batches, finish_ingest, list_sources, plan_ingest
from pagelens.records import DocumentReport
from pagelens.sources import SourceError
from pagelens.store import VectorStore, validate_namespace

if TYPE_CHECKING:
    from pagelens.settings import Settings

log = logging.getLogger(__name__)
STATUSES = ("indexed", "skipped", "quarantined", "deleted")
DEFAULT_NAMESPACE = "default"  # where the embedded inbox goes when no namespace is configured


class RunConfigError(ValueError):
    """The run names a namespace or source it cannot ingest; the message says what to set."""


class NamespacesNotListed(SourceError):
    """Some namespaces' sources could not be listed; the others were ingested. The next run tries them again."""


def run_targets(namespace: str, source: str, settings: Settings) -> dict[str, list[str]]:
    """Namespace -> source locations this run lists.

    - `source` given: a one-off run of that one source into `namespace` (which need not be configured);
    - only `namespace`: that configured namespace, all its sources;
    - neither (scheduled runs): every namespace in `settings.namespaces`; with none configured, the embedded
      inbox `<data_dir>/inbox` into `default` when that folder exists.
    """
    namespace, source = namespace.strip(), source.strip()
    if source:
        if not namespace:
            raise RunConfigError(f"a one-off run of {source} needs a namespace: trigger with "
                                 '{"namespace": "<name>", "source": "…"}')
        return {validate_namespace(namespace): [source]}
    configured = {ns: list(config.sources) for ns, config in settings.namespaces.items()}
    if namespace:
        if namespace not in configured:
            raise RunConfigError(f"namespace {namespace!r} is not configured (PAGELENS_NAMESPACES has "
                                 f"{sorted(configured) or 'none'}): add it there or trigger with a 'source'")
        configured = {namespace: configured[namespace]}
    elif not configured:
        inbox = settings.data_dir / "inbox"
        if not inbox.is_dir():
            log.info("No namespaces configured (PAGELENS_NAMESPACES) and no %s: nothing to ingest", inbox)
        return {DEFAULT_NAMESPACE: [str(inbox)]} if inbox.is_dir() else {}
    return {validate_namespace(ns): locations for ns, locations in configured.items()}


@dataclass
class NamespacePlan:
    """What `finish` needs of one namespace's plan; it travels through XCom, so plain data only."""

    listed: int = 0
    error: str = ""  # why its sources could not be listed (nothing else of it was done)
    skipped: list[dict[str, Any]] = field(default_factory=list)  # reports of documents left alone
    gone: list[str] = field(default_factory=list)
    cursors: dict[str, str] = field(default_factory=dict)
    expired: list[dict[str, Any]] = field(default_factory=list)  # reports of documents past the retention: pruned
    seen: dict[str, float | None] = field(default_factory=dict)  # what the listing found (Plan.seen)
    planned_at: float = field(default_factory=time.time)  # Unix time: the run's duration in its job metrics


@dataclass
class RunPlan:
    manifests: dict[str, BatchManifest] = field(default_factory=dict)  # batch name (<namespace>-<n>) -> manifest
    namespaces: dict[str, NamespacePlan] = field(default_factory=dict)

    def namespaces_dict(self) -> dict[str, dict[str, Any]]:
        return {ns: asdict(plan) for ns, plan in self.namespaces.items()}


def plan_run(targets: dict[str, list[str]], settings: Settings, batch_size: int) -> RunPlan:
    """List each namespace's sources, diff them against the registry and cut the work into batches.

    One namespace whose source is down (a revoked credential, an outage) does not hold up the others: it is
    recorded and `finish_run` fails the run once the rest has landed. If no namespace could be listed, this
    raises at once, so the task's retries apply.
    """
    run, version = RunPlan(), model_version(settings)
    for namespace, locations in targets.items():
        if held := _awaiting_rebuild(namespace, version, settings):
            log.warning("Plan %s: its live generation was built with %s, not %s; pagelens_reindex__%s rebuilds it "
                        "with the new models, so this run leaves it alone", namespace, held, version, namespace)
            run.namespaces[namespace] = NamespacePlan()
            continue
        try:
            listings = list_sources(locations, namespace, settings)
        except SourceError as exc:
            log.error("Plan %s: its sources could not be listed, skipped this run: %s", namespace, exc)
            run.namespaces[namespace] = NamespacePlan(error=str(exc))
            continue
        plan = plan_ingest(listings, namespace, settings)
        cut = batches(plan.to_index, batch_size)
        for number, documents in enumerate(cut):
            run.manifests[f"{namespace}-{number:04d}"] = BatchManifest(namespace, documents, None, version)
        run.namespaces[namespace] = NamespacePlan(listed=sum(len(li.documents) for li in listings), gone=plan.gone,
                                                  skipped=[r.to_dict() for r in plan.skipped], cursors=plan.cursors,
                                                  expired=[r.to_dict() for r in plan.expired], seen=plan.seen)
        log.info("Plan %s: %d listed in %d sources, %d to index in %d batches, %d unchanged, %d gone, %d expired",
                 namespace, run.namespaces[namespace].listed, len(locations), len(plan.to_index), len(cut),
                 len(plan.skipped), len(plan.gone), len(plan.expired))
        for report in plan.expired:  # the dry-run report of what `finish` prunes
            log.info("Plan %s: prune %s (%s)", namespace, printable(report.doc), report.reason)
    if targets and all(p.error for p in run.namespaces.values()):
        raise SourceError("no source could be listed: " + "; ".join(p.error for p in run.namespaces.values()))
    return run


def _awaiting_rebuild(namespace: str, version: str, settings: Settings) -> str | None:
    """The models the live generation holds, when they are not today's and a reindex DAG will rebuild it.

    Writing new-model vectors into an old-model generation would mix two embedding spaces in one index; a
    configured namespace waits for its blue-green rebuild instead (a one-off or unconfigured namespace has no
    reindex DAG, so it is re-embedded in place as the CLI does).
    """
    if namespace not in settings.namespaces:
        return None
    store = VectorStore(settings, namespace)
    held = store.model_version() if store.exists() else None
    return held if held and held != version else None


def finish_run(indexed: Iterable[dict[str, Any]], namespaces: dict[str, dict[str, Any]],
               settings: Settings) -> dict[str, Any]:
    """Retire removed documents, flush and save cursors per namespace (the batches have landed); count it all."""
    documents: list[dict[str, Any]] = []
    for batch in indexed:
        documents += [{**report, "namespace": batch["namespace"]} for report in batch["documents"]]
    failed = {ns: plan["error"] for ns, plan in namespaces.items() if plan.get("error")}
    for namespace, plan in namespaces.items():
        if namespace in failed:
            continue
        deleted = finish_ingest(namespace, settings, plan["gone"], plan["cursors"],
                                [DocumentReport(**r) for r in plan.get("expired", [])], plan.get("seen", {}),
                                plan.get("planned_at"))
        documents += [{**r, "namespace": namespace} for r in plan["skipped"]]
        documents += [{**r.to_dict(), "namespace": namespace} for r in deleted]
    per_namespace = {ns: _counts(d for d in documents if d["namespace"] == ns) for ns in namespaces}
    for namespace, counts in per_namespace.items():
        log.info("Ingest into %s: %s indexed, %s skipped, %s quarantined, %s deleted", namespace, *counts.values())
        if namespace not in failed:  # PAGELENS_METRICS_PUSHGATEWAY, if set: the ingest panels and alerts read it
            push_ingest_run(settings, namespace, [d for d in documents if d["namespace"] == namespace],
                            time.time() - namespaces[namespace].get("planned_at", time.time()))
    total = _counts(documents)
    log.info("Ingest run: %s indexed, %s skipped, %s quarantined, %s deleted in %d namespaces", *total.values(),
             len(namespaces))
    if failed:
        raise NamespacesNotListed("the other namespaces were ingested, but these could not be listed: "
                                  + "; ".join(f"{ns}: {error}" for ns, error in failed.items()))
    return {**total, "namespaces": per_namespace, "documents": documents}


def _counts(documents: Iterable[dict[str, Any]]) -> dict[str, int]:
    counts = dict.fromkeys(STATUSES, 0)
    for document in documents:
        counts[document["status"]] += 1
    return counts
