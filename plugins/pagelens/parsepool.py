"""Parse documents in worker processes: all cores for pdfminer's pure-Python layout analysis, a memory cap
per worker, and a native crash (pdfium, a decompression bomb) that kills a worker instead of the run."""

from __future__ import annotations

import multiprocessing
import resource
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from pagelens.errors import CorruptDocument, DecompressionBomb
from pagelens.models import Page
from pagelens.parsecache import parse_cached
from pagelens.settings import Settings
from pagelens.sources import SourceDocument


def _limit_memory(max_bytes: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (max_bytes, max_bytes))


class ParsePool:
    """Submit every document of a batch up front; `pages(doc)` waits for that document's parse."""

    def __init__(self, docs: list[SourceDocument], settings: Settings) -> None:
        self.settings = settings
        self.executor = self._executor(max(1, min(settings.parse_workers, len(docs))))
        self.futures: dict[str, Future[list[Page]]] = {d.doc_id: self._submit(self.executor, d) for d in docs}

    def _executor(self, workers: int) -> ProcessPoolExecutor:
        # spawn, not fork: the parent may hold torch's thread pools, which do not survive a fork
        return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_limit_memory, initargs=(self.settings.parse_memory_mb << 20,))

    def _submit(self, executor: ProcessPoolExecutor, doc: SourceDocument) -> Future[list[Page]]:
        return executor.submit(parse_cached, Path(doc.path), doc.content_sha256, self.settings)

    def pages(self, doc: SourceDocument) -> list[Page]:
        """The parsed pages, or the DocumentError that quarantines the file."""
        try:
            return self.futures[doc.doc_id].result()
        except MemoryError as exc:
            raise DecompressionBomb(f"parsing needed more than {self.settings.parse_memory_mb} MB "
                                    "(PAGELENS_PARSE_MEMORY_MB)") from exc
        except BrokenProcessPool:
            return self._retry_alone(doc)

    def _retry_alone(self, doc: SourceDocument) -> list[Page]:
        """A worker died; the broken pool fails every pending parse, so retry each in its own process."""
        with self._executor(1) as alone:
            try:
                return self._submit(alone, doc).result()
            except BrokenProcessPool as exc:
                raise CorruptDocument("the parser process crashed on this file (native fault or killed)") from exc
            except MemoryError as exc:
                raise DecompressionBomb(f"parsing needed more than {self.settings.parse_memory_mb} MB") from exc

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> ParsePool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
