"""Embedding drift: today's encoders on a fixed probe sample, compared with a stored baseline of the same texts.

The index holds vectors made by the encoders of the day it was built; queries are encoded by today's. If
the two stop agreeing (other weights behind the same name, a library upgrade that changes tokenisation or
pooling, fp16 kernels), retrieval degrades without any error. The check embeds the probe texts
(`drift_probes.txt`) and compares each vector with its baseline by cosine similarity: the same model gives
1.0 up to float noise, another model gives far less.

The baseline lives in Milvus (a small collection beside the namespaces' ones) because Milvus is the store
every task process reaches; task pods' data dirs are throwaway. It is taken on the first run and again on
an explicit re-baseline after a deliberate model upgrade (`pagelens drift --rebaseline`).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pagelens.embed import image_encoder, model_version, text_encoder
from pagelens.jobmetrics import push_drift_check
from pagelens.settings import IMAGE_DIM, TEXT_DIM, Settings
from pagelens.store import milvus_client

log = logging.getLogger(__name__)
PROBES = Path(__file__).with_name("drift_probes.txt")
# Finer near 1.0, where an unchanged model lands (float noise) and a slightly changed one starts to show.
BIN_EDGES = (0.0, 0.5, 0.7, 0.8, 0.85, 0.9, 0.95, 0.98, 0.99, 1.0)
FIELDS = {"text": ("text_vec", TEXT_DIM), "clip_text": ("clip_vec", IMAGE_DIM)}  # encoder -> vector field, dim
PROPERTY = "pagelens.drift."


class EmbeddingDrift(RuntimeError):
    """Today's encoders disagree with the baseline: the index and the queries no longer share a space."""

    def __init__(self, message: str, result: DriftResult) -> None:
        super().__init__(message)
        self.result = result


@dataclass
class EncoderDrift:
    """Cosine similarity of each probe's vector today to its baseline vector, for one encoder."""

    encoder: str  # text (MiniLM) or clip_text (CLIP's text tower, which encodes queries for image search)
    probes: int
    median: float
    minimum: float
    histogram: list[int]  # probe counts per bin of `bin_edges` (values below 0 count in the first bin)
    bin_edges: list[float] = field(default_factory=lambda: list(BIN_EDGES))


@dataclass
class DriftResult:
    baseline_created: bool
    baseline_model_version: str
    baseline_taken_at: str
    model_version: str
    threshold: float
    encoders: list[EncoderDrift] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)  # encoders on one side only (vision switched on or off)

    @property
    def drifted(self) -> list[EncoderDrift]:
        return [e for e in self.encoders if e.median < self.threshold]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "drifted": [e.encoder for e in self.drifted]}


def probe_texts() -> list[str]:
    lines = PROBES.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def baseline_collection(settings: Settings) -> str:
    # One underscore: namespace aliases are `<collection>__<namespace>`, so no namespace can take this name.
    return f"{settings.collection}_drift_baseline"


def embed_probes(texts: list[str], settings: Settings) -> dict[str, list[list[float]]]:
    """The probe vectors of every encoder that is configured today."""
    vectors = {"text": text_encoder(settings).encode(texts)}
    clip = image_encoder(settings)
    if clip is not None:
        vectors["clip_text"] = clip.encode_texts(texts)
    return vectors


def check_drift(settings: Settings, rebaseline: bool = False) -> DriftResult:
    """Compare today's probe vectors with the baseline (taken now if there is none); raise EmbeddingDrift."""
    if settings.is_lite:
        settings.ensure_dirs()
    client, name = milvus_client(settings), baseline_collection(settings)
    if rebaseline and client.has_collection(name):
        client.drop_collection(name)
    if not client.has_collection(name):
        return _take_baseline(settings)
    texts, baseline, meta = _load_baseline(settings)
    current = embed_probes(texts, settings)
    result = DriftResult(False, meta.get("model_version", ""), meta.get("taken_at", ""), model_version(settings),
                         settings.drift_min_median)
    for encoder in sorted(set(baseline) | set(current)):
        if encoder in baseline and encoder in current:
            result.encoders.append(compare(encoder, baseline[encoder], current[encoder]))
        else:
            result.unchecked.append(encoder)
            log.warning("Encoder %s is %s the drift baseline: re-baseline to check it", encoder,
                        "missing today but in" if encoder in baseline else "not in")
    push_drift_check(settings, result)  # PAGELENS_METRICS_PUSHGATEWAY, if set: the drift alerts read it
    if result.drifted:
        raise EmbeddingDrift(drift_message(result), result)
    return result


