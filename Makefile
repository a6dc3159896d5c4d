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
DEMO_STATE := $(PAGELENS_DATA_DIR)/demo
AIRFLOW_DB := $(PAGELENS_DATA_DIR)/airflow/airflow.db
AIRFLOW_ENV := AIRFLOW_HOME=$(PAGELENS_DATA_DIR)/airflow AIRFLOW__CORE__DAGS_FOLDER=$(CURDIR)/dags \
	AIRFLOW__CORE__PLUGINS_FOLDER=$(CURDIR)/plugins AIRFLOW__CORE__LOAD_EXAMPLES=False \
	AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=sqlite:///$(PAGELENS_DATA_DIR)/airflow/airflow.db \
	PATH=$(CURDIR)/$(BIN):$$PATH
QUESTION ?= What is the calibration interval of the robot arm?

.PHONY: setup system-deps demo test lint eval eval-full tune baseline bench clean

setup: system-deps $(VENV)/.installed

# Debian packages: Tesseract for OCR, poppler-utils for the off-the-shelf baseline in bench/, the PostgreSQL
# server that the registry tests start on a free port (they run initdb/pg_ctl themselves), and a C++ toolchain:
# llama-cpp-python (the local LLM server of the answer tests) builds from source; Chromium and its driver for
# the browser-page test (tests/test_ui_browser.py); LibreOffice (core, writer, impress, calc) converts Office, HTML
# and text documents to PDF before parsing (plugins/pagelens/parsing/convert.py); Prometheus (promtool and the
# server) and its Pushgateway for the monitoring tests (tests/test_monitoring.py).
SYSTEM_PACKAGES := tesseract-ocr poppler-utils postgresql g++ cmake chromium chromium-driver \
	libreoffice-core libreoffice-writer libreoffice-impress libreoffice-calc prometheus prometheus-pushgateway
system-deps:
	@if ! command -v tesseract >/dev/null || ! command -v pdftotext >/dev/null || ! command -v g++ >/dev/null || ! command -v cmake >/dev/null || ! command -v chromedriver >/dev/null || ! command -v promtool >/dev/null || ! command -v prometheus-pushgateway >/dev/null || ! command -v soffice >/dev/null || ! dpkg -s libreoffice-writer libreoffice-impress libreoffice-calc >/dev/null 2>&1 || ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(SYSTEM_PACKAGES) >/dev/null; \
	  else echo "Install the system packages: sudo apt-get install $(SYSTEM_PACKAGES)" >&2; exit 1; fi; fi

$(VENV)/.installed: requirements.txt requirements-core.txt requirements-dev.txt pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	CMAKE_ARGS="-DGGML_NATIVE=off" $(BIN)/pip install -q -r requirements-dev.txt  # portable llama.cpp build (pip caches the wheel)
	$(BIN)/pip install -q --no-deps -e .
	touch $@

