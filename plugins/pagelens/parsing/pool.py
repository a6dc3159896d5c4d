"""Parse documents in worker processes: all cores for pdfminer's pure-Python layout analysis, a memory cap
per worker, and a native crash (pdfium, a decompression bomb) that kills a worker instead of the run.

Big PDFs are split into page ranges so that one 400-page manual also uses every core.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import resource
import signal
import sys
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from pagelens import procs, tracing
from pagelens.errors import CorruptDocument, DecompressionBomb, DocumentError
from pagelens.pageimage import store_regions
from pagelens.parsing.artifacts import cached_pages, store_pages
from pagelens.parsing.convert import is_convertible
from pagelens.parsing.pdf import extract_pages
from pagelens.records import Page
from pagelens.settings import Settings
from pagelens.sources import SourceDocument

SPLIT_MIN_PAGES = 24  # PDFs at least this long are parsed as page ranges on several workers
TERMINATE_GRACE_S = 5.0


Parsed = tuple[list[Page], list[dict[str, Any]], DocumentError | None]  # pages, worker spans, the refusal


def _init_worker(max_bytes: int, traced: bool) -> None:
    """Cap the worker's address space; record its spans for the parent when the run is traced.

    A worker ends with the run: SIGTERM (from `ParsePool.terminate`, or from the kernel when the parent dies,
    even by SIGKILL) kills its running Tesseract and exits at once. Ctrl-C is left to the parent, which then
    terminates the workers.
    """
    resource.setrlimit(resource.RLIMIT_AS, (max_bytes, max_bytes))
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _stop_worker)
    parent = multiprocessing.parent_process()
    procs.die_with_parent(parent.pid if parent and parent.pid else os.getppid(), signal.SIGTERM)
    if traced:
        tracing.collect_worker_spans()


def _stop_worker(signum: int, frame: object) -> None:
    procs.kill_children(signal.SIGKILL)
    os._exit(128 + signum)


@contextlib.contextmanager
def _parent_main_hidden() -> Iterator[None]:
    """Start spawned workers without re-running the parent's main script or module, which spawn does by default.

    Workers need only pagelens. Under the `airflow` console script (LocalExecutor task processes) or
    `python -m airflow.sdk.execution_time.execute_workload` (KubernetesExecutor pods) re-running main imports
    Airflow, whose ORM set-up fails in a task process (its metadata DB URL is blocked there): every worker
    would die at start and every document be quarantined as a crash.
    """
    main = sys.modules["__main__"]
    saved = {name: main.__dict__[name] for name in ("__spec__", "__file__") if name in main.__dict__}
    main.__spec__ = None
    main.__dict__.pop("__file__", None)
    try:
        yield
    finally:
        main.__dict__.pop("__spec__", None)
        main.__dict__.update(saved)


def _parse(path: Path, settings: Settings, page_range: tuple[int, int] | None, doc_id: str,
           carrier: dict[str, str]) -> Parsed:
    """In a worker: parse under the parent's span; the spans (and a refusal) travel back with the pages."""
    with tracing.remote_parent(carrier):
        try:
            pages = extract_pages(path, settings, page_range, doc_id, born_digital=is_convertible(doc_id))
        except DocumentError as exc:
            return [], tracing.take_worker_spans(), exc
    return pages, tracing.take_worker_spans(), None


def _unpack(parsed: Parsed) -> list[Page]:
    pages, spans, error = parsed
    tracing.export_worker_spans(spans)
    if error is not None:
        raise error
    return pages


def _page_count(path: Path) -> int:
    """Pages of a PDF, or 0 when unknown (not a PDF, unreadable, encrypted): then it is parsed whole."""
    import pikepdf

    if path.suffix.lower() != ".pdf":
        return 0
    try:
        with pikepdf.open(path) as pdf:
            return len(pdf.pages)
    except (pikepdf.PdfError, pikepdf.PasswordError):  # the worker reports the real reason
        return 0


def page_ranges(pages: int, parts: int) -> list[tuple[int, int]]:
    """`parts` contiguous 1-based inclusive ranges covering `pages`, sizes differing by at most one."""
    parts = max(1, min(parts, pages))
    bounds = [round(i * pages / parts) for i in range(parts + 1)]
    return [(bounds[i] + 1, bounds[i + 1]) for i in range(parts)]


