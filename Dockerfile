# syntax=docker/dockerfile:1.7
# CPU images of pagelens, built from the repository root (the GPU encoder image is encoder_image/Dockerfile):
#   docker build --target api     -t ghcr.io/pagelens/api:0.3.0 .
#   docker build --target airflow -t ghcr.io/pagelens/airflow:0.3.0 .
#   docker build --target parser  -t ghcr.io/pagelens/parser:0.3.0 .
# torch comes from PyTorch's CPU index: PyPI's Linux wheel is the multi-GB CUDA build, useless here. Everything
# else (gunicorn, psycopg, Airflow's providers...) is requirements.txt, pinned as the tests run it.

# CLIP must be the same checkpoint everywhere: the encoder pods embed pages with it, the API embeds questions
# with its text tower, and Airflow's plan step names it in model_version (what decides re-indexing). Production
# builds copy it out of the encoder image: --build-arg MODELS_IMAGE=ghcr.io/pagelens/encoder:0.3.0. The default
# builds without it (vision off in all of them alike, as in docker compose).
ARG PYTHON_IMAGE=python:3.12-slim-bookworm
ARG AIRFLOW_IMAGE=apache/airflow:3.3.2-python3.12
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG MODELS_IMAGE=no-models

FROM ${PYTHON_IMAGE} AS no-models
RUN mkdir -p /opt/pagelens/models

FROM ${MODELS_IMAGE} AS models

# --- the query API: gunicorn serving query_api:create_app() on :8080 ---
FROM ${PYTHON_IMAGE} AS api
ARG TORCH_INDEX_URL
LABEL org.opencontainers.image.title="pagelens-api" \
      org.opencontainers.image.description="pagelens query API (Flask behind gunicorn)" \
      org.opencontainers.image.version="0.3.0" \
      io.pagelens.image="ghcr.io/pagelens/api:0.3.0"
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1
COPY requirements.txt requirements-core.txt /tmp/
RUN pip install --index-url "${TORCH_INDEX_URL}" "$(grep -E '^torch==' /tmp/requirements-core.txt)" \
 && pip install -r /tmp/requirements.txt
RUN useradd --uid 10001 --create-home --shell /usr/sbin/nologin pagelens
COPY --from=models /opt/pagelens/models /opt/pagelens/models
COPY plugins/ /opt/pagelens/plugins/
COPY query_api/ /opt/pagelens/query_api/
# PROMETHEUS_MULTIPROC_DIR: /metrics adds up all gunicorn workers (query_api/gunicorn_conf.py empties it at start).
ENV PYTHONPATH=/opt/pagelens/plugins:/opt/pagelens \
    PROMETHEUS_MULTIPROC_DIR=/tmp/prometheus \
    PAGELENS_DATA_DIR=/tmp/pagelens \
    PAGELENS_CLIP_MODEL=/opt/pagelens/models/clip \
    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HOME=/tmp/hf \
    OMP_THREAD_LIMIT=1
USER 10001
WORKDIR /opt/pagelens
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"]
CMD ["gunicorn", "-c", "python:query_api.gunicorn_conf", "-w", "2", "-b", "0.0.0.0:8080", "query_api:create_app()"]

# --- the parse step's CPU pods (PAGELENS_PARSE_EXECUTION=pod): the core with OCR and LibreOffice, no Airflow ---
FROM ${PYTHON_IMAGE} AS parser
ARG TORCH_INDEX_URL
LABEL org.opencontainers.image.title="pagelens-parser" \
      org.opencontainers.image.description="pagelens parse step for CPU pods (PDFium, pdfplumber, Tesseract, LibreOffice)" \
      org.opencontainers.image.version="0.3.0" \
      io.pagelens.image="ghcr.io/pagelens/parser:0.3.0"
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends tesseract-ocr \
    libreoffice-core libreoffice-writer libreoffice-impress libreoffice-calc fonts-dejavu-core fonts-liberation2 \
 && rm -rf /var/lib/apt/lists/*
COPY requirements-core.txt /tmp/
RUN pip install --index-url "${TORCH_INDEX_URL}" "$(grep -E '^torch==' /tmp/requirements-core.txt)" \
 && pip install -r /tmp/requirements-core.txt
RUN useradd --uid 10001 --create-home --shell /usr/sbin/nologin pagelens
COPY plugins/ /opt/pagelens/plugins/
ENV PYTHONPATH=/opt/pagelens/plugins \
    PAGELENS_DATA_DIR=/tmp/pagelens \
    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HOME=/tmp/hf \
    OMP_THREAD_LIMIT=1
USER 10001
WORKDIR /tmp
ENTRYPOINT ["python", "-m", "pagelens.pipeline.pod", "--step", "parse"]
CMD ["--help"]

# --- Airflow (api-server, scheduler, dag-processor, workers) with the pagelens package on sys.path ---
FROM ${AIRFLOW_IMAGE} AS airflow
ARG TORCH_INDEX_URL
LABEL org.opencontainers.image.title="pagelens-airflow" \
      org.opencontainers.image.description="Apache Airflow with the pagelens plugins and DAGs" \
      org.opencontainers.image.version="0.3.0" \
      io.pagelens.image="ghcr.io/pagelens/airflow:0.3.0"
USER root
RUN apt-get update \
 && apt-get install -y --no-install-recommends tesseract-ocr \
    libreoffice-core libreoffice-writer libreoffice-impress libreoffice-calc fonts-dejavu-core fonts-liberation2 \
 && rm -rf /var/lib/apt/lists/*
USER airflow
COPY requirements.txt requirements-core.txt /tmp/
# Keep the base image's Airflow: installing the requirements must not move it.
RUN pip install --no-cache-dir --index-url "${TORCH_INDEX_URL}" "$(grep -E '^torch==' /tmp/requirements-core.txt)" \
 && pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" -r /tmp/requirements.txt
# Airflow puts plugins/ on sys.path: DAGs import pagelens with no install. In Kubernetes the DAG folder is
# replaced by git-sync at the same release tag; the copy here serves `docker compose` and plain `docker run`.
COPY --chown=airflow:0 plugins/ /opt/airflow/plugins/
COPY --chown=airflow:0 dags/ /opt/airflow/dags/
COPY --from=models /opt/pagelens/models /opt/pagelens/models
RUN mkdir -p /opt/airflow/pagelens/inbox
# PYTHONPATH: `python -m pagelens.cli ...` (registry migrations, tokens, rollback) outside Airflow's processes.
ENV PYTHONPATH=/opt/airflow/plugins \
    PAGELENS_CLIP_MODEL=/opt/pagelens/models/clip \
    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 OMP_THREAD_LIMIT=1
