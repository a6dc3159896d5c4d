"""docker-compose.yml against the Compose Specification schema, and the stack's wiring (no Docker engine here)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.deploy_checks import REPO, json_schema_validator, load_one

STACK = {"etcd", "minio", "milvus", "postgres", "airflow-init", "airflow-apiserver", "airflow-scheduler",
         "airflow-dag-processor", "api"}
VARIABLE = re.compile(r"(?<!\$)\$\{([^}]*)\}")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_one(REPO / "docker-compose.yml")


def test_compose_file_validates_against_the_compose_spec(compose) -> None:
    json_schema_validator("compose-spec.json").validate(compose)


def test_compose_schema_rejects_a_misspelt_service_key(compose) -> None:
    import jsonschema

    broken = {**compose, "services": {**compose["services"], "api": {**compose["services"]["api"], "port": ["1:1"]}}}
    with pytest.raises(jsonschema.ValidationError):
        json_schema_validator("compose-spec.json").validate(broken)


def test_plain_up_brings_the_whole_stack_and_the_llm_is_a_profile(compose) -> None:
    services = compose["services"]
    default = {name for name, service in services.items() if not service.get("profiles")}
    assert default == STACK
    assert services["llm"]["profiles"] == ["llm"]


def test_every_variable_has_a_default_so_up_needs_no_env_file() -> None:
    text = (REPO / "docker-compose.yml").read_text()
    missing = [v for v in VARIABLE.findall(text) if "-" not in v]  # ${VAR:-default} or ${VAR-default}
    assert not missing, f"variables without a default: {missing}"


def test_dependencies_exist_and_wait_for_health(compose) -> None:
    services = compose["services"]
    for name, service in services.items():
        for dependency, condition in (service.get("depends_on") or {}).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            if condition["condition"] == "service_healthy":
                assert "healthcheck" in services[dependency], f"{name} waits for {dependency}, which has no healthcheck"
    assert services["airflow-scheduler"]["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"


def test_pagelens_settings_point_at_the_stack(compose) -> None:
    from pagelens.settings import Settings

    services = compose["services"]
    for name in ("api", "airflow-scheduler"):
        env = {k: str(v) for k, v in services[name]["environment"].items()}
        settings = Settings(**{k.removeprefix("PAGELENS_").lower(): v for k, v in env.items()
                               if k.startswith("PAGELENS_") and "${" not in v})
        assert settings.milvus_uri == "http://milvus:19530" and not settings.is_lite
        assert settings.replica_number == 1  # a standalone Milvus has one query node
        assert "@postgres:5432/pagelens" in env["PAGELENS_REGISTRY_URL"]
    assert services["airflow-scheduler"]["environment"]["PAGELENS_EXECUTION"] == "local"
    init_sql = compose["configs"]["pagelens-db"]["content"]
    assert "CREATE DATABASE pagelens OWNER pagelens" in init_sql
    ports = {p.rsplit(":", 1)[-1] for p in services["milvus"]["ports"]}
    assert "19530" in ports


def test_services_build_from_dockerfile_targets_that_exist(compose) -> None:
    stages = set(re.findall(r"^FROM \S+ AS (\S+)$", (REPO / "Dockerfile").read_text(), flags=re.MULTILINE))
    for name in ("api", "airflow-apiserver"):
        build = compose["services"][name]["build"]
        assert build["context"] == "." and build["target"] in stages