class ParsePool:
    """Submit every document of a batch up front; `pages(doc)` waits for that document's parse."""

    def __init__(self, docs: list[SourceDocument], settings: Settings) -> None:
        self.settings = settings
        self.workers = max(1, settings.parse_workers)
        self.carrier = tracing.context_carrier()  # the pages' spans nest under the span open now
        self.executor = self._executor(self.workers)
        self.jobs: dict[str, tuple[SourceDocument, list[tuple[int, int] | None]]] = {}
        self.futures: dict[str, list[Future[Parsed]]] = {}
        self.cached: dict[str, list[Page]] = {}
        for doc in docs:
            pages = cached_pages(doc.content_sha256, settings)
            if pages is not None:
                self.cached[doc.doc_id] = pages
                continue
            count = _page_count(Path(doc.path)) if self.workers > 1 else 0
            self.jobs[doc.doc_id] = (doc, page_ranges(count, self.workers) if count >= SPLIT_MIN_PAGES else [None])
        self._submit_all(self.jobs)

    def _submit_all(self, jobs: dict[str, tuple[SourceDocument, list[tuple[int, int] | None]]]) -> None:
        for doc_id, (doc, ranges) in jobs.items():
            self.futures[doc_id] = [self._submit(self.executor, doc, r) for r in ranges]

    def _executor(self, workers: int) -> ProcessPoolExecutor:
        # spawn, not fork: the parent may hold torch's thread pools, which do not survive a fork
        return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_init_worker,
                                   initargs=(self.settings.parse_memory_mb << 20, tracing.tracing_enabled()))

    def _submit(self, executor: ProcessPoolExecutor, doc: SourceDocument,
                page_range: tuple[int, int] | None) -> Future[Parsed]:
        with _parent_main_hidden():  # submit() starts the workers (spawn starts them on demand)
            return executor.submit(_parse, Path(doc.path), self.settings, page_range, doc.doc_id, self.carrier)

    def pages(self, doc: SourceDocument) -> list[Page]:
        """The parsed pages (cached for the next run), or the DocumentError that quarantines the file."""
        if doc.doc_id in self.cached:
            return self.cached[doc.doc_id]
        try:
            pages = [page for future in self.futures[doc.doc_id] for page in _unpack(future.result())]
        except MemoryError as exc:
            raise self._too_big() from exc
        except BrokenProcessPool:
            self._restart(doc)
            pages = self._retry_alone(self.jobs[doc.doc_id][0])  # as submitted (a converted file: its PDF)
        store_pages(doc.content_sha256, self.settings, pages)
        store_regions(self.settings, doc.content_sha256, pages)  # word boxes are at hand only now
        return pages

    def _restart(self, culprit: SourceDocument) -> None:
        """A dead worker breaks the whole pool: start a new one and resubmit the parses still owed."""
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.executor = self._executor(self.workers)
        owed = {d: job for d, job in self.jobs.items() if d != culprit.doc_id
                and not all(f.done() and f.exception() is None for f in self.futures[d])}
        self._submit_all(owed)

    def _retry_alone(self, doc: SourceDocument) -> list[Page]:
        """Retry the document whose parse broke the pool alone: if it breaks that one too, it is the culprit."""
        with self._executor(1) as alone:
            try:
                return _unpack(self._submit(alone, doc, None).result())
            except BrokenProcessPool as exc:
                raise CorruptDocument("the parser process crashed on this file (native fault or killed)") from exc
            except MemoryError as exc:
                raise self._too_big() from exc

    def _too_big(self) -> DecompressionBomb:
        return DecompressionBomb(f"parsing needed more than {self.settings.parse_memory_mb} MB "
                                 "(PAGELENS_PARSE_MEMORY_MB)")

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)

    def terminate(self) -> None:
        """Stop now (the run is failing or was told to stop): SIGTERM each worker, which kills its Tesseract;
        SIGKILL whatever is still there after a grace period. Waiting for running parses could take minutes."""
        processes = list(getattr(self.executor, "_processes", {}).values())  # no public API before Python 3.14
        for process in processes:
            with contextlib.suppress(ProcessLookupError, AttributeError):
                process.terminate()
        self.executor.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            process.join(TERMINATE_GRACE_S)
            if process.is_alive():
                process.kill()
                process.join(TERMINATE_GRACE_S)

    def __enter__(self) -> ParsePool:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.terminate()
