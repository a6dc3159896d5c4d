"""Exceptions that say what went wrong with a document and what to do; caught at the batch boundary."""

from __future__ import annotations


class DocumentError(Exception):
    """A document that cannot be indexed; the message is the quarantine reason."""

    kind = "unreadable"

    @property
    def reason(self) -> str:
        return f"{self.kind}: {self}"


class EmptyDocument(DocumentError):
    kind = "empty"


class EncryptedDocument(DocumentError):
    kind = "encrypted"


class CorruptDocument(DocumentError):
    kind = "corrupt"


class DecompressionBomb(DocumentError):
    kind = "decompression-bomb"


class UnsupportedDocument(DocumentError):
    kind = "unsupported"


class StoreUnavailable(RuntimeError):
    """Milvus could not be reached; retriable (Airflow retries the task)."""


class IndexMissing(LookupError):
    """Searching before anything was ingested."""
