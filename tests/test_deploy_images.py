"""Image definitions (no Docker engine here): what they copy exists, they run what the stack expects, and the
encoder's health check tells a good model bake from a bad one."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest

from encoder_image import healthcheck
from pagelens.settings import Settings
from tests.deploy_checks import REPO

DOCKERFILES = [REPO / "Dockerfile", REPO / "encoder_image" / "Dockerfile"]


def _instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n\s*", " ", dockerfile.read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in lines]


def _stage(dockerfile: Path, name: str) -> list[tuple[str, str]]:
    """The instructions of build stage `name` (from its FROM to the next)."""
    stage: list[tuple[str, str]] = []
    current = ""
    for instruction, args in _instructions(dockerfile):
        if instruction == "FROM":
            current = args.split(" AS ")[-1] if " AS " in args else ""
        if current == name:
            stage.append((instruction, args))
    return stage


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: str(p.relative_to(REPO)))
def test_everything_copied_from_the_context_exists(dockerfile: Path) -> None:
    for instruction, args in _instructions(dockerfile):
        if instruction == "COPY" and "--from=" not in args:
            *sources, _target = [a for a in args.split() if not a.startswith("--")]
            for source in sources:
                assert (REPO / source).exists(), f"{dockerfile.name}: COPY {source} (missing from the build context)"


def test_the_api_image_serves_the_factory_with_gunicorn_on_8080() -> None:
    api = _stage(REPO / "Dockerfile", "api")
    (command,) = [json.loads(args) for ins, args in api if ins == "CMD"]
    assert command == ["gunicorn", "-c", "python:query_api.gunicorn_conf", "-w", "2", "-b", "0.0.0.0:8080",
                       "query_api:create_app()"]
    assert "PROMETHEUS_MULTIPROC_DIR=/tmp/" in " ".join(args for ins, args in api if ins == "ENV")  # writable /tmp
    assert "def create_app" in (REPO / "query_api" / "__init__.py").read_text()
    assert (REPO / "query_api" / "gunicorn_conf.py").is_file()


def test_the_encoder_image_runs_the_encode_step_offline_with_auto_device() -> None:
    instructions = _stage(REPO / "encoder_image" / "Dockerfile", "encoder")
    entrypoint = next(args for ins, args in instructions if ins == "ENTRYPOINT")
    assert json.loads(entrypoint) == ["python", "-m", "pagelens.pipeline.pod"]
    env = " ".join(args for ins, args in instructions if ins == "ENV")
    for setting in ("PAGELENS_DEVICE=auto", "PAGELENS_ENCODE_BATCH_SIZE=0", "HF_HUB_OFFLINE=1"):
        assert setting in env
    assert Settings(device="auto", encode_batch_size=0).encode_batch_size == 0  # both are valid settings
    assert any(ins == "HEALTHCHECK" for ins, _ in instructions)
    assert _stage(REPO / "encoder_image" / "Dockerfile", "deps")[0] == ("FROM", "${CUDA_BASE} AS deps")


def test_the_encoder_image_installs_the_core_without_airflow_or_flask() -> None:
    deps = " ".join(args for ins, args in _stage(REPO / "encoder_image" / "Dockerfile", "deps") if ins in ("COPY", "RUN"))
    assert "requirements-core.txt" in deps and "requirements.txt" not in deps.replace("requirements-core.txt", "")
    core = [line.split("#")[0].strip() for line in (REPO / "requirements-core.txt").read_text().splitlines()]
    names = {re.split(r"[=<>\[ ]", line)[0].lower() for line in core if line}
    assert not {n for n in names if n.startswith(("apache-airflow", "flask", "gunicorn"))}
    assert {"torch", "pymilvus", "boto3", "pdfplumber"} <= names
    assert "-r requirements-core.txt" in (REPO / "requirements.txt").read_text().splitlines()


def test_images_do_not_run_as_root() -> None:
    for dockerfile in DOCKERFILES:
        users = [args for ins, args in _instructions(dockerfile) if ins == "USER"]
        assert users and users[-1] not in ("root", "0"), dockerfile


def test_the_build_context_leaves_out_local_state() -> None:
    ignored = (REPO / ".dockerignore").read_text().split()
    assert {".git", ".venv", ".pagelens"} <= set(ignored)


# -- encoder health check ----------------------------------------------------------------------------
def test_healthcheck_passes_with_minilm_and_no_clip(monkeypatch, caplog) -> None:
    monkeypatch.setenv("PAGELENS_CLIP_MODEL", "")
    caplog.set_level(logging.INFO)
    assert healthcheck.main() == 0
    assert "healthy" in caplog.text and "clip=off" in caplog.text


@pytest.mark.integration
def test_healthcheck_accepts_a_baked_clip_checkpoint(tmp_path: Path, monkeypatch) -> None:
    from tests.clip_fixture import write_tiny_clip

    clip = write_tiny_clip(tmp_path / "clip")
    monkeypatch.setenv("PAGELENS_CLIP_MODEL", str(clip))
    assert healthcheck.main() == 0
    assert healthcheck.check_clip_model(Settings()) == clip


def test_healthcheck_fails_on_a_missing_mount(tmp_path: Path, monkeypatch, caplog) -> None:
    monkeypatch.setenv("PAGELENS_CLIP_MODEL", str(tmp_path / "models" / "clip"))
    assert healthcheck.main() == 1
    assert "has no config.json" in caplog.text


def test_healthcheck_fails_on_a_clip_of_the_wrong_size(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"projection_dim": 768}))
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(healthcheck.ModelsMissing, match="768 dims; the index expects 512"):
        healthcheck.check_clip_model(Settings(clip_model=str(tmp_path)))
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(healthcheck.ModelsMissing, match="no weights"):
        healthcheck.check_clip_model(Settings(clip_model=str(tmp_path)))
