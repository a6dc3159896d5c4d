"""Encoders: MiniLM for text (384-d), CLIP ViT-B/32 for page/figure images and query text (512-d).

Models load once per process (cached by path) and run batched; fp16 on a GPU, fp32 on the CPU. With
`encode_batch_size` 0 (auto) the batch size on a GPU is chosen from the memory left free after loading.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from typing import Any

from pagelens.settings import IMAGE_DIM, TEXT_DIM, Settings

log = logging.getLogger(__name__)
TEXT_MODEL_NAME = "all-MiniLM-L6-v2"
MAX_TOKENS = 256  # MiniLM's training length: longer texts are embedded in windows of this many tokens
WINDOW_OVERLAP = 64  # tokens shared by neighbouring windows, so no sentence is only ever seen cut in two
AUTO_BATCH = 0  # `encode_batch_size` value meaning: size batches from free GPU memory
CPU_TEXT_BATCH, CPU_IMAGE_BATCH = 32, 16  # what auto means on the CPU (the fixed sizes used before auto existed)
# Peak fp16 activation memory per item, estimated with headroom (not measured on a GPU): MiniLM at 256 tokens
# holds 12 heads x 256^2 attention scores plus 256 x 1536 MLP states per layer (~3 MiB); a CLIP ViT-B/32 image is
# 50 tokens of 768 dims (~1 MiB). The estimates are doubled again for the allocator's fragmentation.
TEXT_ITEM_BYTES = 8 << 20
IMAGE_ITEM_BYTES = 4 << 20
MAX_TEXT_BATCH, MAX_IMAGE_BATCH = 1024, 256  # past these, throughput stops growing and host-side preprocessing grows


def batch_size_for_memory(free_bytes: int, item_bytes: int, max_batch: int, reserve: float = 0.25) -> int:
    """Largest power of two whose activations fit in `free_bytes` after keeping `reserve` of it back (min 1)."""
    budget = int(free_bytes * (1 - reserve)) // item_bytes
    size = 1
    while size * 2 <= min(budget, max_batch):
        size *= 2
    return size


def resolve_device(device: str) -> str:
    """`auto` becomes `cuda` when a GPU is visible, else `cpu`; any other value is used as given."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def choose_batch_size(configured: int, device: str, item_bytes: int, max_batch: int, cpu_default: int) -> int:
    """`configured` when set; otherwise (auto) sized from the GPU's free memory, or `cpu_default` on the CPU."""
    if configured > 0:
        return configured
    if not device.startswith("cuda"):
        return cpu_default
    import torch

    free_bytes, _total = torch.cuda.mem_get_info(torch.device(device))
    size = batch_size_for_memory(free_bytes, item_bytes, max_batch)
    log.info("Auto batch size on %s: %d (%.1f GiB free)", device, size, free_bytes / 2**30)
    return size


class TextEncoder:
    """Sentence embeddings: mean-pooled, L2-normalised MiniLM token states (as sentence-transformers).

    On the CPU with an `onnx_dir`, the forward runs in ONNX Runtime on a graph exported from these weights
    (onnxencoder.py); on a GPU, torch in fp16.
    """

    def __init__(self, model_dir: str, device: str = "cpu", batch_size: int = 32, onnx_dir: str = "") -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        # Long texts are tokenized whole and then windowed: the tokenizer's length warning does not apply.
        logging.getLogger("transformers.tokenization_utils_base").setLevel(logging.ERROR)
        self.device = device
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        self.model = AutoModel.from_pretrained(model_dir, local_files_only=True).to(device).eval()
        if device.startswith("cuda"):
            self.model = self.model.half()
        self._torch = torch
        self._onnx = None
        if onnx_dir and device == "cpu":
            from pagelens.onnxencoder import onnx_session

            self._onnx = onnx_session(self.model, model_dir, onnx_dir)  # torch's copy stays: ~90 MB, for callers
        # After the weights are on the device, so free memory is what activations can use.
        self.batch_size = choose_batch_size(batch_size, device, TEXT_ITEM_BYTES, MAX_TEXT_BATCH, CPU_TEXT_BATCH)

    def encode(self, texts: Sequence[str]) -> list[list[float]]:
        """One vector per text over all of it: texts past MiniLM's 256 tokens are embedded as overlapping
        windows whose mean-pooled states are averaged by token count (mean pooling over the whole text).

        Truncating instead would leave the second half of a long chunk invisible to dense retrieval.
        """
        if not texts:  # a document with no text chunks (the tokenizer refuses an empty batch)
            return []
        windows, owners, sizes = self._windows(texts)
        pooled = self._pool(windows)
        sums: list[list[float] | None] = [None] * len(texts)
        for vec, owner, size in zip(pooled, owners, sizes, strict=True):
            acc = sums[owner]
            sums[owner] = [v * size for v in vec] if acc is None else [a + v * size for a, v in zip(acc, vec, strict=True)]
        result = []
        for acc in sums:
            norm = sum(v * v for v in acc or []) ** 0.5 or 1.0
            result.append([v / norm for v in acc or []])
        return result

    def _windows(self, texts: Sequence[str]) -> tuple[list[list[int]], list[int], list[int]]:
        """Token-id windows of at most MAX_TOKENS (special tokens included), the text each belongs to, its length."""
        body = MAX_TOKENS - 2
        stride = body - WINDOW_OVERLAP
        cls_id, sep_id = self.tokenizer.cls_token_id, self.tokenizer.sep_token_id
        ids = self.tokenizer([t or " " for t in texts], add_special_tokens=False, truncation=False)["input_ids"]
        windows, owners, sizes = [], [], []
        for owner, tokens in enumerate(ids):
            starts = range(0, max(len(tokens) - WINDOW_OVERLAP, 1), stride) if len(tokens) > body else [0]
            for start in starts:
                piece = tokens[start:start + body]
                windows.append([cls_id, *piece, sep_id])
                owners.append(owner)
                sizes.append(max(len(piece), 1))
        return windows, owners, sizes

    def _pool(self, windows: list[list[int]]) -> list[list[float]]:
        """Mean-pooled, L2-normalised states of each token-id window, batched by length (restored in order)."""
        torch = self._torch
        out: list[list[float]] = [[]] * len(windows)
        order = sorted(range(len(windows)), key=lambda i: len(windows[i]))
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            batch = self.tokenizer.pad({"input_ids": [windows[i] for i in idx]}, return_tensors="pt").to(self.device)
            with torch.inference_mode():
                states = self._states(batch["input_ids"], batch["attention_mask"])
                mask = batch["attention_mask"].unsqueeze(-1).to(states.dtype)
                pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                vectors = torch.nn.functional.normalize(pooled.float(), dim=-1).cpu().tolist()
            for i, vec in zip(idx, vectors, strict=True):
                out[i] = vec
        return out


    def _states(self, input_ids: Any, attention_mask: Any) -> Any:
        """Last hidden states of one padded batch (torch tensors in and out)."""
        if self._onnx is not None:
            feeds = {"input_ids": input_ids.numpy(), "attention_mask": attention_mask.numpy()}
            return self._torch.from_numpy(self._onnx.run(None, feeds)[0])
        return self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


