# pagelens: `make demo` runs the main job on the embedded default, `make test` runs the test suite.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
SHARED ?= ../shared
export OMP_THREAD_LIMIT ?= 1
export HF_HUB_OFFLINE ?= 1
export PAGELENS_DATA_DIR ?= $(CURDIR)/.pagelens
DEMO_DOCS := $(CURDIR)/demo/docs
AIRFLOW_ENV := AIRFLOW_HOME=$(PAGELENS_DATA_DIR)/airflow AIRFLOW__CORE__DAGS_FOLDER=$(CURDIR)/dags \
	AIRFLOW__CORE__PLUGINS_FOLDER=$(CURDIR)/plugins AIRFLOW__CORE__LOAD_EXAMPLES=False \
	AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=sqlite:///$(PAGELENS_DATA_DIR)/airflow/airflow.db \
	PATH=$(CURDIR)/$(BIN):$$PATH
QUESTION ?= What is the calibration interval of the robot arm?

.PHONY: setup system-deps demo test lint eval baseline bench clean

setup: system-deps $(VENV)/.installed

# Debian packages: Tesseract for OCR, poppler-utils for the off-the-shelf baseline in bench/, the PostgreSQL
# server that the registry tests start on a free port (they run initdb/pg_ctl themselves), and a C++ toolchain:
# llama-cpp-python (the local LLM server of the answer tests) builds from source; Chromium and its driver for
# the browser-page test (tests/test_ui_browser.py).
SYSTEM_PACKAGES := tesseract-ocr poppler-utils postgresql g++ cmake chromium chromium-driver
system-deps:
	@if ! command -v tesseract >/dev/null || ! command -v pdftotext >/dev/null || ! command -v g++ >/dev/null || ! command -v cmake >/dev/null || ! command -v chromedriver >/dev/null || ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(SYSTEM_PACKAGES) >/dev/null; \
	  else echo "Install the system packages: sudo apt-get install $(SYSTEM_PACKAGES)" >&2; exit 1; fi; fi

$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	CMAKE_ARGS="-DGGML_NATIVE=off" $(BIN)/pip install -q -r requirements-dev.txt  # portable llama.cpp build (pip caches the wheel)
	$(BIN)/pip install -q --no-deps -e .
	touch $@

demo: setup
	$(PY) -m pagelens.samples $(DEMO_DOCS)
	mkdir -p $(PAGELENS_DATA_DIR)/airflow
	$(AIRFLOW_ENV) $(BIN)/airflow db migrate >/dev/null
	$(AIRFLOW_ENV) $(BIN)/airflow dags test pagelens_ingest \
	  -c '{"namespace": "demo", "source": "$(DEMO_DOCS)"}' 2>&1 | grep -E "pagelens|Marking run|state=" | tail -n 15
	$(BIN)/pagelens documents --namespace demo
	$(BIN)/pagelens ask "$(QUESTION)" --namespace demo

test: setup
	$(BIN)/ruff check .
	$(BIN)/pytest -q

lint: setup
	$(BIN)/ruff check .

# Quality on the shared evaluation corpus, all four retrieval modes side by side.
eval: setup
	$(BIN)/pagelens eval $(SHARED)/eval/dev.jsonl --docs $(SHARED)/eval/docs --mode all

baseline: setup
	$(PY) $(SHARED)/tools/baseline.py $(SHARED)/eval/docs $(SHARED)/eval/dev.jsonl $(PAGELENS_DATA_DIR)/baseline-cache.json

bench: setup
	$(PY) bench/ingest_throughput.py

clean:
	rm -rf $(PAGELENS_DATA_DIR) demo
