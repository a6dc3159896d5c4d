"""Document-level permissions in the store (real Milvus Lite): an ARRAY field filtered with array_contains_any in
every read beside the namespace, permission changes without re-embedding, and indexes of the old schema refused."""

from __future__ import annotations

import random

import pytest

from pagelens import store as store_module
from pagelens.errors import IndexOutdated
from pagelens.records import Chunk
from pagelens.settings import TEXT_DIM
from pagelens.store import EVERYONE, VectorStore

pytestmark = pytest.mark.integration
DOCS = {  # doc id -> principals
    "public.pdf": [EVERYONE],
    "finance.pdf": ["group:finance"],
    "ceo.pdf": ["user:ceo"],
    "nobody.pdf": [],  # permissions could not be read: shown to no one but the operator
}


def _vector(seed: int) -> list[float]:
    rng = random.Random(seed)
    values = [rng.gauss(0, 1) for _ in range(TEXT_DIM)]
    norm = sum(v * v for v in values) ** 0.5
    return [v / norm for v in values]


def _page_chunk(chunk_id: str, namespace: str, doc: str, text: str, principals: list[str] | None = None) -> Chunk:
    """A one-page chunk; `principals` None: open to everyone."""
    return Chunk(id=chunk_id, namespace=namespace, doc_id=doc, source_uri="", content_sha256="0" * 64, page=1,
                 chunk_no=0, bbox=(0, 0, 1, 1), kind="text", text=text, model_version="m",
                 **({"principals": principals} if principals is not None else {}))


def _fill(settings) -> VectorStore:
    store = VectorStore(settings, "acl")
    store.ensure_collection()
    chunks = [Chunk(id=f"{doc}-{n}", namespace="acl", doc_id=doc, source_uri=f"file:///{doc}", content_sha256="0" * 64,
                    page=1, chunk_no=n, bbox=(0, 0, 10, 10), kind="text", text=f"budget figures of {doc} part {n}",
                    model_version="m", principals=principals)
              for doc, principals in DOCS.items() for n in range(3)]
    store.upsert_chunks(chunks, [_vector(i) for i in range(len(chunks))], [None] * len(chunks), 0.3)
    store.flush()
    return store


def _docs_seen(settings, principals) -> set[str]:
    reader = VectorStore(settings, "acl", principals=principals)
    dense = reader.search("text_vec", _vector(99), 50)
    sparse = reader.search("sparse", "budget figures", 50)
    return {h.doc_id for h in dense} | {h.doc_id for h in sparse}


def test_every_search_sees_only_what_the_readers_principals_allow(settings) -> None:
    _fill(settings)
    assert _docs_seen(settings, []) == {"public.pdf"}  # a namespace-wide token: unrestricted documents only
    assert _docs_seen(settings, ["group:finance"]) == {"public.pdf", "finance.pdf"}
    assert _docs_seen(settings, ["user:ceo", "group:finance"]) == {"public.pdf", "finance.pdf", "ceo.pdf"}
    assert _docs_seen(settings, ['user:ceo"] or true or [']) == {"public.pdf"}  # quoted, not injected
    assert _docs_seen(settings, None) == set(DOCS)  # the operator
    reader = VectorStore(settings, "acl", principals=["group:finance"])
    assert reader.count("ceo.pdf") == 0 and reader.count("finance.pdf") == 3


def test_permission_change_rewrites_rows_without_new_vectors(settings) -> None:
    store = _fill(settings)
    before = {r["id"]: r["text_vec"] for r in store.client.query(store.target, filter='doc_id == "finance.pdf"',
                                                                  output_fields=["text_vec"])}
    assert store.set_principals("finance.pdf", ["user:auditor"]) == 3
    assert "finance.pdf" not in _docs_seen(settings, ["group:finance"])  # revoked
    assert "finance.pdf" in _docs_seen(settings, ["user:auditor"])
    after = {r["id"]: r["text_vec"] for r in store.client.query(store.target, filter='doc_id == "finance.pdf"',
                                                                 output_fields=["text_vec"])}
    assert after.keys() == before.keys()
    assert all(max(abs(a - b) for a, b in zip(after[k], before[k], strict=True)) < 1e-6 for k in after)