class ImageEncoder:
    """CLIP image tower for pages and figure crops; its text tower embeds queries into the same space."""

    def __init__(self, model_id: str, device: str = "cpu", batch_size: int = CPU_IMAGE_BATCH) -> None:
        import torch
        from transformers import CLIPModel, CLIPProcessor
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        self.device, self._torch = device, torch
        self.processor = CLIPProcessor.from_pretrained(model_id)
        dtype = torch.float16 if device.startswith("cuda") else torch.float32
        self.model = CLIPModel.from_pretrained(model_id, dtype=dtype).to(device).eval()
        self.batch_size = choose_batch_size(batch_size, device, IMAGE_ITEM_BYTES, MAX_IMAGE_BATCH, CPU_IMAGE_BATCH)
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


_TEXT_ENCODERS: dict[tuple[str, str, int, bool], TextEncoder] = {}


def _text_encoder(model_dir: str, device: str, batch_size: int, onnx_dir: str = "") -> TextEncoder:
    """One encoder per model, device and backend in a process: the ONNX export happens into the first data
    dir that asks and is not repeated for every other settings object (tests make many)."""
    key = (model_dir, device, batch_size, bool(onnx_dir))
    if key not in _TEXT_ENCODERS:
        _TEXT_ENCODERS[key] = TextEncoder(model_dir, device, batch_size, onnx_dir)
    return _TEXT_ENCODERS[key]


@functools.lru_cache(maxsize=4)
def _image_encoder(model_id: str, device: str, batch_size: int) -> ImageEncoder | None:
    try:
        return ImageEncoder(model_id, device, batch_size)
    except (OSError, ValueError) as exc:
        log.warning("Vision branch off: CLIP model %r could not be loaded (%s)", model_id, exc)
        return None


def text_encoder(settings: Settings) -> TextEncoder:
    device = resolve_device(settings.device)
    onnx_dir = str(settings.data_dir / "models") if device == "cpu" and settings.cpu_text_backend == "onnx" else ""
    return _text_encoder(str(settings.text_model_dir()), device, settings.encode_batch_size, onnx_dir)


def image_encoder(settings: Settings) -> ImageEncoder | None:
    """The CLIP encoder, or None (vision off) when no weights are configured or loadable."""
    if not settings.clip_model:
        _log_vision_off_once()
        return None
    # Images keep their own fixed batch unless auto: a page raster costs more host memory than a chunk of text.
    batch = AUTO_BATCH if settings.encode_batch_size == AUTO_BATCH else CPU_IMAGE_BATCH
    return _image_encoder(settings.clip_model, resolve_device(settings.device), batch)


@functools.lru_cache(maxsize=1)
def _log_vision_off_once() -> None:
    log.info("Vision branch off: no CLIP weights configured (set PAGELENS_CLIP_MODEL to a directory or HF id)")


def model_version(settings: Settings) -> str:
    """Recorded on every chunk; a change (models, or how pages are parsed and chunked) means re-indexing."""
    from pagelens.chunk import CHUNK_VERSION
    from pagelens.parsing.pdf import PARSE_VERSION

    # From the setting alone: a planner (an Airflow worker) must not load CLIP just to name it.
    vision = settings.clip_model.rstrip("/").rsplit("/", 1)[-1] if settings.clip_model else "off"
    windows = f"{settings.dense_window_chars}x{settings.dense_window_stride}"
    return f"{TEXT_MODEL_NAME}+clip:{vision}+parse{PARSE_VERSION}+chunk{CHUNK_VERSION}+windows{windows}"


__all__ = ["IMAGE_DIM", "TEXT_DIM", "ImageEncoder", "TextEncoder", "image_encoder", "model_version", "text_encoder"]
