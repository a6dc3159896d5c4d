"""Milvus: schema, collection generations behind an alias, upsert/delete by document, searches.

The same code talks to a Milvus Lite file (embedded default), `milvus-lite server` on 127.0.0.1, or a
Milvus cluster; only `PAGELENS_MILVUS_URI` differs.
"""

from __future__ import annotations

import functools
import logging
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

from pagelens.errors import IndexMissing, IndexOutdated, StoreUnavailable
from pagelens.records import Chunk, DenseWindow, Hit
from pagelens.settings import IMAGE_DIM, TEXT_DIM, Settings

log = logging.getLogger(__name__)
CONCAT_DIM = IMAGE_DIM + TEXT_DIM
OUTPUT_FIELDS = ["doc_id", "page", "kind", "text", "bbox"]
# Standard tokenizer + English stemming and stop words: "shipped" finds "shipping".
ANALYZER = {"tokenizer": "standard", "filter": ["lowercase", {"type": "stemmer", "language": "english"},
                                                {"type": "stop", "stop_words": ["_english_"]}]}
MAX_TEXT = 65535
PAGE_SIZE = 10_000
# PAGELENS_VECTOR_INDEX -> (Milvus index type, build params). HNSW_SQ8 keeps each vector as one byte per dimension
# in the graph (a quarter of float32's memory); IVF_SQ8 drops the graph as well. Both exist in Milvus Lite and Milvus.
# IVF_SQ8's nlist comes from settings.ivf_nlist at creation.
VECTOR_INDEXES: dict[str, tuple[str, dict[str, Any]]] = {
    "HNSW": ("HNSW", {"M": 16, "efConstruction": 200}),
    "HNSW_SQ8": ("HNSW_SQ", {"M": 16, "efConstruction": 200, "sq_type": "SQ8"}),
    "IVF_SQ8": ("IVF_SQ8", {}),
}
# (uri, alias) loaded for search in this process -> the dense index type of the generation behind it
_LOADED: dict[tuple[str, str], str] = {}
# (uri, alias) -> whether the generation behind it has MiniLM's page windows beside it (see windows_name)
_WINDOWS: dict[tuple[str, str], bool] = {}
WINDOW_OUTPUT_FIELDS = ["chunk_id", "doc_id", "page", "kind", "text", "bbox"]
# 2: `principals` (document-level permissions). Generations of an older schema are refused at search with the
# command that rebuilds them; nothing is migrated in place (Milvus cannot add a field to a collection).
SCHEMA_VERSION = 2
EVERYONE = "*"  # the principal of a document every reader of its namespace may see
MAX_PRINCIPALS = 1024  # per document; a longer list is cut (fewer readers, never more) with a warning
PRINCIPAL_CHARS = 256


@functools.lru_cache(maxsize=8)
def _client(uri: str, token: str, timeout: float, db_name: str = "") -> Any:
    from pymilvus import MilvusClient
    from pymilvus.exceptions import MilvusException

    address = uri
    if not uri.startswith(("http://", "https://", "tcp://")):
        from milvus_lite.exceptions import MilvusLiteError

        from pagelens.liteserver import embedded_uri

        # Milvus Lite serves in-process and logs a traceback for each RPC it does not implement
        # (AllocTimestamp while waiting for an index); pymilvus falls back, so the trace is noise.
        logging.getLogger("grpc._server").setLevel(logging.CRITICAL)
        try:
            address = embedded_uri(uri)
        except MilvusLiteError as exc:  # a Lite file is locked by the one process that opened it
            raise StoreUnavailable(
                f"cannot open the Milvus Lite file {uri} ({exc}): another process probably has it open. For several "
                "processes run `pagelens store serve` and export the PAGELENS_MILVUS_URI it prints in each") from exc
    try:
        return MilvusClient(uri=address, token=token, timeout=timeout, **({"db_name": db_name} if db_name else {}))
    except MilvusException as exc:
        raise StoreUnavailable(f"cannot reach Milvus at {uri} ({exc.message}); is it running?") from exc


# (uri, target, namespace) -> when a search last met a chunk in it not open to all: see restricted()
_RESTRICTED: dict[tuple[str, str, str], float] = {}
RESTRICTED_TTL_S = 60.0
_LITE_ENGINE: dict[str, bool] = {}  # Milvus URI -> whether Milvus Lite's Python engine serves it (asked once)


