"""Embedding drift against a stored baseline: the same MiniLM agrees with itself, another model does not.

The "other model" is real: the same MiniLM checkpoint loaded with its last transformer layer cut off (what a
silently swapped or truncated model directory does), run through the same encoder code.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pagelens.drift import BIN_EDGES, EmbeddingDrift, check_drift, probe_texts
from pagelens.settings import Settings
from tests.airflow_env import airflow_home, load_dags, release_milvus_lite, run_dag
from tests.clip_fixture import write_tiny_clip

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def other_minilm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """MiniLM with 5 of its 6 layers: the same weights file, another model."""
    source, target = Settings().text_model_dir(), tmp_path_factory.mktemp("minilm_5_layers")
    for path in source.iterdir():
        if path.is_file() and path.name != "config.json":
            (target / path.name).symlink_to(path)
    config = json.loads((source / "config.json").read_text())
    (target / "config.json").write_text(json.dumps({**config, "num_hidden_layers": config["num_hidden_layers"] - 1}))
    return target


def test_the_same_model_does_not_drift(settings: Settings) -> None:
    first = check_drift(settings)
    assert first.baseline_created and first.encoders == []
    result = check_drift(settings)
    assert not result.baseline_created and result.drifted == []
    (text,) = result.encoders
    assert text.encoder == "text" and text.probes == len(probe_texts()) >= 40
    assert text.median > 0.999 and text.minimum > 0.999
    assert text.histogram[-1] == text.probes and len(text.histogram) == len(BIN_EDGES) - 1


def test_another_model_drifts_until_rebaselined(settings: Settings, other_minilm: Path) -> None:
    check_drift(settings)  # baseline with the real MiniLM
    other = settings.model_copy(update={"text_model": str(other_minilm)})
    with pytest.raises(EmbeddingDrift) as failure:
        check_drift(other)
    (text,) = failure.value.result.encoders
    assert text.median < 0.85 and failure.value.result.to_dict()["drifted"] == ["text"]
    assert sum(text.histogram[:4]) == text.probes  # every probe below 0.85, counted in the low bins
    message = str(failure.value)
    assert f"median cosine {text.median:.3f}" in message and "rebaseline" in message
    assert check_drift(other, rebaseline=True).baseline_created
    assert check_drift(other).drifted == []


def test_vision_switched_on_after_the_baseline_is_reported_unchecked(settings: Settings, tmp_path: Path) -> None:
    check_drift(settings)
    with_clip = settings.model_copy(update={"clip_model": str(write_tiny_clip(tmp_path / "clip"))})
    result = check_drift(with_clip)
    assert [e.encoder for e in result.encoders] == ["text"] and result.unchecked == ["clip_text"]
    check_drift(with_clip, rebaseline=True)
    assert [e.encoder for e in check_drift(with_clip).encoders] == ["clip_text", "text"]


@pytest.fixture(scope="module")
def drift_dag(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, pytest.MonkeyPatch]]:
    root = tmp_path_factory.mktemp("drift_dag")
    with airflow_home(root / "airflow", {"PAGELENS_DATA_DIR": str(root / "data")}) as mp:
        yield load_dags()["pagelens_drift"], mp
    release_milvus_lite(root / "data")


def test_drift_dag_passes_on_the_same_model_and_fails_on_another(drift_dag, other_minilm: Path) -> None:
    dag, mp = drift_dag
    assert run_dag(dag).xcom("check_drift")["baseline_created"] is True
    same = run_dag(dag)
    assert same.state == "success" and same.xcom("check_drift")["encoders"][0]["median"] > 0.999
    mp.setenv("PAGELENS_TEXT_MODEL", str(other_minilm))
    drifted = run_dag(dag)
    assert drifted.state == "failed" and drifted.tasks == {"check_drift": "failed"}
    figures = drifted.xcom("check_drift", key="drift")
    assert figures["drifted"] == ["text"] and figures["encoders"][0]["median"] < 0.85
    assert run_dag(dag, {"rebaseline": True}).state == "success"
    assert run_dag(dag).state == "success"
