"""What an ingest run covers: configured namespaces on schedule, one namespace, or a one-off source."""

from __future__ import annotations

from pathlib import Path

import pytest

from pagelens.pipeline.run import NamespacesNotListed, RunConfigError, finish_run, plan_run, run_targets
from pagelens.settings import NamespaceConfig, Settings
from pagelens.sources import SourceError
from pagelens.store import InvalidNamespace


@pytest.fixture
def configured(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, namespaces={
        "finance": NamespaceConfig(sources=["s3://docs/finance", str(tmp_path / "ledgers")]),
        "hr": NamespaceConfig(sources=["sharepoint://contoso/HR"]),
    })


def test_scheduled_run_covers_every_configured_namespace(configured: Settings) -> None:
    assert run_targets("", "", configured) == {"finance": ["s3://docs/finance", str(configured.data_dir / "ledgers")],
                                               "hr": ["sharepoint://contoso/HR"]}


def test_namespace_param_narrows_to_that_namespace(configured: Settings) -> None:
    assert run_targets(" hr ", "", configured) == {"hr": ["sharepoint://contoso/HR"]}


def test_one_off_source_goes_into_the_named_namespace_only(configured: Settings) -> None:
    assert run_targets("finance", "/mnt/scans", configured) == {"finance": ["/mnt/scans"]}
    assert run_targets("adhoc", "/mnt/scans", configured) == {"adhoc": ["/mnt/scans"]}  # need not be configured


def test_unusable_params_say_what_to_set(configured: Settings) -> None:
    with pytest.raises(RunConfigError, match="needs a namespace"):
        run_targets("", "/mnt/scans", configured)
    with pytest.raises(RunConfigError, match=r"'legal' is not configured .*\['finance', 'hr'\]"):
        run_targets("legal", "", configured)
    with pytest.raises(InvalidNamespace):
        run_targets("bad-name", "/mnt/scans", configured)


def test_unconfigured_install_ingests_the_inbox_when_it_exists(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert run_targets("", "", settings) == {}
    (tmp_path / "inbox").mkdir()
    assert run_targets("", "", settings) == {"default": [str(tmp_path / "inbox")]}


def test_a_namespace_that_cannot_be_listed_does_not_hold_up_the_others(tmp_path: Path) -> None:
    from tests.tiny_pdf import tiny_pdf

    settings = Settings(data_dir=tmp_path / "data")
    good = tmp_path / "good"
    good.mkdir()
    (good / "a.pdf").write_bytes(tiny_pdf("The boiler was serviced in March."))
    run = plan_run({"good": [str(good)], "down": [str(tmp_path / "unmounted")]}, settings, batch_size=8)
    assert [m.namespace for m in run.manifests.values()] == ["good"]
    assert "does not exist" in run.namespaces["down"].error
    assert (run.namespaces["good"].listed, run.namespaces["good"].skipped, run.namespaces["good"].error) == (1, [], "")

    with pytest.raises(NamespacesNotListed, match="could not be listed: down: source folder"):
        finish_run([], run.namespaces_dict(), settings)
    with pytest.raises(SourceError, match="no source could be listed"):
        plan_run({"down": [str(tmp_path / "unmounted")]}, settings, batch_size=8)


@pytest.mark.integration
def test_a_configured_namespace_built_with_other_models_waits_for_its_rebuild(tmp_path: Path) -> None:
    from pagelens.pipeline.stages import ingest
    from tests.tiny_pdf import tiny_pdf

    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.pdf").write_bytes(tiny_pdf("The boiler was serviced in March."))
    settings = Settings(data_dir=tmp_path / "data", namespaces={"ops": NamespaceConfig(sources=[str(folder)])})
    ingest(str(folder), "ops", settings)
    (folder / "b.pdf").write_bytes(tiny_pdf("The chiller was replaced in May."))
    assert plan_run({"ops": [str(folder)]}, settings, batch_size=8).manifests  # same models: b.pdf is planned

    # The model version now names CLIP: the live generation holds vectors of other models.
    upgraded = settings.model_copy(update={"clip_model": "clip-vit-b-32"})
    held = plan_run({"ops": [str(folder)]}, upgraded, batch_size=8)
    assert not held.manifests and held.namespaces["ops"].listed == 0
    adhoc = plan_run({"adhoc": [str(folder)]}, upgraded, batch_size=8)  # unconfigured: re-embedded in place
    assert adhoc.manifests
