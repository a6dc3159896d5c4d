"""Quantised dense indexes (PAGELENS_VECTOR_INDEX): each builds, loads after a flush and finds what HNSW finds."""

from __future__ import annotations

import pytest

from pagelens.chunk import chunk_id
from pagelens.embed import text_encoder
from pagelens.records import Chunk
from pagelens.settings import Settings
from pagelens.store import VECTOR_INDEXES, VectorStore

pytestmark = pytest.mark.integration  # Milvus Lite and the real MiniLM
TEXTS = ["The robot arm is calibrated every 90 days by the maintenance team.",
         "Revenue in Europe grew to 21.4 million euros in 2025.",
         "The warehouse inspection found a damaged fire door on level 2.",
         "Gripper pads are replaced after 50,000 cycles.",
         "The new assembly facility in Eindhoven employs 74 people."]
QUESTIONS = {"How often is the robot arm calibrated?": 0, "What did the inspection find?": 2,
             "When are gripper pads replaced?": 3, "How many people work at the Eindhoven plant?": 4}


@pytest.mark.parametrize("kind", sorted(VECTOR_INDEXES))
def test_each_vector_index_loads_after_a_flush_and_ranks_like_float32(kind: str, tmp_path, monkeypatch) -> None:
    settings = Settings(data_dir=tmp_path / kind, vector_index=kind, ivf_nlist=4, ivf_nprobe=3)
    store = VectorStore(settings, "ns")
    created: dict = {}
    real_create = store.client.create_collection
    monkeypatch.setattr(store.client, "create_collection",
                        lambda name, **kw: created.update(kw) or real_create(name, **kw))
    store.ensure_collection()
    dense = [p.to_dict() for p in created["index_params"] if p.field_name == "text_vec"]
    assert dense[0]["index_type"] == VECTOR_INDEXES[kind][0]
    assert dense[0].get("nlist") == (4 if kind == "IVF_SQ8" else None)  # settings.ivf_nlist
    chunks = [Chunk(id=chunk_id("ns", "d.pdf", n + 1, 0, "v1"), namespace="ns", doc_id="d.pdf", source_uri="file:///d",
                    content_sha256="0" * 64, page=n + 1, chunk_no=0, bbox=(1.0, 2.0, 3.0, 4.0), kind="text", text=t,
                    model_version="v1") for n, t in enumerate(TEXTS)]
    encoder = text_encoder(settings)
    store.upsert_chunks(chunks, encoder.encode(TEXTS), [None] * len(chunks), 0.3)
    store.flush()  # unsupported index types fail only when a flushed collection loads
    store.client.release_collection(store.target)
    store.ensure_loaded(recheck=True)
    (described,) = [store.client.describe_index(store.target, name) for name in store.client.list_indexes(
        store.target, field_name="text_vec")]
    assert described["index_type"] == VECTOR_INDEXES[kind][0] == store.dense_index_type()
    sent: list[dict] = []
    real_search = store.client.search
    monkeypatch.setattr(store.client, "search", lambda *a, **kw: sent.append(kw["search_params"]) or real_search(*a, **kw))
    for question, expected in QUESTIONS.items():
        hits = store.search("text_vec", encoder.encode([question])[0], 3)
        assert hits[0].page == expected + 1, (kind, question, [h.page for h in hits])
    # nprobe goes with IVF searches, ef with HNSW ones: the searched generation's own index decides, not the setting
    expected_params = {"nprobe": 3} if kind == "IVF_SQ8" else {"ef": settings.hnsw_ef}
    assert all(p.get("params") == expected_params for p in sent), sent
    store.search("sparse", "robot arm", 3)
    assert "params" not in sent[-1]
