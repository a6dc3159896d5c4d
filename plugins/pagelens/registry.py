"""The document ledger: what was indexed, from which bytes, with which models, and why a file was refused."""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sqlalchemy import DateTime, Float, Integer, MetaData, String, Text, UniqueConstraint, create_engine, func, or_, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from sqlalchemy.sql import bindparam, delete, update

from pagelens.records import DocumentReport

REASON_KIND = re.compile(r"^[a-z][a-z-]{0,39}$")  # the "kind: detail" prefix quarantine reasons start with


class Base(DeclarativeBase):
    # Named constraints: migrations can drop or alter them by name on every database (SQLite batch mode too).
    metadata = MetaData(naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_name)s", "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s", "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    })


class DocumentRecord(Base):
    __tablename__ = "documents"
    __table_args__ = (UniqueConstraint("namespace", "doc_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    namespace: Mapped[str] = mapped_column(String(128), index=True)
    doc_id: Mapped[str] = mapped_column(String(1024))
    source_uri: Mapped[str] = mapped_column(String(2048))
    location: Mapped[str] = mapped_column(String(2048), default="")  # the source it was listed from
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
    # JSON list of who may read it, as its chunks carry them; ["*"]: every reader of the namespace
    principals: Mapped[str] = mapped_column(Text, default='["*"]', server_default='["*"]')
    # Retention (pipeline/retention.py): the source's modification time as last listed, and when an ingest run
    # last listed the document. NULL: not known (rows written before revision 0003 count from `updated_at`).
    source_modified_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True, default=None)
    last_seen_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True, default=None)

    def readable_by(self, principals: Iterable[str] | None) -> bool:
        """Whether a reader with these principals (None: unrestricted) may see the document at all."""
        allowed = set(json.loads(self.principals or "[]"))
        return principals is None or "*" in allowed or bool(allowed & set(principals))

    def unchanged(self, etag: str, model_version: str) -> bool:
        """Indexed from this source version (same etag) with these models."""
        return bool(etag) and self.status == "indexed" and self.etag == etag and self.model_version == model_version


def _readable(principals: Iterable[str] | None) -> list[Any]:
    """SQL conditions for `DocumentRecord.readable_by`: the JSON list holds "*" or one of the principals (matched
    with its quotes, so `user:a` never matches `user:ab`)."""
    if principals is None:
        return []
    column = DocumentRecord.principals
    return [or_(*(column.contains(json.dumps(p), autoescape=True) for p in sorted({"*", *principals})))]