def test_an_index_of_the_old_schema_is_refused_with_the_command_that_rebuilds_it(settings) -> None:
    from pymilvus import DataType

    store = VectorStore(settings, "old")
    schema = store.client.create_schema(auto_id=False)
    schema.add_field("id", DataType.VARCHAR, max_length=64, is_primary=True)
    schema.add_field("text_vec", DataType.FLOAT_VECTOR, dim=TEXT_DIM)
    index = store.client.prepare_index_params()
    index.add_index("text_vec", index_type="HNSW", metric_type="IP")
    store.client.create_collection("pagelens__old_v1", schema=schema, index_params=index)
    store.client.create_alias("pagelens__old_v1", store.alias)
    with pytest.raises(IndexOutdated, match="airflow dags trigger pagelens_reindex__old"):
        VectorStore(settings, "old", principals=["user:x"]).search("text_vec", _vector(1), 5)


def test_lite_skips_the_array_filter_only_while_every_hit_is_open(settings, monkeypatch) -> None:
    """The fast path of an all-open namespace: a chunk restricted after the reader's store looked is still
    never returned to the reader (the search goes round again, filtered)."""
    store = VectorStore(settings, "open")
    store.ensure_collection()
    open_chunk = _page_chunk("o1", "open", "open.pdf", "open budget figures")
    store.upsert_chunks([open_chunk], [_vector(1)], [None], 0.3)
    reader = VectorStore(settings, "open", principals=["user:x"])
    assert [h.doc_id for h in reader.search("text_vec", _vector(1), 5)] == ["open.pdf"] and not reader.restricted()
    secret = _page_chunk("s1", "open", "secret.pdf", "secret budget figures", ["user:ceo"])
    store.upsert_chunks([secret], [_vector(2)], [None], 0.3)  # after the reader found the namespace all open
    assert not VectorStore(settings, "open", principals=["user:x"]).restricted()  # nothing has met it yet...
    assert {h.doc_id for h in reader.search("text_vec", _vector(2), 5)} == {"open.pdf"}  # ...yet nothing leaks
    assert VectorStore(settings, "open", principals=["user:x"]).restricted()  # the hit not open taught the process
    assert {h.doc_id for h in reader.search("sparse", "secret budget figures", 5)} == {"open.pdf"}
    monkeypatch.setattr(store_module, "RESTRICTED_TTL_S", 0.0)  # after a minute it is optimistic again
    assert not reader.restricted()
    assert {h.doc_id for h in reader.search("sparse", "secret budget figures", 5)} == {"open.pdf"}


def test_a_shared_lite_server_gets_the_fast_path_too(milvus_server: str, tmp_path) -> None:
    """`pagelens store serve` (several API workers sharing one Lite server) is Lite's Python engine as well: an
    all-open namespace is searched without the array filter, which Lite would evaluate row by row; a namespace
    with a restricted document is always filtered."""
    from pagelens.settings import Settings

    settings = Settings(data_dir=tmp_path, milvus_uri=milvus_server, collection="fastpath")
    writer = VectorStore(settings, "served")
    writer.ensure_collection()
    chunk = _page_chunk("p1", "served", "open.pdf", "open budget figures")
    writer.upsert_chunks([chunk], [_vector(1)], [None], 0.3)
    reader = VectorStore(settings, "served", principals=["user:x"])
    assert reader.lite_engine()
    filters: list[str] = []
    real_search = reader.client.search
    reader.client.search = lambda *a, **kw: filters.append(kw["filter"]) or real_search(*a, **kw)  # type: ignore[method-assign]
    try:
        assert [h.doc_id for h in reader.search("text_vec", _vector(1), 5)] == ["open.pdf"]
        assert filters and not any("array_contains_any" in f for f in filters)
        secret = _page_chunk("s1", "served", "secret.pdf", "secret budget", ["user:ceo"])
        writer.upsert_chunks([secret], [_vector(2)], [None], 0.3)
        filters.clear()
        other = VectorStore(settings, "served", principals=["user:x"])
        assert [h.doc_id for h in other.search("text_vec", _vector(2), 5)] == ["open.pdf"]  # round again, filtered
        assert "array_contains_any" in filters[-1]
        filters.clear()
        assert [h.doc_id for h in other.search("sparse", "secret budget", 5)] == ["open.pdf"]
        assert filters and all("array_contains_any" in f for f in filters)  # known restricted: filtered at once
    finally:
        reader.client.search = real_search  # type: ignore[method-assign]
