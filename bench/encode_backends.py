"""MiniLM CPU backends on real chunks: chunks/s and cosine to torch fp32 (the acceptance bar is 0.99).

Usage: python bench/encode_backends.py MILVUS_LITE_FILE [N]   (an indexed eval corpus, e.g. a `pagelens eval`
data dir's milvus.db; N sampled chunks, default 300). Backends: torch fp32, torch dynamic int8, ONNX Runtime
fp32 (the graph pagelens exports), ONNX Runtime dynamic int8 of that graph, and the same with per-channel uint8
weights (on CPUs without VNNI, int8 x int8 products can saturate; uint8 weights per channel avoid that). Prints
one JSON line.
"""

from __future__ import annotations

import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "plugins"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _chunks(milvus_file: str, n: int) -> list[str]:
    from pymilvus import MilvusClient

    from pagelens.parsing.textquality import clean_for_embedding

    client = MilvusClient(milvus_file)
    collection = client.list_collections()[0]
    client.load_collection(collection)
    rows = client.query(collection, filter="chunk_no >= 0", output_fields=["text"], limit=16000)
    random.seed(0)
    return random.sample([clean_for_embedding(r["text"]) for r in rows], min(n, len(rows)))


def _timed(encoder: object, texts: list[str]) -> tuple[float, list[list[float]]]:
    encoder.encode(texts[:16])  # type: ignore[attr-defined]
    start = time.perf_counter()
    vectors = encoder.encode(texts)  # type: ignore[attr-defined]
    return len(texts) / (time.perf_counter() - start), vectors


def _cosines(a: list[list[float]], b: list[list[float]]) -> dict[str, float]:
    cos = [sum(x * y for x, y in zip(u, v, strict=True)) for u, v in zip(a, b, strict=True)]
    return {"cos_min": round(min(cos), 4), "cos_mean": round(sum(cos) / len(cos), 4)}


def main() -> None:
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from pagelens.embed import TextEncoder
    from pagelens.onnxencoder import onnx_session
    from pagelens.settings import Settings

    texts = _chunks(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 300)
    model_dir = str(Settings().text_model_dir())
    results = {}
    with tempfile.TemporaryDirectory() as cache:
        encoder = TextEncoder(model_dir)
        speed, base = _timed(encoder, texts)
        results["torch_fp32"] = {"chunks_per_s": round(speed, 1), "cos_min": 1.0, "cos_mean": 1.0}
        fp32_model = encoder.model
        encoder.model = torch.ao.quantization.quantize_dynamic(fp32_model, {torch.nn.Linear}, dtype=torch.qint8)
        speed, vectors = _timed(encoder, texts)
        results["torch_int8"] = {"chunks_per_s": round(speed, 1), **_cosines(base, vectors)}
        encoder.model = fp32_model
        encoder._onnx = onnx_session(fp32_model, model_dir, cache)
        speed, vectors = _timed(encoder, texts)
        results["onnx_fp32"] = {"chunks_per_s": round(speed, 1), **_cosines(base, vectors)}
        (exported,) = Path(cache).glob("minilm-*.onnx")
        quantized = Path(cache) / "int8" / exported.name
        quantized.parent.mkdir()
        for name, options in (("onnx_int8", {"weight_type": QuantType.QInt8}),
                              ("onnx_uint8_pc", {"weight_type": QuantType.QUInt8, "per_channel": True})):
            quantized.parent.joinpath(name).mkdir()
            target = quantized.parent / name / exported.name
            quantize_dynamic(str(exported), str(target), **options)
            encoder._onnx = onnx_session(fp32_model, model_dir, str(target.parent))
            speed, vectors = _timed(encoder, texts)
            results[name] = {"chunks_per_s": round(speed, 1), **_cosines(base, vectors)}
    for name, r in results.items():
        print(f"{name:13} {r['chunks_per_s']:6} chunks/s  cosine to fp32 min {r['cos_min']} mean {r['cos_mean']}")
    print(json.dumps({"chunks": len(texts), **results}))


if __name__ == "__main__":
    main()