def _lite_engine(settings: Settings, client: Any) -> bool:
    """Whether the configured Milvus is Milvus Lite's Python engine: a Lite file, or a Lite server (`pagelens
    store serve`, `milvus-lite server`), which reports itself as `milvus_lite-<version>`."""
    uri = settings.milvus_uri
    if uri not in _LITE_ENGINE:
        if settings.is_lite:
            _LITE_ENGINE[uri] = True
        else:
            try:
                _LITE_ENGINE[uri] = str(client.get_server_version()).startswith("milvus_lite")
            except Exception:  # unreachable now (asked again next time), or a server without the RPC: not Lite
                return False
    return _LITE_ENGINE[uri]


def milvus_client(settings: Settings) -> Any:
    """The process's shared client for the configured Milvus (for collections outside a namespace's index)."""
    return _client(settings.milvus_uri, settings.milvus_token, settings.milvus_timeout_s, settings.milvus_db_name)


FILTER_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r"})


def quote(value: str) -> str:
    r"""A string literal for a Milvus filter expression.

    Milvus's parser knows only the escapes \\ \" \n \r \t (a JSON-style \u00dc is a syntax error) and takes
    every other character, non-ASCII and control characters included, as it is.
    """
    return '"' + value.translate(FILTER_ESCAPES) + '"'


NAMESPACE = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")  # matched whole: `$` alone lets "ns\n" through


class InvalidNamespace(ValueError):
    """A namespace name Milvus cannot carry in a collection name."""


def validate_namespace(namespace: str) -> str:
    if not isinstance(namespace, str) or not NAMESPACE.fullmatch(namespace):
        raise InvalidNamespace(f"invalid namespace {namespace!r}: use a letter, then letters, digits or "
                               "underscores (at most 64)")
    return namespace


