"""Encoders: MiniLM from the offline package, CLIP through transformers on a tiny random-init model."""

from __future__ import annotations

import math

import pytest
from PIL import Image

from pagelens.embed import ImageEncoder, image_encoder, model_version, text_encoder
from pagelens.settings import IMAGE_DIM, TEXT_DIM, Settings
from tests.clip_fixture import write_tiny_clip

pytestmark = pytest.mark.integration


def _cos(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_minilm_vectors_are_normalised_and_semantic() -> None:
    enc = text_encoder(Settings())
    cat, feline, revenue = enc.encode(["The cat sits on the mat", "A feline rests on a rug", "Revenue grew in Europe"])
    assert len(cat) == TEXT_DIM
    assert math.isclose(_cos(cat, cat), 1.0, rel_tol=1e-4)
    assert _cos(cat, feline) > _cos(cat, revenue) + 0.3


def test_minilm_keeps_input_order_across_length_sorted_batches() -> None:
    enc = text_encoder(Settings(encode_batch_size=2))
    texts = ["short", "a much longer sentence about quarterly revenue in Europe", "mid length text"]
    batched = enc.encode(texts)
    for text, vec in zip(texts, batched, strict=True):
        assert _cos(vec, enc.encode([text])[0]) > 0.999


def test_a_long_chunk_is_embedded_whole_not_truncated() -> None:
    """The fact at the end of a 500-token chunk still pulls its vector towards the question about it."""
    enc = text_encoder(Settings())
    filler = "Quarterly revenue in the European region grew steadily across every product line. " * 40
    fact = "The robot arm is calibrated every 450 operating hours by the maintenance team."
    question, with_fact, without = enc.encode(["How often is the robot arm calibrated?", filler + fact, filler])
    windows, _owners, sizes = enc._windows([filler + fact])
    assert len(windows) >= 2 and max(len(w) for w in windows) <= 256 and sum(sizes) > 256
    assert _cos(question, with_fact) > _cos(question, without) + 0.05  # truncation at 256 tokens sees no difference
    assert enc.encode([]) == []  # a document without text chunks
    short = "The cat sits on the mat"
    assert math.isclose(_cos(enc.encode([short])[0], enc.encode([short, filler])[0]), 1.0, rel_tol=1e-5)


def test_clip_path_on_tiny_random_model(tmp_path) -> None:
    clip_dir = write_tiny_clip(tmp_path / "clip")
    encoder = ImageEncoder(str(clip_dir))
    red, blue = Image.new("RGB", (64, 48), "red"), Image.new("RGB", (40, 40), "blue")
    images = encoder.encode_images([red, blue, red])
    assert len(images) == 3 and len(images[0]) == IMAGE_DIM
    assert math.isclose(_cos(images[0], images[2]), 1.0, rel_tol=1e-4)  # deterministic
    assert _cos(images[0], images[1]) < 0.9999
    (query,) = encoder.encode_texts(["a chart of revenue"])
    assert len(query) == IMAGE_DIM and math.isclose(_cos(query, query), 1.0, rel_tol=1e-4)


def test_vision_branch_off_without_weights_and_version_says_so(tmp_path, caplog) -> None:
    assert image_encoder(Settings(clip_model="")) is None
    assert "+clip:off+" in model_version(Settings(clip_model=""))
    missing = Settings(clip_model=str(tmp_path / "no-such-model"))
    assert image_encoder(missing) is None
    assert "Vision branch off" in caplog.text


def test_onnx_backend_matches_torch_fp32_and_is_exported_once(tmp_path) -> None:
    """The CPU default (ONNX Runtime) gives torch's vectors: cosine >= 0.99 is the acceptance bar, 0.9999 is seen."""
    from pagelens.embed import TextEncoder

    texts = ["The robot arm is calibrated every 450 operating hours.", "Europe | 19.0 | 21.4",
             "Revenue grew in every region while costs stayed flat. " * 60, "x"]  # one text spans several windows
    onnx = text_encoder(Settings(data_dir=tmp_path, cpu_text_backend="onnx", encode_batch_size=3))
    torch_only = text_encoder(Settings(data_dir=tmp_path, cpu_text_backend="torch", encode_batch_size=3))
    assert onnx._onnx is not None and torch_only._onnx is None
    for a, b in zip(onnx.encode(texts), torch_only.encode(texts), strict=True):
        assert _cos(a, b) > 0.9999
    (exported,) = (tmp_path / "models").glob("minilm-*.onnx")
    stamp = exported.stat().st_mtime_ns
    TextEncoder(onnx_dir=str(tmp_path / "models"), model_dir=str(Settings().text_model_dir()))  # a second process
    assert exported.stat().st_mtime_ns == stamp  # reused, not exported again
