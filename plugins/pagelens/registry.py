"""The document ledger: what was indexed, from which bytes, with which models, and why a file was refused."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterable
from pathlib import Path

from sqlalchemy import DateTime, Float, Integer, String, Text, UniqueConstraint, create_engine, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from pagelens.models import DocumentReport


class Base(DeclarativeBase):
    pass


class DocumentRecord(Base):
    __tablename__ = "documents"
    __table_args__ = (UniqueConstraint("namespace", "doc_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    namespace: Mapped[str] = mapped_column(String(128), index=True)
    doc_id: Mapped[str] = mapped_column(String(1024))
    source_uri: Mapped[str] = mapped_column(String(2048))
    etag: Mapped[str] = mapped_column(String(256), default="")
    content_sha256: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))  # indexed | quarantined | deleted
    reason: Mapped[str] = mapped_column(Text, default="")
    model_version: Mapped[str] = mapped_column(String(256), default="")
    pages: Mapped[int] = mapped_column(Integer, default=0)
    ocr_pages: Mapped[int] = mapped_column(Integer, default=0)
    tables: Mapped[int] = mapped_column(Integer, default=0)
    figures: Mapped[int] = mapped_column(Integer, default=0)
    chunks: Mapped[int] = mapped_column(Integer, default=0)
    seconds: Mapped[float] = mapped_column(Float, default=0.0)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


@functools.lru_cache(maxsize=8)
def _engine(url: str) -> Engine:
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, pool_pre_ping=True)
    Base.metadata.create_all(engine)
    return engine


class Registry:
    def __init__(self, url: str) -> None:
        self.engine = _engine(url)

    def get(self, namespace: str, doc_id: str) -> DocumentRecord | None:
        with Session(self.engine) as session:
            return session.scalars(select(DocumentRecord).filter_by(namespace=namespace, doc_id=doc_id)).first()

    def documents(self, namespace: str, status: str | None = None) -> list[DocumentRecord]:
        query = select(DocumentRecord).filter_by(namespace=namespace)
        if status:
            query = query.filter_by(status=status)
        with Session(self.engine) as session:
            return list(session.scalars(query.order_by(DocumentRecord.doc_id)))

    def is_current(self, namespace: str, doc_id: str, content_sha256: str, model_version: str) -> bool:
        """Indexed from these exact bytes with these models: nothing to do."""
        row = self.get(namespace, doc_id)
        return bool(row and row.status == "indexed" and row.content_sha256 == content_sha256
                    and row.model_version == model_version)

    def record(self, namespace: str, source_uri: str, content_sha256: str, model_version: str,
               report: DocumentReport, etag: str = "") -> None:
        with Session(self.engine) as session, session.begin():
            row = session.scalars(select(DocumentRecord).filter_by(namespace=namespace, doc_id=report.doc)).first()
            if row is None:
                row = DocumentRecord(namespace=namespace, doc_id=report.doc)
                session.add(row)
            row.source_uri, row.content_sha256, row.etag, row.model_version = source_uri, content_sha256, etag, model_version
            row.status, row.reason = report.status, report.reason
            row.pages, row.ocr_pages, row.tables, row.figures = report.pages, report.ocr_pages, report.tables, report.figures
            row.chunks, row.seconds = report.chunks, report.seconds
            row.updated_at = dt.datetime.now(dt.UTC)

    def mark_deleted(self, namespace: str, doc_ids: Iterable[str]) -> None:
        query = select(DocumentRecord).filter_by(namespace=namespace).where(DocumentRecord.doc_id.in_(list(doc_ids)))
        with Session(self.engine) as session, session.begin():
            for row in session.scalars(query):
                row.status, row.chunks, row.updated_at = "deleted", 0, dt.datetime.now(dt.UTC)
