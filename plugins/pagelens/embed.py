"""Encoders: MiniLM for text (384-d), CLIP ViT-B/32 for page/figure images and query text (512-d).

Models load once per process (cached by path) and run batched; fp16 on a GPU, fp32 on the CPU.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from typing import Any

from pagelens.settings import IMAGE_DIM, TEXT_DIM, Settings

log = logging.getLogger(__name__)
TEXT_MODEL_NAME = "all-MiniLM-L6-v2"
MAX_TOKENS = 256  # MiniLM's training length; longer chunks are truncated


class TextEncoder:
    """Sentence embeddings: mean-pooled, L2-normalised MiniLM token states (as sentence-transformers)."""

    def __init__(self, model_dir: str, device: str = "cpu", batch_size: int = 32) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        self.device, self.batch_size = device, batch_size
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        self.model = AutoModel.from_pretrained(model_dir, local_files_only=True).to(device).eval()
        if device.startswith("cuda"):
            self.model = self.model.half()
        self._torch = torch

    def encode(self, texts: Sequence[str]) -> list[list[float]]:
        torch = self._torch
        out: list[list[float]] = []
        # Sort by length so each batch pads little; restore the order at the end.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            batch = self.tokenizer([texts[i] or " " for i in idx], padding=True, truncation=True,
                                   max_length=MAX_TOKENS, return_tensors="pt").to(self.device)
            with torch.inference_mode():
                states = self.model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(states.dtype)
                pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                vectors = torch.nn.functional.normalize(pooled.float(), dim=-1)
            out += vectors.cpu().tolist()
        result: list[list[float]] = [[]] * len(texts)
        for pos, i in enumerate(order):
            result[i] = out[pos]
        return result


class ImageEncoder:
    """CLIP image tower for pages and figure crops; its text tower embeds queries into the same space."""

    def __init__(self, model_id: str, device: str = "cpu", batch_size: int = 16) -> None:
        import torch
        from transformers import CLIPModel, CLIPProcessor
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        self.device, self.batch_size, self._torch = device, batch_size, torch
        self.processor = CLIPProcessor.from_pretrained(model_id)
        dtype = torch.float16 if device.startswith("cuda") else torch.float32
        self.model = CLIPModel.from_pretrained(model_id, dtype=dtype).to(device).eval()
        dim = self.model.config.projection_dim
        if dim != IMAGE_DIM:
            raise ValueError(f"CLIP model {model_id} projects to {dim} dims; the index expects {IMAGE_DIM} (ViT-B/32)")

    def encode_images(self, images: Sequence[Any]) -> list[list[float]]:
        out: list[list[float]] = []
        for start in range(0, len(images), self.batch_size):
            batch = self.processor(images=list(images[start:start + self.batch_size]), return_tensors="pt")
            pixels = batch["pixel_values"].to(self.device, self.model.dtype)
            with self._torch.inference_mode():
                out += self._normalise(self.model.get_image_features(pixel_values=pixels))
        return out

    def encode_texts(self, texts: Sequence[str]) -> list[list[float]]:
        batch = self.processor(text=list(texts), padding=True, truncation=True, return_tensors="pt").to(self.device)
        with self._torch.inference_mode():
            return self._normalise(self.model.get_text_features(**batch))

    def _normalise(self, features: Any) -> list[list[float]]:
        tensor = getattr(features, "pooler_output", features)  # transformers 5 returns an output object
        return self._torch.nn.functional.normalize(tensor.float(), dim=-1).cpu().tolist()


@functools.lru_cache(maxsize=4)
def _text_encoder(model_dir: str, device: str, batch_size: int) -> TextEncoder:
    return TextEncoder(model_dir, device, batch_size)


@functools.lru_cache(maxsize=4)
def _image_encoder(model_id: str, device: str) -> ImageEncoder | None:
    try:
        return ImageEncoder(model_id, device)
    except (OSError, ValueError) as exc:
        log.warning("Vision branch off: CLIP model %r could not be loaded (%s)", model_id, exc)
        return None


def text_encoder(settings: Settings) -> TextEncoder:
    return _text_encoder(str(settings.text_model_dir()), settings.device, settings.encode_batch_size)


def image_encoder(settings: Settings) -> ImageEncoder | None:
    """The CLIP encoder, or None (vision off) when no weights are configured or loadable."""
    if not settings.clip_model:
        _log_vision_off_once()
        return None
    return _image_encoder(settings.clip_model, settings.device)


@functools.lru_cache(maxsize=1)
def _log_vision_off_once() -> None:
    log.info("Vision branch off: no CLIP weights configured (set PAGELENS_CLIP_MODEL to a directory or HF id)")


def model_version(settings: Settings) -> str:
    """Recorded on every chunk; a change (models, or how pages are parsed and chunked) means re-indexing."""
    from pagelens.chunk import CHUNK_VERSION
    from pagelens.parse import PARSE_VERSION

    vision = settings.clip_model.rstrip("/").rsplit("/", 1)[-1] if image_encoder(settings) else "off"
    return f"{TEXT_MODEL_NAME}+clip:{vision}+parse{PARSE_VERSION}+chunk{CHUNK_VERSION}"


__all__ = ["IMAGE_DIM", "TEXT_DIM", "ImageEncoder", "TextEncoder", "image_encoder", "model_version", "text_encoder"]