class VectorStore:
    """One namespace's index: alias `<collection>__<namespace>` over generations `<alias>_v<N>`.

    Each namespace has its own collection generations so its nightly rebuild can be built beside the live
    one and swapped in (or rolled back) without touching other namespaces. `generation` pins a store to
    one generation (the rebuild writes there) instead of following the alias.
    """

    def __init__(self, settings: Settings, namespace: str, generation: str | None = None,
                 principals: Iterable[str] | None = None) -> None:
        """`principals`: the reader's principal set; every read is then limited to chunks one of them (or
        `EVERYONE`) may see. None: unrestricted (ingest, the operator's CLI)."""
        if settings.is_lite:
            settings.ensure_dirs()
        self.settings = settings
        self.namespace = validate_namespace(namespace)
        self.client = milvus_client(settings)
        self.alias = f"{settings.collection}__{namespace}"
        self.target = generation or self.alias  # what reads and writes address
        self.principals = None if principals is None else sorted({EVERYONE, *principals})

    def windows_name(self, name: str | None = None) -> str:
        """The collection (or alias) of MiniLM's page windows beside a generation (or the alias): `<collection>_pw__…`.

        Windows live apart from the chunks because Milvus computes BM25's statistics from every row of a
        collection: window rows among the chunks would change every chunk's BM25 score. No namespace's alias or
        generation can take the name (theirs start `<collection>__`).
        """
        name = name or self.target
        prefix = f"{self.settings.collection}__"
        return f"{self.settings.collection}_pw__{name.removeprefix(prefix)}" if name.startswith(prefix) else f"{name}_pw"

    def has_windows(self) -> bool:
        """Whether the target has page windows beside it (a generation built before them has not: its dense leg
        searches the chunk vectors until the namespace is rebuilt or ingested again)."""
        self.ensure_loaded()
        return _WINDOWS[(self.settings.milvus_uri, self.target)]

    # -- lifecycle -------------------------------------------------------------------------------
    def exists(self) -> bool:
        return bool(self.client.has_collection(self.target))

    def ensure_collection(self) -> str:
        """Create generation v1 and point the alias at it if the namespace has no index yet."""
        if self.target == self.alias and not self.client.has_collection(self.alias):
            self.point_alias(self.create_generation())
        self.check_schema()  # writes carry principals
        if not self.client.has_collection(self.windows_name()):  # a generation built before page windows
            self._add_windows()
        self.ensure_loaded()
        return self.target

    def _add_windows(self) -> None:
        """Page windows beside a generation that lacks them; an ingest then fills them document by document."""
        generation = self.live_generation() if self.target == self.alias else self.target
        if generation is None:
            return
        self._create_windows_collection(self.windows_name(generation))
        if self.target == self.alias:
            self._point_windows_alias(generation)
        _LOADED.pop((self.settings.milvus_uri, self.target), None)

    def ensure_loaded(self, recheck: bool = False) -> None:
        """Load the collection for search (a fresh process finds it released); checked once per process, or
        again with `recheck` (a restarted Milvus releases what it had loaded)."""
        key = (self.settings.milvus_uri, self.target)
        if recheck:
            _LOADED.pop(key, None)
        if key in _LOADED:
            return
        if not self.client.has_collection(self.target):
            raise IndexMissing(f"namespace '{self.namespace}' has no index at {self.settings.milvus_uri}: "
                               f"run `pagelens ingest … --namespace {self.namespace}` first")
        if self.principals is not None:  # a reader's filter needs the field
            self.check_schema()
        kwargs = {} if self.settings.is_lite else {"replica_number": self.settings.replica_number}
        if not self.is_loaded():
            self.client.load_collection(self.target, **kwargs)
        windows = self.windows_name()
        _WINDOWS[key] = bool(self.client.has_collection(windows))
        if _WINDOWS[key] and "Loaded" not in str(self.client.get_load_state(windows).get("state", "")):
            self.client.load_collection(windows, **kwargs)
        _LOADED[key] = self.dense_index_type()

    def dense_index_type(self) -> str:
        """The index type of the target's dense fields (what search parameters it takes); "" if it has none or
        the server will not say (searches then take the index's defaults)."""
        from pymilvus.exceptions import MilvusException

        try:
            names = self.client.list_indexes(self.target, field_name="text_vec")
            return str(self.client.describe_index(self.target, names[0]).get("index_type", "")) if names else ""
        except MilvusException as exc:
            log.warning("Cannot read the index of %s (%s): dense searches use its default parameters", self.target, exc)
            return ""

    def schema_current(self, name: str | None = None) -> bool:
        """Whether the generation (default: the target) has this code's collection schema."""
        fields = {f["name"] for f in self.client.describe_collection(name or self.target)["fields"]}
        return {"principals", "open"} <= fields

    def check_schema(self) -> None:
        if not self.schema_current():
            raise IndexOutdated(
                f"the index of namespace '{self.namespace}' ({self.target}) predates document permissions (collection "
                f"schema {SCHEMA_VERSION}): rebuild it with the pagelens_reindex__{self.namespace} DAG (its next run "
                f"does; now: `airflow dags trigger pagelens_reindex__{self.namespace}`), which builds a new generation "
                "beside the old one and swaps it in; on the embedded default without that DAG, remove milvus.db and "
                "registry.db from PAGELENS_DATA_DIR (API tokens live there too) and ingest again")

    def load_state(self) -> str:
        """Milvus's word for it: Loaded, Loading, NotLoad."""
        return str(self.client.get_load_state(self.target).get("state", ""))

    def is_loaded(self) -> bool:
        return "Loaded" in self.load_state()

    def generations(self) -> list[str]:
        """This namespace's generations, oldest first."""
        pattern = re.compile(rf"^{re.escape(self.alias)}_v(\d+)$")
        found = [(int(m.group(1)), name) for name in self.client.list_collections() if (m := pattern.match(name))]
        return [name for _, name in sorted(found)]

    def live_generation(self) -> str | None:
        """The generation the alias points at (None before the first ingest)."""
        if not self.client.has_collection(self.alias):
            return None
        return str(self.client.describe_alias(self.alias)["collection_name"])

    def create_generation(self) -> str:
        """A new empty generation `<alias>_v<N+1>`, loaded and ready for writes; returns its name."""
        existing = self.generations()
        number = int(existing[-1].rsplit("_v", 1)[1]) + 1 if existing else 1
        name = f"{self.alias}_v{number}"
        self._create_collection(name)
        self._create_windows_collection(self.windows_name(name))
        return name

    def point_alias(self, generation: str) -> None:
        """Send searches to `generation` (atomic in Milvus: readers see the old or the new one)."""
        if self.live_generation() is None:
            self.client.create_alias(generation, self.alias)
        else:
            self.client.alter_alias(generation, self.alias)
        self._point_windows_alias(generation)
        _LOADED.pop((self.settings.milvus_uri, self.alias), None)

    def _point_windows_alias(self, generation: str) -> None:
        """The windows alias follows the chunks' alias (right after it: a reader in between pairs the new chunks
        with the old windows, both valid); a generation without windows leaves the alias unset."""
        alias, windows = self.windows_name(self.alias), self.windows_name(generation)
        if self.client.has_collection(alias):
            if self.client.has_collection(windows):
                self.client.alter_alias(windows, alias)
            else:
                self.client.drop_alias(alias)
        elif self.client.has_collection(windows):
            self.client.create_alias(windows, alias)

    def drop_generation(self, name: str) -> None:
        if name == self.live_generation():
            raise ValueError(f"{name} is live behind {self.alias}; point the alias elsewhere first")
        self.client.drop_collection(name)
        if self.client.has_collection(self.windows_name(name)):
            self.client.drop_collection(self.windows_name(name))
        _LOADED.pop((self.settings.milvus_uri, name), None)

    def _create_collection(self, name: str) -> None:
        from pymilvus import DataType, Function, FunctionType

        schema = self.client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.VARCHAR, max_length=64, is_primary=True)
        schema.add_field("namespace", DataType.VARCHAR, max_length=128, is_partition_key=True)
        schema.add_field("doc_id", DataType.VARCHAR, max_length=1024)
        schema.add_field("source_uri", DataType.VARCHAR, max_length=2048)
        schema.add_field("content_sha256", DataType.VARCHAR, max_length=64)
        schema.add_field("page", DataType.INT64)
        schema.add_field("chunk_no", DataType.INT64)
        schema.add_field("bbox", DataType.JSON)
        schema.add_field("kind", DataType.VARCHAR, max_length=16)
        schema.add_field("model_version", DataType.VARCHAR, max_length=256)
        schema.add_field("has_image", DataType.BOOL)
        schema.add_field("text", DataType.VARCHAR, max_length=MAX_TEXT)  # shown as the snippet
        schema.add_field("search_text", DataType.VARCHAR, max_length=MAX_TEXT, enable_analyzer=True,
                         analyzer_params=ANALYZER)  # the text with its document context, for BM25
        schema.add_field("text_vec", DataType.FLOAT_VECTOR, dim=TEXT_DIM)
        schema.add_field("image_vec", DataType.FLOAT_VECTOR, dim=IMAGE_DIM)
        schema.add_field("concat_vec", DataType.FLOAT_VECTOR, dim=CONCAT_DIM)  # the seed's baseline only
        schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
        schema.add_field("principals", DataType.ARRAY, element_type=DataType.VARCHAR, max_capacity=MAX_PRINCIPALS,
                         max_length=PRINCIPAL_CHARS)
        schema.add_field("open", DataType.BOOL)  # principals hold "*": lets Lite skip the array filter (see _where)
        schema.add_function(Function(name="bm25", function_type=FunctionType.BM25,
                                     input_field_names=["search_text"], output_field_names=["sparse"]))
        index = self.client.prepare_index_params()
        for field in ("text_vec", "image_vec", "concat_vec"):
            index.add_index(field, **self._vector_index())
        index.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
        self._create(name, schema, index)

    def _create_windows_collection(self, name: str) -> None:
        """MiniLM's page windows: a vector each, and the chunk a hit on it shows (its text, box and kind)."""
        from pymilvus import DataType

        schema = self.client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.VARCHAR, max_length=64, is_primary=True)
        schema.add_field("namespace", DataType.VARCHAR, max_length=128, is_partition_key=True)
        schema.add_field("chunk_id", DataType.VARCHAR, max_length=64)
        schema.add_field("doc_id", DataType.VARCHAR, max_length=1024)
        schema.add_field("page", DataType.INT64)
        schema.add_field("kind", DataType.VARCHAR, max_length=16)
        schema.add_field("bbox", DataType.JSON)
        schema.add_field("text", DataType.VARCHAR, max_length=MAX_TEXT)  # the chunk's, shown as the snippet
        schema.add_field("text_vec", DataType.FLOAT_VECTOR, dim=TEXT_DIM)
        schema.add_field("principals", DataType.ARRAY, element_type=DataType.VARCHAR, max_capacity=MAX_PRINCIPALS,
                         max_length=PRINCIPAL_CHARS)
        schema.add_field("open", DataType.BOOL)
        index = self.client.prepare_index_params()
        index.add_index("text_vec", **self._vector_index())
        self._create(name, schema, index)

    def _vector_index(self) -> dict[str, Any]:
        index_type, params = VECTOR_INDEXES[self.settings.vector_index]
        if index_type == "IVF_SQ8":
            params = {"nlist": self.settings.ivf_nlist}
        return {"index_type": index_type, "metric_type": "IP", "params": params}

    def _create(self, name: str, schema: Any, index: Any) -> None:
        self.client.create_collection(name, schema=schema, index_params=index, num_shards=self.settings.num_shards)
        if not self.settings.is_lite:
            self.client.load_collection(name, replica_number=self.settings.replica_number)

    # -- writes ----------------------------------------------------------------------------------
    def upsert_chunks(self, chunks: Sequence[Chunk], text_vecs: Sequence[list[float]],
                      image_vecs: Sequence[list[float] | None], vision_weight: float) -> int:
        rows: dict[str, dict[str, Any]] = {}  # keyed by id: Milvus accepts duplicate keys in one batch
        for chunk, tvec, ivec in zip(chunks, text_vecs, image_vecs, strict=True):
            rows[chunk.id] = {
                "id": chunk.id, "namespace": chunk.namespace, "doc_id": chunk.doc_id,
                "source_uri": chunk.source_uri, "content_sha256": chunk.content_sha256, "page": chunk.page,
                "chunk_no": chunk.chunk_no, "bbox": [round(v, 2) for v in chunk.bbox], "kind": chunk.kind,
                "model_version": chunk.model_version, "has_image": ivec is not None,
                "text": chunk.text[:MAX_TEXT // 4],  # VARCHAR limit is bytes; keep multi-byte text safe
                "search_text": chunk.search_text[:MAX_TEXT // 4],
                "text_vec": tvec, "image_vec": ivec or [0.0] * IMAGE_DIM,
                "concat_vec": concat_vector(ivec, tvec, vision_weight),
                "principals": _principals(chunk.principals, chunk.doc_id), "open": EVERYONE in chunk.principals,
            }
        if rows:
            foreign = {c.namespace for c in chunks} - {self.namespace}
            if foreign:
                raise ValueError(f"chunks of namespace {sorted(foreign)} written to the index of '{self.namespace}'")
            self.client.upsert(self.target, list(rows.values()))
        return len(rows)

    def upsert_windows(self, windows: Sequence[DenseWindow], vecs: Sequence[list[float]]) -> int:
        """Write page windows (none on a generation without them: see has_windows)."""
        if not self.has_windows():
            return 0
        rows = {w.id: {"id": w.id, "namespace": w.chunk.namespace, "chunk_id": w.chunk.id, "doc_id": w.chunk.doc_id,
                       "page": w.chunk.page, "kind": w.chunk.kind, "bbox": [round(v, 2) for v in w.chunk.bbox],
                       "text": w.chunk.text[:MAX_TEXT // 4], "text_vec": vec,
                       "principals": _principals(w.chunk.principals, w.chunk.doc_id),
                       "open": EVERYONE in w.chunk.principals}
                for w, vec in zip(windows, vecs, strict=True)}
        if {r["namespace"] for r in rows.values()} - {self.namespace}:
            raise ValueError(f"windows of another namespace written to the index of '{self.namespace}'")
        if rows:
            self.client.upsert(self.windows_name(), list(rows.values()))
        return len(rows)

    def window_ids_of(self, doc_id: str) -> list[str]:
        return [r["id"] for r in self._rows(self.windows_name(), doc_id, ["id"])] if self.has_windows() else []

    def delete_windows(self, ids: set[str]) -> None:
        self.client.delete(self.windows_name(), ids=sorted(ids))

    def set_principals(self, doc_id: str, principals: Sequence[str]) -> int:
        """Give every chunk (and page window) of the document a new principal set without embedding again (rows
        are read back whole and upserted; BM25's sparse vector is recomputed by Milvus from the same text)."""
        value = _principals(principals, doc_id)
        targets = [(self.target, WRITABLE_FIELDS)]
        if self.has_windows():
            targets.append((self.windows_name(), WINDOW_WRITABLE_FIELDS))
        written = []
        for collection, fields in targets:
            rows = self._rows(collection, doc_id, fields)
            for row in rows:
                row["principals"], row["open"] = value, EVERYONE in value
            if rows:
                self.client.upsert(collection, rows)
            written.append(len(rows))
        return written[0]

    def _rows(self, collection: str, doc_id: str, fields: list[str]) -> list[dict[str, Any]]:
        """Every row of the document in one of the target's collections (plain paging: Milvus Lite has no
        query_iterator timestamps)."""
        rows: list[dict[str, Any]] = []
        while True:
            page = self.client.query(collection, filter=self._where(doc_id), output_fields=fields, offset=len(rows),
                                     limit=PAGE_SIZE)
            rows += page
            if len(page) < PAGE_SIZE:
                return rows

    def delete_document(self, doc_id: str) -> None:
        self.client.delete(self.target, filter=self._where(doc_id))
        if self.has_windows():
            self.client.delete(self.windows_name(), filter=self._where(doc_id))

    def flush(self) -> None:
        """Seal growing segments so searches use the index, not brute force."""
        self.client.flush(self.target)
        if self.has_windows():
            self.client.flush(self.windows_name())

    def count(self, doc_id: str | None = None) -> int:
        rows = self.client.query(self.target, filter=self._where(doc_id), output_fields=["count(*)"])
        return int(rows[0]["count(*)"])

    def model_version(self) -> str | None:
        """The model version of one stored chunk (a generation is built with one), None while empty."""
        rows = self.client.query(self.target, filter=self._where(), output_fields=["model_version"], limit=1)
        return str(rows[0]["model_version"]) if rows else None

    def delete_ids(self, ids: set[str]) -> None:
        self.client.delete(self.target, ids=sorted(ids))

    def chunk_ids_of(self, doc_id: str | None = None) -> list[str]:
        return [r["id"] for r in self._rows(self.target, doc_id or "", ["id"])]

    def _where(self, doc_id: str | None = None, expr: str = "", readers: bool = True) -> str:
        """Every read and delete is scoped to the namespace, even inside its own collection."""
        parts = [f"namespace == {quote(self.namespace)}"]
        if doc_id:
            parts.append(f"doc_id == {quote(doc_id)}")
        if expr:
            parts.append(f"({expr})")
        if self.principals is not None and readers:
            parts.append(f"array_contains_any(principals, [{', '.join(quote(p) for p in self.principals)}])")
        return " and ".join(parts)

    def lite_engine(self) -> bool:
        """Milvus Lite (file or server): filters are evaluated row by row in Python (see `search`)."""
        return _lite_engine(self.settings, self.client)

    def restricted(self) -> bool:
        """Whether a search of this namespace met a chunk not open to all in the last minute (this process).

        Lite's fast path (`search`) tries the unfiltered search first and keeps it only if every hit is open, so
        it is never a leak to be optimistic; this only spares a namespace known to hold restricted chunks that
        wasted first round. It is learned from hits, never asked: on Lite a query for such chunks scans every
        row (2.5-4.7 s at 100k chunks, measured), which made each reader's request pay it.
        """
        learned = _RESTRICTED.get((self.settings.milvus_uri, self.target, self.namespace))
        return learned is not None and time.monotonic() - learned < RESTRICTED_TTL_S

    # -- reads -----------------------------------------------------------------------------------
    def search_windows(self, vector: list[float], limit: int, expr: str = "") -> list[Hit]:
        """The chunks of the best page windows for a MiniLM vector, each once at its best window's score."""
        hits: dict[str, Hit] = {}
        for hit in self.search("text_vec", vector, limit, expr, collection=self.windows_name()):
            hits.setdefault(hit.id, hit)
        return list(hits.values())

    def search(self, field: str, vector: Any, limit: int, expr: str = "", collection: str | None = None) -> list[Hit]:
        """The best chunks the store's reader may see (`collection`: the page windows', whose hits name chunks).

        Milvus Lite evaluates the reader's array filter row by row in Python (3.9 s against 0.3 s unfiltered for
        a 10k-chunk dense search, measured), so on Lite (a file or a Lite server shared by several processes, told
        apart by its version string) a namespace whose chunks are all open to everyone is
        searched without it, and the answer is used only if every hit is open (`open` comes back with each): a
        chunk restricted meanwhile sends the search round again, filtered. A Milvus server always filters.
        """
        self.ensure_loaded()
        collection = collection or self.target
        if self.principals is not None and self.lite_engine() and not self.restricted():
            rows = self._search(collection, field, vector, limit, self._where(expr=expr, readers=False))
            if all(row["entity"]["open"] for row in rows):
                return self._hits(field, rows)
            _RESTRICTED[(self.settings.milvus_uri, self.target, self.namespace)] = time.monotonic()
        return self._hits(field, self._search(collection, field, vector, limit, self._where(expr=expr)))

    def _search(self, collection: str, field: str, vector: Any, limit: int, where: str) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"metric_type": "BM25" if field == "sparse" else "IP"}
        index_type = _LOADED.get((self.settings.milvus_uri, self.target)) if field != "sparse" else None
        if index_type == "IVF_SQ8":  # the generation's own index decides, not settings
            params["params"] = {"nprobe": self.settings.ivf_nprobe}
        elif index_type in ("HNSW", "HNSW_SQ"):
            params["params"] = {"ef": max(limit, self.settings.hnsw_ef)}
        fields = WINDOW_OUTPUT_FIELDS if collection != self.target else OUTPUT_FIELDS
        return list(self.client.search(collection, data=[vector], anns_field=field, limit=limit, filter=where,
                                       output_fields=[*fields, "open"], search_params=params)[0])

    def _hits(self, field: str, rows: list[dict[str, Any]]) -> list[Hit]:
        hits = [_hit(r) for r in rows]
        if field == "sparse":  # Milvus Lite reports BM25 relevance negated (-12.3 best); Milvus, as is. Both: |d|
            hits = [replace(h, score=abs(h.score)) for h in hits]
        return hits


WINDOW_WRITABLE_FIELDS = ["id", "namespace", "chunk_id", "doc_id", "page", "kind", "bbox", "text", "text_vec",
                          "principals", "open"]
WRITABLE_FIELDS = ["id", "namespace", "doc_id", "source_uri", "content_sha256", "page", "chunk_no", "bbox", "kind",
                   "model_version", "has_image", "text", "search_text", "text_vec", "image_vec", "concat_vec", "principals",
                   "open"]


def _principals(principals: Sequence[str], doc_id: str) -> list[str]:
    kept = sorted({p for p in principals if p and len(p) <= PRINCIPAL_CHARS})
    if len(kept) > MAX_PRINCIPALS or len(kept) < len(set(principals)):
        log.warning("%s: %d principals kept of %d (at most %d of up to %d characters)", doc_id,
                    min(len(kept), MAX_PRINCIPALS), len(set(principals)), MAX_PRINCIPALS, PRINCIPAL_CHARS)
    return kept[:MAX_PRINCIPALS]


def concat_vector(image_vec: list[float] | None, text_vec: list[float], alpha: float) -> list[float]:
    """The seed's single vector: [alpha*CLIP, (1-alpha)*MiniLM], L2-normalised."""
    image = image_vec or [0.0] * IMAGE_DIM
    joined = [alpha * v for v in image] + [(1 - alpha) * v for v in text_vec]
    norm = sum(v * v for v in joined) ** 0.5 or 1.0
    return [v / norm for v in joined]


def _hit(result: dict[str, Any]) -> Hit:
    entity = result["entity"]
    return Hit(id=str(entity.get("chunk_id") or result["id"]), doc_id=entity["doc_id"], page=int(entity["page"]),
               kind=entity["kind"], text=entity["text"], bbox=list(entity["bbox"]), score=float(result["distance"]))