# Each step says what it does or why it skips: a second `make demo` reuses the documents, the Airflow DB and
# the ingest (when nothing they depend on changed) and only asks the question again.
demo: setup
	@mkdir -p $(DEMO_STATE)
	@if [ -f $(DEMO_STATE)/samples ] && [ -z "$$(find plugins/pagelens/samples.py plugins/pagelens/samples_office.py $(VENV)/.installed -newer $(DEMO_STATE)/samples -print -quit)" ] && [ -d $(DEMO_DOCS) ]; then \
	  echo "demo: sample documents in demo/docs are up to date (not rewritten)"; \
	else $(PY) -m pagelens.samples $(DEMO_DOCS) >/dev/null && $(PY) -m pagelens.samples_office $(DEMO_DOCS) >/dev/null \
	  && touch $(DEMO_STATE)/samples && echo "demo: wrote the sample documents to demo/docs (a PDF, a scan, a DOCX, a PPTX)"; fi
	@if [ -f $(AIRFLOW_DB) ] && [ $(AIRFLOW_DB) -nt $(VENV)/.installed ]; then echo "demo: Airflow metadata DB ready (migrate skipped)"; \
	else mkdir -p $(PAGELENS_DATA_DIR)/airflow && $(AIRFLOW_ENV) $(BIN)/airflow db migrate >$(DEMO_STATE)/migrate.log 2>&1 \
	  && echo "demo: Airflow metadata DB migrated" || { tail -n 20 $(DEMO_STATE)/migrate.log; exit 1; }; fi
	@if [ -f $(DEMO_STATE)/ingested ] && [ -z "$$(find $(DEMO_DOCS) dags/pagelens_ingest.py $(VENV)/.installed -newer $(DEMO_STATE)/ingested -print -quit)" ]; then \
	  echo "demo: demo/docs unchanged since the last ingest: Airflow run skipped (rm $(DEMO_STATE)/ingested to run it again)"; \
	else echo "demo: airflow dags test pagelens_ingest (namespace demo; log: $(DEMO_STATE)/ingest.log)"; \
	  $(AIRFLOW_ENV) $(BIN)/airflow dags test pagelens_ingest -c '{"namespace": "demo", "source": "$(DEMO_DOCS)"}' >$(DEMO_STATE)/ingest.log 2>&1; \
	  sed -nE 's/^.*\] ((Plan|Ingest into) demo: .*) \[pagelens[^]]*\].*$$/  \1/p' $(DEMO_STATE)/ingest.log; \
	  if grep -q "DagRun Finished: dag_id=pagelens_ingest.*state=success" $(DEMO_STATE)/ingest.log; then touch $(DEMO_STATE)/ingested; \
	  else echo "demo: the ingest run failed; the end of its log:" >&2; tail -n 30 $(DEMO_STATE)/ingest.log >&2; exit 1; fi; fi
	@echo; $(BIN)/pagelens documents --namespace demo
	@echo; echo "Q: $(QUESTION)"; $(BIN)/pagelens ask "$(QUESTION)" --namespace demo
	@echo; echo "Next: $(BIN)/pagelens token create --namespace demo, then $(BIN)/pagelens serve and open http://127.0.0.1:8080/"

test: setup
	$(BIN)/ruff check .
	$(BIN)/pytest -q

lint: setup
	$(BIN)/ruff check .

# Quality on the shared evaluation corpus, all four retrieval modes side by side.
eval: setup
	$(BIN)/pagelens eval $(SHARED)/eval/dev.jsonl $(SHARED)/eval/unanswerable-dev.jsonl --docs $(SHARED)/eval/docs --mode all

# The issue-level figures: both question sets and the unanswerable ones over docs/ + distractors/ (about 3,000
# pages: the first run ingests for about half an hour on two cores; later runs reuse the index).
EVAL_ALL := $(SHARED)/eval/dev.jsonl $(SHARED)/eval/dev2.jsonl $(SHARED)/eval/unanswerable-dev.jsonl
EVAL_DOCS := --docs $(SHARED)/eval/docs --docs $(SHARED)/eval/distractors
eval-full: setup
	$(BIN)/pagelens eval $(EVAL_ALL) $(EVAL_DOCS) --mode hybrid --mode fused --mode bm25 --mode dense --mode rrf \
	  --details $(PAGELENS_DATA_DIR)/eval-details.jsonl

# Cross-validated fusion weight, reranker weights and abstention threshold on that index (bench/tune_fusion.py).
tune: eval-full
	$(PY) bench/tune_fusion.py legs $(EVAL_ALL) $(EVAL_DOCS) --out $(PAGELENS_DATA_DIR)/legs.json.gz
	$(PY) bench/tune_fusion.py tune $(PAGELENS_DATA_DIR)/legs.json.gz
	$(PY) bench/tune_fusion.py rerank $(PAGELENS_DATA_DIR)/legs.json.gz --dense-weights 0.35 0.5 0.65
	$(PY) bench/tune_fusion.py abstain $(PAGELENS_DATA_DIR)/legs.json.gz

baseline: setup
	$(PY) $(SHARED)/tools/baseline.py $(SHARED)/eval/docs $(SHARED)/eval/dev.jsonl $(PAGELENS_DATA_DIR)/baseline-cache.json

bench: setup
	$(PY) bench/ingest_throughput.py

clean:
	rm -rf $(PAGELENS_DATA_DIR) demo
