"""Milvus Lite through the real pymilvus API: upserts, namespaces, deletes, each search field."""

from __future__ import annotations

import hashlib

import pytest

from pagelens.chunk import chunk_id
from pagelens.records import Chunk
from pagelens.settings import IMAGE_DIM, TEXT_DIM
from pagelens.store import VectorStore, concat_vector

pytestmark = pytest.mark.integration


def _vec(text: str, dim: int) -> list[float]:
    """Deterministic hash vector: fast and repeatable for storage tests (real MiniLM is tested elsewhere)."""
    raw = [b / 255 - 0.5 for b in hashlib.sha512(text.encode()).digest() * (dim // 64 + 1)][:dim]
    norm = sum(v * v for v in raw) ** 0.5
    return [v / norm for v in raw]


def _chunk(ns: str, doc: str, page: int, no: int, text: str) -> Chunk:
    return Chunk(id=chunk_id(ns, doc, page, no, "v1"), namespace=ns, doc_id=doc, source_uri=f"file:///{doc}",
                 content_sha256="0" * 64, page=page, chunk_no=no, bbox=(1.0, 2.0, 3.0, 4.0), kind="text",
                 text=text, model_version="v1")


def _write(store: VectorStore, chunks: list[Chunk], with_images: bool = False) -> int:
    images = [_vec("img" + c.text, IMAGE_DIM) if with_images else None for c in chunks]
    return store.upsert_chunks(chunks, [_vec(c.text, TEXT_DIM) for c in chunks], images, 0.3)


@pytest.fixture
def store(settings) -> VectorStore:
    s = VectorStore(settings, "a")
    s.ensure_collection()
    return s


def test_upsert_is_idempotent_and_dedupes_a_batch(store) -> None:
    chunks = [_chunk("a", "r.pdf", 1, 0, "revenue grew in Europe"), _chunk("a", "r.pdf", 2, 0, "headcount rose")]
    assert _write(store, chunks + chunks[:1]) == 2  # the duplicate key inside one batch is dropped
    _write(store, chunks)
    assert store.count() == 2
    assert sorted(store.chunk_ids_of()) == sorted(c.id for c in chunks)


def test_namespaces_never_leak_and_delete_hits_one_document(store, settings) -> None:
    other = VectorStore(settings, "b")
    other.ensure_collection()
    _write(store, [_chunk("a", "r.pdf", 1, 0, "shared words in finance"), _chunk("a", "s.pdf", 1, 0, "other doc")])
    _write(other, [_chunk("b", "r.pdf", 1, 0, "shared words in finance")])
    hits = other.search("sparse", "finance words", 10)
    assert hits and {h.doc_id for h in hits} == {"r.pdf"} and other.count() == 1
    store.delete_document("r.pdf")
    assert store.count() == 1 and other.count() == 1 and store.count("s.pdf") == 1
    with pytest.raises(ValueError, match="namespace"):
        _write(other, [_chunk("a", "x.pdf", 1, 0, "wrong index")])


def test_generations_swap_behind_the_alias_and_roll_back(store, settings) -> None:
    _write(store, [_chunk("a", "old.pdf", 1, 0, "the old generation")])
    v1 = store.live_generation()
    v2 = store.create_generation()
    assert (v1, v2) == ("pagelens__a_v1", "pagelens__a_v2") and store.generations() == [v1, v2]
    rebuilt = VectorStore(settings, "a", generation=v2)
    rebuilt.ensure_collection()
    _write(rebuilt, [_chunk("a", "new.pdf", 1, 0, "the new generation")])
    rebuilt.flush()
    assert store.search("sparse", "generation", 5)[0].doc_id == "old.pdf"  # readers still see v1
    store.point_alias(v2)
    assert store.live_generation() == v2 and store.search("sparse", "generation", 5)[0].doc_id == "new.pdf"
    with pytest.raises(ValueError, match="live"):
        store.drop_generation(v2)
    store.point_alias(v1)  # rollback
    assert store.search("sparse", "generation", 5)[0].doc_id == "old.pdf"
    store.drop_generation(v2)
    assert store.generations() == [v1]


@pytest.mark.parametrize("bad", ["", "1abc", "a-b", "a b", "x" * 65, "ns;drop"])
def test_namespace_names_are_validated(settings, bad) -> None:
    from pagelens.store import InvalidNamespace

    with pytest.raises(InvalidNamespace):
        VectorStore(settings, bad)


def test_bm25_ranks_the_matching_chunk_first_with_stemming(store) -> None:
    texts = ["the plant in Eindhoven opened in March", "units shipped per quarter grew steadily",
             "the board approved the dividend", "calibration interval of the robot arm"]
    _write(store, [_chunk("a", "d.pdf", i + 1, 0, t) for i, t in enumerate(texts)])
    store.flush()
    assert store.search("sparse", "how many units were shipping", 3)[0].page == 2
    assert store.search("text_vec", _vec(texts[3], TEXT_DIM), 1)[0].page == 4


def test_image_search_sees_only_chunks_with_images(store) -> None:
    with_image = [_chunk("a", "d.pdf", i + 1, 0, f"figure page {i}") for i in range(3)]
    _write(store, with_image, with_images=True)
    _write(store, [_chunk("a", "d.pdf", 9, 0, "text only page")])
    hits = store.search("image_vec", _vec("img" + with_image[1].text, IMAGE_DIM), 10, "has_image == true")
    assert hits[0].page == 2 and 9 not in {h.page for h in hits} and hits[0].bbox == [1.0, 2.0, 3.0, 4.0]


def test_concat_vector_is_the_seed_baseline() -> None:
    text = _vec("t", TEXT_DIM)
    joined = concat_vector(None, text, 0.3)
    assert len(joined) == IMAGE_DIM + TEXT_DIM
    assert all(v == 0 for v in joined[:IMAGE_DIM])
    assert abs(sum(v * v for v in joined) - 1) < 1e-6


def test_document_names_with_quotes_and_accents_round_trip(store) -> None:
    name = 'Übersicht "Q3" \\ 2026.pdf'
    _write(store, [_chunk("a", name, 1, 0, "quarterly overview")])
    assert store.count(name) == 1 and store.chunk_ids_of(name)
    store.delete_document(name)
    assert store.count(name) == 0


def _windows(chunks: list[Chunk], texts: list[str]):
    from pagelens.records import DenseWindow

    return [DenseWindow(id=hashlib.sha256(f"{c.id}{t}".encode()).hexdigest()[:32], chunk=c, text=t)
            for c, t in zip(chunks, texts, strict=True)]


def test_page_windows_find_their_chunk_and_follow_the_document(store, settings) -> None:
    chunks = [_chunk("a", "w.pdf", 1, 0, "chunk one"), _chunk("a", "w.pdf", 2, 0, "chunk two")]
    _write(store, chunks)
    windows = _windows([chunks[0], chunks[0], chunks[1]], ["about pumps", "about valves", "about boilers"])
    assert store.upsert_windows(windows, [_vec(w.text, TEXT_DIM) for w in windows]) == 3
    assert sorted(store.window_ids_of("w.pdf")) == sorted(w.id for w in windows)
    hits = store.search_windows(_vec("about valves", TEXT_DIM), 10)
    # a chunk comes once, at its best window, as the chunk (its id, text and box)
    assert [h.id for h in hits] == [chunks[0].id, chunks[1].id] and hits[0].score > 0.99
    assert hits[0].text == "chunk one" and hits[0].bbox == [1.0, 2.0, 3.0, 4.0]
    assert store.search_windows(_vec("about valves", TEXT_DIM), 10, "page >= 2")[0].id == chunks[1].id
    store.delete_windows({w.id for w in windows[:2]})
    assert [h.id for h in store.search_windows(_vec("about valves", TEXT_DIM), 10)] == [chunks[1].id]
    assert store.count() == 2
    store.set_principals("w.pdf", ["alice"])
    reader = VectorStore(settings, "a", principals=["bob"])
    assert reader.search_windows(_vec("about boilers", TEXT_DIM), 10) == []
    assert VectorStore(settings, "a", principals=["alice"]).search_windows(_vec("about boilers", TEXT_DIM), 10)
    store.delete_document("w.pdf")
    assert store.search_windows(_vec("about boilers", TEXT_DIM), 10) == [] and store.count() == 0


def test_windows_swap_with_their_generation_and_are_added_to_one_built_without(store, settings) -> None:
    chunk = _chunk("a", "old.pdf", 1, 0, "old")
    _write(store, [chunk])
    store.upsert_windows(_windows([chunk], ["old windows"]), [_vec("q", TEXT_DIM)])
    v1, v2 = store.live_generation(), store.create_generation()
    rebuilt = VectorStore(settings, "a", generation=v2)
    rebuilt.ensure_collection()
    new = _chunk("a", "new.pdf", 1, 0, "new")
    _write(rebuilt, [new])
    rebuilt.upsert_windows(_windows([new], ["new windows"]), [_vec("q", TEXT_DIM)])
    assert [h.doc_id for h in store.search_windows(_vec("q", TEXT_DIM), 5)] == ["old.pdf"]
    store.point_alias(v2)
    assert [h.doc_id for h in store.search_windows(_vec("q", TEXT_DIM), 5)] == ["new.pdf"]
    store.point_alias(v1)
    assert [h.doc_id for h in store.search_windows(_vec("q", TEXT_DIM), 5)] == ["old.pdf"]
    store.drop_generation(v2)
    assert not store.client.has_collection(store.windows_name(v2))
    # a generation from before page windows: none to search, until an ingest adds them
    store.client.drop_alias(store.windows_name())
    store.client.drop_collection(store.windows_name(v1))
    fresh = VectorStore(settings, "a")
    from pagelens import store as store_module

    store_module._LOADED.clear()
    assert not fresh.has_windows()
    fresh.ensure_collection()
    assert fresh.has_windows() and fresh.search_windows(_vec("q", TEXT_DIM), 5) == []