def compare(encoder: str, baseline: list[list[float]], current: list[list[float]]) -> EncoderDrift:
    import numpy as np

    old, new = np.asarray(baseline, dtype=np.float64), np.asarray(current, dtype=np.float64)
    norms = np.linalg.norm(old, axis=1) * np.linalg.norm(new, axis=1)
    similarity = (old * new).sum(axis=1) / np.where(norms == 0, 1.0, norms)
    counts, _ = np.histogram(np.clip(similarity, 0.0, 1.0), bins=BIN_EDGES)
    return EncoderDrift(encoder, len(similarity), round(float(np.median(similarity)), 4),
                        round(float(similarity.min()), 4), [int(c) for c in counts])


def drift_message(result: DriftResult) -> str:
    worst = ", ".join(f"{e.encoder} encoder median cosine {e.median:.3f} (min {e.minimum:.3f}, {e.probes} probes)"
                      for e in result.drifted)
    changed = ("" if result.model_version == result.baseline_model_version else
               f" The model version changed from {result.baseline_model_version} to {result.model_version}.")
    return (f"embedding drift: {worst} against the baseline taken {result.baseline_taken_at} is below "
            f"{result.threshold}: queries are no longer encoded like the indexed vectors.{changed} If the change "
            "is deliberate, rebuild every namespace (trigger pagelens_reindex__<namespace> with {\"force\": true}) "
            "and re-baseline (trigger pagelens_drift with {\"rebaseline\": true}, or `pagelens drift --rebaseline`); "
            "otherwise restore the previous model files.")


def _take_baseline(settings: Settings) -> DriftResult:
    from pymilvus import DataType

    texts = probe_texts()
    vectors = embed_probes(texts, settings)
    client, name = milvus_client(settings), baseline_collection(settings)
    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("text", DataType.VARCHAR, max_length=4096)
    index = client.prepare_index_params()
    for vector_field, dim in FIELDS.values():
        schema.add_field(vector_field, DataType.FLOAT_VECTOR, dim=dim)
        index.add_index(vector_field, index_type="AUTOINDEX", metric_type="IP")
    client.create_collection(name, schema=schema, index_params=index)
    rows = [{"id": i, "text": text, **{FIELDS[e][0]: vectors[e][i] if e in vectors else [0.0] * FIELDS[e][1]
                                        for e in FIELDS}} for i, text in enumerate(texts)]
    client.insert(name, rows)
    client.flush(name)
    taken_at, version = dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), model_version(settings)
    client.alter_collection_properties(name, properties={
        PROPERTY + "model_version": version, PROPERTY + "taken_at": taken_at,
        PROPERTY + "encoders": ",".join(sorted(vectors))})
    log.info("Drift baseline taken on %d probes with %s (%s)", len(texts), version, ", ".join(sorted(vectors)))
    return DriftResult(True, version, taken_at, version, settings.drift_min_median)


def _load_baseline(settings: Settings) -> tuple[list[str], dict[str, list[list[float]]], dict[str, str]]:
    """The baseline's texts (in probe order), its vectors per encoder, and when and with what it was taken."""
    client, name = milvus_client(settings), baseline_collection(settings)
    properties = client.describe_collection(name).get("properties") or {}
    meta = {k.removeprefix(PROPERTY): str(v) for k, v in properties.items() if k.startswith(PROPERTY)}
    encoders = [e for e in meta.get("encoders", "text").split(",") if e in FIELDS]
    client.load_collection(name)
    rows = sorted(client.query(name, filter="id >= 0", output_fields=["id", "text", *(FIELDS[e][0] for e in encoders)],
                               limit=16_384), key=lambda r: r["id"])
    vectors = {e: [[float(v) for v in r[FIELDS[e][0]]] for r in rows] for e in encoders}
    return [r["text"] for r in rows], vectors, meta
