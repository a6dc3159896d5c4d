"""Alerting and recording rules checked by promtool, evaluated by a real Prometheus scraping `pagelens serve` and a
Pushgateway fed by a real ingest and drift check; the dashboard reads only series the code exports."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from prometheus_client import generate_latest

from pagelens.drift import DriftResult, EncoderDrift
from pagelens.jobmetrics import drift_registry, gc_registry, ingest_registry
from pagelens.settings import Settings
from query_api import create_app
from tests.api_fixtures import OPS_DOC
from tests.llm_server import free_port
from tests.monitoring import (
    MONITORING,
    dashboard_exprs,
    exposition_names,
    get_json,
    prometheus,
    promtool,
    pushgateway,
    rule_exprs,
    rule_groups,
    series_names,
    write_rules,
)
from tests.test_api_serve import call, running

BIN = Path(sys.executable).parent
KUBE_STATE_METRICS = {"kube_pod_status_phase"}  # read from kube-state-metrics, not exported by pagelens
needs_promtool = pytest.mark.skipif(shutil.which("promtool") is None and not os.environ.get("CI"),
                                    reason="promtool is missing: make system-deps (Debian package prometheus)")


def alerts() -> set[str]:
    return {rule["alert"] for group in rule_groups() for rule in group["rules"] if "alert" in rule}


def recorded() -> set[str]:
    return {rule["record"] for group in rule_groups() for rule in group["rules"] if "record" in rule}


@needs_promtool
def test_the_rules_pass_promtool_check(tmp_path: Path) -> None:
    result = promtool("check", "rules", write_rules(tmp_path), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rule_exprs())} rules found" in result.stdout


@needs_promtool
def test_every_alert_has_a_firing_and_a_quiet_unit_test_and_they_pass(tmp_path: Path) -> None:
    write_rules(tmp_path)
    shutil.copy(MONITORING / "rules.test.yaml", tmp_path)
    result = promtool("test", "rules", "rules.test.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    cases = [t for case in yaml.safe_load((MONITORING / "rules.test.yaml").read_text())["tests"]
             for t in case.get("alert_rule_test", [])]
    assert {t["alertname"] for t in cases if t["exp_alerts"]} == alerts()
    assert {t["alertname"] for t in cases if not t["exp_alerts"]} == alerts()


@needs_promtool
def test_the_unit_tests_catch_a_moved_threshold(tmp_path: Path) -> None:
    rules = write_rules(tmp_path)
    rules.write_text(rules.read_text().replace("> 1.2", "> 1.4").replace("> 0.005", "> 0.01"))
    shutil.copy(MONITORING / "rules.test.yaml", tmp_path)
    result = promtool("test", "rules", "rules.test.yaml", cwd=tmp_path)
    assert result.returncode != 0
    assert "PagelensQuerySLOLatency" in result.stdout + result.stderr
    assert "PagelensErrorBudgetBurn" in result.stdout + result.stderr


def test_the_dashboard_and_rules_read_only_series_the_code_exports(tmp_path: Path) -> None:
    api = create_app(Settings(data_dir=tmp_path / "data", api_warm_on_start=False)).test_client()
    exported = exposition_names(api.get("/metrics").get_data(as_text=True))
    result = DriftResult(False, "v", "t", "v", 0.85, [EncoderDrift("text", 3, 0.99, 0.98, [0, 3])])
    swept = {"documents": 1, "bytes": 10, "kept_recent": 0}
    for registry in (ingest_registry([{"status": "indexed", "pages": 2, "chunks": 5}], 1.0), drift_registry(result),
                     gc_registry(swept)):
        exported |= exposition_names(generate_latest(registry).decode())
    read = set().union(*map(series_names, dashboard_exprs()), *map(series_names, rule_exprs()))
    assert {"request_latency_seconds_bucket", "http_requests_total", "pagelens_ingest_pages"} <= read  # parsed
    assert read - recorded() - exported - KUBE_STATE_METRICS == set()
    assert all(series_names(e) for e in dashboard_exprs())


def test_the_service_monitor_selects_the_api_service_and_its_port() -> None:
    monitor = yaml.safe_load((MONITORING / "servicemonitor.yaml").read_text())
    service = yaml.safe_load((MONITORING.parent / "base" / "api-service.yaml").read_text())
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1" and monitor["kind"] == "ServiceMonitor"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]} and endpoint["path"] == "/metrics"
    kustomization = yaml.safe_load((MONITORING / "kustomization.yaml").read_text())
    assert set(kustomization["resources"]) == {"prometheus-rules.yaml", "servicemonitor.yaml"}
    assert kustomization["configMapGenerator"][0]["files"] == ["pagelens-dashboard.json"]


def test_series_names_reads_names_not_labels_or_functions() -> None:
    expr = ('sum by (route, le) (rate(request_latency_seconds_bucket{route=~"/v1/.*"}[5m])) / on (job) '
            'group_left foo:bar or vector(0)')
    assert series_names(expr) == {"request_latency_seconds_bucket", "foo:bar"}


@pytest.mark.integration
@needs_promtool
def test_a_real_prometheus_scrapes_the_api_and_evaluates_every_rule(sample_docs: Path, tmp_path: Path) -> None:
    with pushgateway(tmp_path) as gateway:
        env = {**os.environ, "PAGELENS_DATA_DIR": str(tmp_path / "data"), "PAGELENS_METRICS_PUSHGATEWAY": gateway,
               "PAGELENS_API_AUTH": "false", "OMP_THREAD_LIMIT": "1", "HF_HUB_OFFLINE": "1"}
        cli = [str(BIN / "pagelens")]
        subprocess.run([*cli, "ingest", str(sample_docs / OPS_DOC), "--namespace", "ops"], env=env, check=True,
                       capture_output=True, timeout=300)
        for _ in range(2):  # the first run takes the baseline, the second compares and pushes
            subprocess.run([*cli, "drift"], env=env, check=True, capture_output=True, timeout=300)
        subprocess.run([*cli, "gc"], env=env, check=True, capture_output=True, timeout=300)  # pushes its gauges
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        with running([*cli, "serve", "--port", str(port)], env, base, tmp_path / "serve.log"):
            targets = {"pagelens-api": f"127.0.0.1:{port}", "pushgateway": gateway}
            rules = write_rules(tmp_path, interval="1s")
            with prometheus(tmp_path, targets, rules, honor_labels={"pushgateway"}) as prom:
                for path in ("/v1/query", "/v1/search") * 2:
                    status, body = call(base + path, {"question": "What did the inspection find?", "namespace": "ops"})
                    assert status == 200, body
                    if path == "/v1/search":  # a route's series starts at its first count: rate() needs a second
                        wait_for(prom, 'count(request_latency_seconds_count{route=~"/v1/(query|search)"}) == 2')
                p95 = wait_for(prom, "pagelens:request_latency_seconds:p95_5m")
                assert 0 < float(p95[0]["value"][1]) < 60
                assert float(wait_for(prom, "pagelens:request_errors:ratio_rate5m")[0]["value"][1]) == 0
                (pages,) = wait_for(prom, "namespace:ingest_pages_per_second:last_run")
                assert pages["metric"]["namespace"] == "ops" and float(pages["value"][1]) > 0
                (text,) = wait_for(prom, 'pagelens_drift_median_cosine{encoder="text"}')
                assert float(text["value"][1]) > 0.99  # the same model as the baseline
                (swept,) = wait_for(prom, "pagelens_gc_last_success_timestamp_seconds")
                assert abs(time.time() - float(swept["value"][1])) < 600

                rules_state = get_json(f"{prom}/api/v1/rules")["data"]["groups"]
                evaluated = [r for g in rules_state for r in g["rules"]]
                assert len(evaluated) == len(rule_exprs())
                assert [(r["name"], r.get("lastError")) for r in evaluated if r["health"] != "ok"] == []
                firing = {r["name"] for r in evaluated if r.get("type") == "alerting" and r["state"] != "inactive"}
                assert firing == set()  # a healthy API, a clean ingest, no drift
                names = set(get_json(f"{prom}/api/v1/label/__name__/values")["data"])
                read = set().union(*map(series_names, dashboard_exprs()))
                assert read - KUBE_STATE_METRICS <= names  # every series a panel reads is in this Prometheus
                for expr in dashboard_exprs():
                    assert get_json(f"{prom}/api/v1/query", {"query": expr})["status"] == "success", expr


def wait_for(prom: str, query: str, deadline_s: float = 60.0) -> list[dict]:
    """The result of an instant query once it is non-empty (scrapes and rule evaluations run every second)."""
    deadline = time.monotonic() + deadline_s
    while True:
        result = get_json(f"{prom}/api/v1/query", {"query": query})["data"]["result"]
        if result and result[0]["value"][1] not in ("NaN",):
            return result
        assert time.monotonic() < deadline, f"{query} stayed empty for {deadline_s:g} s"
        time.sleep(1)