class SourceState(Base):
    """Where a delta source continues next run (a Graph delta link), per namespace and location."""

    __tablename__ = "source_state"
    __table_args__ = (UniqueConstraint("namespace", "location"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    namespace: Mapped[str] = mapped_column(String(128))
    location: Mapped[str] = mapped_column(String(2048))
    cursor: Mapped[str] = mapped_column(Text, default="")
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class ApiToken(Base):
    """A bearer token of the query API, stored only as its SHA-256, with the namespaces it may read."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    namespaces: Mapped[str] = mapped_column(Text)  # JSON list of namespace names
    label: Mapped[str] = mapped_column(String(256), default="")
    principals: Mapped[str] = mapped_column(Text, default="[]", server_default="[]")  # JSON: user:…, group:…
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True, default=None)


def make_engine(url: str) -> Engine:
    """An engine on the registry URL (creating the SQLite file's folder), without any schema check."""
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return create_engine(url, pool_pre_ping=True)


@functools.lru_cache(maxsize=8)
def _engine(url: str) -> Engine:
    engine = make_engine(url)
    from pagelens.migrations import ensure_schema  # SQLite upgrades itself; PostgreSQL needs `pagelens db upgrade`

    ensure_schema(engine)
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

    def indexed_namespaces(self) -> list[str]:
        """Namespaces with at least one indexed document (what the query API must be able to search)."""
        query = select(DocumentRecord.namespace).filter_by(status="indexed").distinct().order_by(DocumentRecord.namespace)
        with Session(self.engine) as session:
            return list(session.scalars(query))

    def indexed_hashes(self) -> set[str]:
        """The content hashes of every indexed document, in any namespace: the bytes the content store must keep."""
        query = select(DocumentRecord.content_sha256).filter_by(status="indexed").distinct()
        with Session(self.engine) as session:
            return set(session.scalars(query))

    def indexed_namespaces_updated(self) -> dict[str, dt.datetime]:
        """Namespaces with indexed documents and when their newest row changed."""
        query = (select(DocumentRecord.namespace, func.max(DocumentRecord.updated_at))
                 .where(DocumentRecord.status == "indexed").group_by(DocumentRecord.namespace)
                 .order_by(DocumentRecord.namespace))
        with Session(self.engine) as session:
            return {ns: _aware(when) for ns, when in session.execute(query)}

    def document_page(self, namespace: str, status: str | None = None, reason_kind: str | None = None,
                      limit: int = 50, offset: int = 0, principals: Iterable[str] | None = None
                      ) -> tuple[list[DocumentRecord], int]:
        """One page of a namespace's documents by name (filtered by status and quarantine reason kind) and the total;
        with `principals`, only the documents a reader with them may see (`readable_by`)."""
        query = select(DocumentRecord).filter_by(namespace=namespace).where(*_readable(principals))
        if status:
            query = query.filter_by(status=status)
        if reason_kind:
            if not REASON_KIND.match(reason_kind):
                raise ValueError(f"invalid reason kind {reason_kind[:40]!r}: lowercase letters and dashes")
            query = query.where(DocumentRecord.reason.like(f"{reason_kind}:%"))
        with Session(self.engine) as session:
            total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
            rows = session.scalars(query.order_by(DocumentRecord.doc_id).limit(limit).offset(offset))
            return list(rows), int(total)

    def status_counts(self, namespace: str, principals: Iterable[str] | None = None) -> dict[str, int]:
        query = (select(DocumentRecord.status, func.count()).where(DocumentRecord.namespace == namespace,
                                                                   *_readable(principals))
                 .group_by(DocumentRecord.status))
        with Session(self.engine) as session:
            return {status: int(n) for status, n in session.execute(query)}

    def quarantine_reasons(self, namespace: str, principals: Iterable[str] | None = None) -> dict[str, int]:
        """Quarantined documents per reason kind ("corrupt", "encrypted", …), most frequent first."""
        query = select(DocumentRecord.reason).filter_by(namespace=namespace, status="quarantined").where(
            *_readable(principals))
        counts: dict[str, int] = {}
        with Session(self.engine) as session:
            for reason in session.scalars(query):
                kind = reason.split(":", 1)[0].strip() if ":" in reason else "unreadable"
                counts[kind] = counts.get(kind, 0) + 1
        return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))

    def is_current(self, namespace: str, doc_id: str, content_sha256: str, model_version: str) -> bool:
        """Indexed from these exact bytes with these models: nothing to do."""
        row = self.get(namespace, doc_id)
        return bool(row and row.status == "indexed" and row.content_sha256 == content_sha256
                    and row.model_version == model_version)

    def is_unchanged(self, namespace: str, doc_id: str, etag: str, model_version: str) -> bool:
        """Indexed from the same source version with these models: skip without fetching the content."""
        row = self.get(namespace, doc_id)
        return bool(row and row.unchanged(etag, model_version))

    def record(self, namespace: str, report: DocumentReport, model_version: str) -> None:
        """Upsert the document's row from the outcome of indexing it (the report carries its source fields)."""
        with Session(self.engine) as session, session.begin():
            row = session.scalars(select(DocumentRecord).filter_by(namespace=namespace, doc_id=report.doc)).first()
            if row is None:
                row = DocumentRecord(namespace=namespace, doc_id=report.doc)
                session.add(row)
            row.source_uri, row.location, row.etag = report.source_uri, report.location, report.etag
            row.content_sha256, row.model_version = report.content_sha256, model_version
            row.status, row.reason = report.status, report.reason
            row.pages, row.ocr_pages, row.tables, row.figures = report.pages, report.ocr_pages, report.tables, report.figures
            row.chunks, row.seconds = report.chunks, report.seconds
            row.principals = json.dumps(sorted(set(report.principals)))
            row.updated_at = row.last_seen_at = dt.datetime.now(dt.UTC)

    def set_principals(self, namespace: str, doc_id: str, principals: Iterable[str]) -> None:
        """Record who may read the document now (a permission change that kept its content)."""
        with Session(self.engine) as session, session.begin():
            row = session.scalars(select(DocumentRecord).filter_by(namespace=namespace, doc_id=doc_id)).first()
            if row is not None:
                row.principals, row.updated_at = json.dumps(sorted(set(principals))), dt.datetime.now(dt.UTC)

    def update_etag(self, namespace: str, doc_id: str, etag: str) -> None:
        """Remember a new source version marker for content found unchanged."""
        with Session(self.engine) as session, session.begin():
            row = session.scalars(select(DocumentRecord).filter_by(namespace=namespace, doc_id=doc_id)).first()
            if row is not None:
                row.etag, row.updated_at = etag, dt.datetime.now(dt.UTC)

    def cursor(self, namespace: str, location: str) -> str:
        with Session(self.engine) as session:
            row = session.scalars(select(SourceState).filter_by(namespace=namespace, location=location)).first()
            return row.cursor if row else ""

    def save_cursor(self, namespace: str, location: str, cursor: str) -> None:
        with Session(self.engine) as session, session.begin():
            row = session.scalars(select(SourceState).filter_by(namespace=namespace, location=location)).first()
            if row is None:
                row = SourceState(namespace=namespace, location=location)
                session.add(row)
            row.cursor, row.updated_at = cursor, dt.datetime.now(dt.UTC)

    def mark_seen(self, namespace: str, seen: dict[str, float | None], at: dt.datetime) -> None:
        """Record that a run listed these documents at `at`; a doc id mapped to a Unix time also gets that source
        modification time (None: keep the recorded one)."""
        table = DocumentRecord.__table__
        plain = [d for d, modified in seen.items() if modified is None]  # most of a run: one statement per 500
        dated = [{"b_doc": d, "b_modified": dt.datetime.fromtimestamp(m, dt.UTC)} for d, m in seen.items() if m is not None]
        with self.engine.begin() as connection:
            for start in range(0, len(plain), 500):
                connection.execute(update(table).where(table.c.namespace == namespace,
                                                       table.c.doc_id.in_(plain[start:start + 500])).values(last_seen_at=at))
            if dated:
                connection.execute(update(table).where(table.c.namespace == namespace, table.c.doc_id == bindparam("b_doc"))
                                   .values(last_seen_at=at, source_modified_at=bindparam("b_modified")), dated)

    def remove(self, namespace: str, doc_ids: Iterable[str]) -> None:
        """Delete the documents' rows (TTL pruning: nothing of them stays, not even a tombstone)."""
        ids = list(doc_ids)
        with Session(self.engine) as session, session.begin():
            for start in range(0, len(ids), 500):
                session.execute(delete(DocumentRecord).where(DocumentRecord.namespace == namespace,
                                                             DocumentRecord.doc_id.in_(ids[start:start + 500])))

    def mark_deleted(self, namespace: str, doc_ids: Iterable[str]) -> None:
        query = select(DocumentRecord).filter_by(namespace=namespace).where(DocumentRecord.doc_id.in_(list(doc_ids)))
        with Session(self.engine) as session, session.begin():
            for row in session.scalars(query):
                row.status, row.chunks, row.updated_at = "deleted", 0, dt.datetime.now(dt.UTC)


def _aware(when: dt.datetime) -> dt.datetime:
    """SQLite hands timestamps back without their zone; they were written in UTC."""
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)
