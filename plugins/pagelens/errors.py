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


class ConversionFailed(DocumentError):
    """LibreOffice could not turn an Office, HTML or text file into PDF (crash, damaged file, memory cap)."""

    kind = "conversion-failed"


class ConversionTimeout(ConversionFailed):
    kind = "conversion-timeout"


class OutsideSource(DocumentError):
    """A listed name that leads out of its source (a symlink to elsewhere, `..`): never read."""

    kind = "outside-source"


class PageTooLarge(DocumentError):
    """A page whose raster would exceed the render pixel cap even at the lowest resolution used."""

    kind = "page-too-large"


class StoreUnavailable(RuntimeError):
    """Milvus could not be reached; retriable (Airflow retries the task)."""


class RegistrySchemaError(RuntimeError):
    """The registry database's schema does not match this code; the message says which command fixes it."""


class IndexMissing(LookupError):
    """Searching before anything was ingested."""


class IndexOutdated(IndexMissing):
    """The namespace's index was built with an older collection schema than this code reads."""


class PageImageError(LookupError):
    """A page image cannot be produced for a document; the query API answers these with 4xx."""


class DocumentNotFound(PageImageError):
    """The namespace has no indexed document of that id."""


class PageOutOfRange(PageImageError):
    """The document has no page of that number."""


class ContentGone(PageImageError):
    """The indexed bytes of a document are no longer in the content store (or no longer match their hash)."""


class RenderBusy(PageImageError):
    """Every render slot of this process stayed taken for the whole wait; retry shortly."""
