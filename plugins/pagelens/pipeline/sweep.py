"""Removing kept bytes that no indexed document references: the content store's garbage collection.

The content store (`contentstore.py`) and the parse cache (`<data_dir>/parsed`) keep a document's bytes and
what was derived from them (redaction boxes, parse artifacts, the PDF rendition of an Office file) by content
hash, and nothing else ever removes them: a replaced, deleted or retention-pruned document's bytes would stay,
and keep being billed, forever. A hash is live while a registry row of any namespace is indexed with it (its
rendition's hash is live with it). Everything else goes once none of its objects was written or put again
within the grace period: a running ingest puts bytes before the registry records them, and putting refreshes
the timestamp. `pagelens gc` sweeps the whole store; TTL pruning sweeps just the hashes it pruned.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pagelens.contentstore import ContentStore, StoredObject, content_store, sha_of
from pagelens.jobmetrics import push_gc_sweep
from pagelens.parsing.renditions import RENDITION
from pagelens.registry import Registry
from pagelens.settings import Settings

log = logging.getLogger(__name__)
PRUNE_GRACE_HOURS = 1.0  # what TTL pruning leaves of its own hashes: only bytes put by a run still going


@dataclass
class SweepPlan:
    objects: list[StoredObject] = field(default_factory=list)  # content store objects to delete
    parse_cache: list[Path] = field(default_factory=list)  # parse cache files to delete
    hashes: set[str] = field(default_factory=set)  # the content hashes they belong to
    kept_recent: int = 0  # unreferenced hashes left alone because they were put within the grace period

    @property
    def bytes(self) -> int:
        return sum(o.size for o in self.objects) + sum(p.stat().st_size for p in self.parse_cache if p.exists())

    def summary(self, dry_run: bool) -> dict[str, Any]:
        """What `pagelens gc --json` prints and the `pagelens_gc` task returns (take it before sweeping)."""
        return {"dry_run": dry_run, "documents": len(self.hashes), "objects": len(self.objects),
                "parse_cache_files": len(self.parse_cache), "bytes": self.bytes, "kept_recent": self.kept_recent}


def sweep_plan(settings: Settings, grace_hours: float | None = None, hashes: set[str] | None = None,
               now: float | None = None) -> SweepPlan:
    """What a sweep deletes now: objects of unreferenced hashes untouched for `grace_hours` (default: the
    settings'). `hashes`: consider only these (and their renditions) instead of listing the whole store."""
    store = content_store(settings)
    cutoff = (time.time() if now is None else now) - 3600 * (settings.content_grace_hours if grace_hours is None
                                                              else grace_hours)
    live = Registry(settings.registry_url).indexed_hashes()
    by_hash = _objects_by_hash(store, hashes)
    for sha in [s for s in by_hash if s in live]:  # a live document's rendition is live with it
        if (target := _rendition_of(store, sha, by_hash[sha])) is not None:
            live.add(target)
    plan = SweepPlan()
    cache = _parse_cache_by_hash(settings, hashes)
    for sha in (by_hash.keys() | cache.keys()) - live:
        objects, files = by_hash.get(sha, []), cache.get(sha, [])
        if max([o.modified for o in objects] + [f.stat().st_mtime for f in files]) >= cutoff:
            plan.kept_recent += 1
            continue
        plan.objects += objects
        plan.parse_cache += files
        plan.hashes.add(sha)
    return plan


def sweep(settings: Settings, plan: SweepPlan) -> SweepPlan:
    """Delete what the plan lists (the plan is the dry run). Returns it."""
    content_store(settings).delete(o.key for o in plan.objects)
    for path in plan.parse_cache:
        path.unlink(missing_ok=True)
    if plan.hashes:
        log.info("Swept %d documents' kept bytes (%d objects, %d parse cache files)", len(plan.hashes),
                 len(plan.objects), len(plan.parse_cache))
    return plan


def collect_garbage(settings: Settings, grace_hours: float | None = None, dry_run: bool = False) -> dict[str, Any]:
    """The whole store swept (`pagelens gc`, the `pagelens_gc` DAG): its summary, pushed as metrics when real."""
    plan = sweep_plan(settings, grace_hours)
    summary = plan.summary(dry_run)
    if not dry_run:
        sweep(settings, plan)
        push_gc_sweep(settings, summary)  # PAGELENS_METRICS_PUSHGATEWAY, if set: the stale-sweep alert reads it
    return summary


def sweep_hashes(settings: Settings, hashes: set[str]) -> SweepPlan:
    """TTL pruning's part: the pruned documents' bytes, unless another document still has them or a running
    ingest has just put them."""
    return sweep(settings, sweep_plan(settings, PRUNE_GRACE_HOURS, hashes)) if hashes else SweepPlan()


def _objects_by_hash(store: ContentStore, hashes: set[str] | None) -> dict[str, list[StoredObject]]:
    listed = store.objects() if hashes is None else (o for h in sorted(hashes) for o in store.objects(h))
    by_hash: dict[str, list[StoredObject]] = defaultdict(list)
    for obj in listed:
        by_hash[obj.sha256].append(obj)
    if hashes is not None:  # follow the pruned documents' renditions to the PDFs they point at
        for sha in list(by_hash):
            if (target := _rendition_of(store, sha, by_hash[sha])) is not None:
                for obj in store.objects(target):
                    by_hash[obj.sha256].append(obj)
    return by_hash


def _rendition_of(store: ContentStore, sha: str, objects: list[StoredObject]) -> str | None:
    """The hash of the PDF rendition a document's sidecar points at, if it has one (read only when listed)."""
    if not any(o.key.endswith(f".{RENDITION}.json") for o in objects):
        return None
    pointer = store.get_json(sha, RENDITION)
    target = pointer.get("sha256") if isinstance(pointer, dict) else None
    return target if isinstance(target, str) and sha_of(target) == target else None


def _parse_cache_by_hash(settings: Settings, hashes: set[str] | None) -> dict[str, list[Path]]:
    """`<data_dir>/parsed/<sha>-<settings fingerprint>.json.gz` files, by hash."""
    folder = settings.data_dir / "parsed"  # pruning's few hashes are looked up, not found in a listing of all
    paths = folder.glob("*.json.gz") if hashes is None else (p for h in hashes for p in folder.glob(f"{h}-*.json.gz"))
    by_hash: dict[str, list[Path]] = defaultdict(list)
    for path in sorted(paths):
        sha = sha_of(path.name.split("-", 1)[0])
        if sha and (hashes is None or sha in hashes):
            by_hash[sha].append(path)
    return by_hash
