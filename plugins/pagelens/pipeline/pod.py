"""The two steps of one batch as tasks run them (`parse_manifest`, `encode_manifest`), and the pods' entrypoint.

    python -m pagelens.pipeline.pod --manifest s3://bucket/key.json | file:///path.json [--reports PATH]
    python -m pagelens.pipeline.pod --step parse --manifest data:application/json;base64,... \
        --dag-id DAG --run-id RUN --map-index N [--reports PATH]

`--step encode` (the default; the GPU pod) reads a parsed batch (S3 with boto3's own configuration, or a local
file), embeds each document from its artifact in the content store (`pagelens.pipeline.stages.encode_batch`: no
PDF parsing, no OCR) and writes the per-document reports as JSON to `--reports`. `--step parse` (the CPU pod)
parses a planned batch given inline, keeps each document's artifact in the content store, writes the parsed batch
to `s3://<manifest_bucket>/<manifest_prefix>/<dag>/<run>/<namespace>-<NNNN>.json` as the worker's parse task
would, and reports that URI. Reports go by default to `/airflow/xcom/return.json` when that folder exists (the
KubernetesPodOperator's XCom sidecar volume), so the DAG's next task gets them exactly as from the local task.
A document that cannot be read is quarantined and does not fail the batch. Exit codes: 0 done; 2 the manifest
is missing or invalid, or the pod's models differ from the planner's (a retry will not help); 1 anything else
(Milvus, the registry or a source unreachable: Airflow's retries apply). A failure ends with one line
`<step>_batch failed: <reason>` on stderr, also written to the container's termination log, which Airflow shows
with the task's error.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from pagelens.embed import model_version
from pagelens.errors import RegistrySchemaError, StoreUnavailable
from pagelens.pipeline.batches import (
    BatchManifest,
    InvalidManifest,
    ManifestUnavailable,
    ParsedBatch,
    batch_name,
    read_manifest,
    write_manifests,
)
from pagelens.pipeline.handoff import ArtifactMissing
from pagelens.pipeline.stages import encode_batch, parse_batch
from pagelens.settings import Settings
from pagelens.sources import SourceError
from pagelens.tracing import configure_tracing, flush_tracing

log = logging.getLogger("pagelens.pipeline.pod")
XCOM_RETURN = Path("/airflow/xcom/return.json")  # read back by the KubernetesPodOperator's sidecar
TERMINATION_LOG = Path("/dev/termination-log")  # Kubernetes shows it as the container's termination message
RETRIABLE = (ManifestUnavailable, SourceError, StoreUnavailable, RegistrySchemaError, ArtifactMissing, OSError)


class ModelMismatch(InvalidManifest):
    """The encoder would index with other models than the plan assumed: every later run would re-index all."""


def parse_manifest(manifest: BatchManifest, settings: Settings) -> ParsedBatch:
    """Parse one planned batch (CPU): its documents become artifacts, named in the parsed batch."""
    check_models(manifest.model_version, settings)
    return parse_batch(manifest.documents, manifest.namespace, settings, generation=manifest.generation)


def encode_manifest(parsed: ParsedBatch, settings: Settings) -> dict[str, Any]:
    """Encode one parsed batch; the result is what the DAG's last task counts (the same from the task and the pod)."""
    check_models(parsed.model_version, settings)
    reports = encode_batch(parsed, settings)
    return {"namespace": parsed.namespace, "generation": parsed.generation, "documents": [r.to_dict() for r in reports]}


def check_models(planned: str, settings: Settings) -> None:
    """Refuse a batch planned for other models: the registry would call every document stale on the next run."""
    if planned and planned != (ours := model_version(settings)):
        raise ModelMismatch(f"this encoder indexes with {ours} but the batch was planned for {planned}: give encoder "
                            "pods the same PAGELENS_TEXT_MODEL/PAGELENS_CLIP_MODEL as the Airflow workers")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for noisy in ("pdfminer", "httpx", "transformers", "botocore", "airflow"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    settings = Settings()
    configure_tracing(settings)
    where = "inline" if args.manifest.startswith("data:") else args.manifest
    try:
        if args.step == "parse":
            if args.dag_id is None or args.run_id is None or args.map_index is None:
                raise InvalidManifest("--step parse needs --dag-id, --run-id and --map-index (where the parsed batch goes)")
            planned = read_manifest(args.manifest, settings, BatchManifest)
            log.info("Batch %s: parsing %d documents for namespace %s", where, len(planned.documents), planned.namespace)
            parsed = parse_manifest(planned, settings)
            result: Any = write_manifests({batch_name(parsed.namespace, args.map_index): parsed}, settings,
                                          args.dag_id, args.run_id)[0]
        else:
            parsed = read_manifest(args.manifest, settings, ParsedBatch)
            log.info("Batch %s: %d documents into namespace %s%s", where, len(parsed.items),
                     parsed.namespace, f" (generation {parsed.generation})" if parsed.generation else "")
            result = encode_manifest(parsed, settings)
        _write_reports(result, args.reports)
    except InvalidManifest as exc:
        return _fail(args.step, f"bad manifest {where}: {exc}", 2, args.termination_log)
    except RETRIABLE as exc:
        return _fail(args.step, str(exc), 1, args.termination_log)
    except Exception as exc:  # the process boundary: a bug still ends with its one-line reason, after the traceback
        log.exception("Unexpected failure")
        return _fail(args.step, f"{type(exc).__name__}: {exc}", 1, args.termination_log)
    finally:
        flush_tracing()
    if args.step == "parse":
        log.info("Batch parsed: %s", result)
        return 0
    counts = {s: sum(r["status"] == s for r in result["documents"]) for s in ("indexed", "skipped", "quarantined", "deleted")}
    log.info("Batch done: %s indexed, %s skipped, %s quarantined, %s deleted", *counts.values())
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pagelens.pipeline.pod",
                                     description="Parse one planned batch (CPU pod) or encode one parsed batch (GPU pod).")
    parser.add_argument("--step", choices=("encode", "parse"), default="encode")
    parser.add_argument("--manifest", required=True,
                        help="encode: the parsed batch (s3://bucket/key.json, file:///path.json or a path); "
                             "parse: the planned batch, usually inline (data:application/json;base64,...)")
    parser.add_argument("--dag-id", help="parse: the DAG whose run the parsed batch belongs to")
    parser.add_argument("--run-id", help="parse: that run")
    parser.add_argument("--map-index", type=int, help="parse: the parse task's map index (names the batch)")
    parser.add_argument("--reports", type=Path, default=None,
                        help=f"where the result JSON goes (default: {XCOM_RETURN} when its folder exists)")
    parser.add_argument("--termination-log", type=Path, default=TERMINATION_LOG, help=argparse.SUPPRESS)
    return parser


def _write_reports(result: Any, target: Path | None) -> None:
    if target is None:
        if not XCOM_RETURN.parent.is_dir():
            log.info("No XCom volume at %s: reports not written", XCOM_RETURN.parent)
            return
        target = XCOM_RETURN
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(result), encoding="utf-8")


def _fail(step: str, reason: str, code: int, termination_log: Path) -> int:
    line = f"{step}_batch failed: {' '.join(reason.split())}"
    if termination_log.is_file():  # only where Kubernetes created it: never litter /dev locally
        termination_log.write_text(line, encoding="utf-8")
    sys.stderr.write(line + "\n")
    return code


if __name__ == "__main__":
    sys.exit(main())
