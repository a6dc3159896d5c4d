"""The monitoring rules as promtool and Prometheus read them, real Prometheus and Pushgateway servers, and the
metric names a PromQL expression reads."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from tests.llm_server import free_port
from tests.processes import stop_process

MONITORING = Path(__file__).resolve().parents[1] / "k8s" / "monitoring"
START_DEADLINE_S = 60.0
# PromQL words that look like metric names; anything else bare in an expression is a series name.
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool",
                "offset", "inf", "nan"}


def rule_groups() -> list[dict[str, Any]]:
    """spec.groups of the PrometheusRule: plain Prometheus rule groups."""
    return yaml.safe_load((MONITORING / "prometheus-rules.yaml").read_text())["spec"]["groups"]


def write_rules(target: Path, interval: str | None = None) -> Path:
    """rules.yml as Prometheus loads it; `interval` overrides every group's (a test cannot wait a minute)."""
    groups = [{**g, "interval": interval} if interval else g for g in rule_groups()]
    path = target / "rules.yml"
    path.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    return path


def dashboard_exprs() -> list[str]:
    dashboard = json.loads((MONITORING / "pagelens-dashboard.json").read_text())
    return [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]


def rule_exprs() -> list[str]:
    return [rule["expr"] for group in rule_groups() for rule in group["rules"]]


def series_names(expr: str) -> set[str]:
    """The metric (and recording-rule) names an expression reads."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges and subqueries
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)  # label lists
    names = set()
    for match in re.finditer(r"(?<![\w:.])([a-zA-Z_:][\w:]*)(\s*\()?", text):
        if not match.group(2) and match.group(1) not in PROMQL_WORDS:
            names.add(match.group(1))
    return names


def exposition_names(text: str) -> set[str]:
    """Series names in a Prometheus text exposition, histograms and counters expanded to what they expose."""
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()[:4]
            names |= {"histogram": {f"{name}_bucket", f"{name}_sum", f"{name}_count"},
                      "counter": {f"{name}_total" if not name.endswith("_total") else name}}.get(kind, {name})
    return names


def promtool(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["promtool", *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=120)


def get_json(url: str, params: dict[str, str] | None = None) -> Any:
    query = f"?{urllib.parse.urlencode(params)}" if params else ""
    with urllib.request.urlopen(url + query, timeout=10) as response:
        return json.loads(response.read())


def wait_http(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_DEADLINE_S
    while True:
        assert process.poll() is None, f"{process.args[0]} exited with {process.returncode}: {log.read_text()[-3000:]}"
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            assert time.monotonic() < deadline, f"{url} did not answer within {START_DEADLINE_S:g} s"
            time.sleep(0.3)


@contextmanager
def server(command: list[str], ready_url: str, log: Path) -> Iterator[None]:
    with log.open("wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
    try:
        wait_http(ready_url, process, log)
        yield
    finally:
        stop_process(process, timeout=15)


@contextmanager
def pushgateway(workdir: Path) -> Iterator[str]:
    """`prometheus-pushgateway` on 127.0.0.1; yields host:port."""
    address = f"127.0.0.1:{free_port()}"
    binary = shutil.which("prometheus-pushgateway") or "pushgateway"
    with server([binary, f"--web.listen-address={address}"], f"http://{address}/-/ready", workdir / "pushgateway.log"):
        yield address


@contextmanager
def prometheus(workdir: Path, targets: dict[str, str], rules: Path, honor_labels: set[str]) -> Iterator[str]:
    """A real Prometheus on 127.0.0.1 scraping `targets` (job -> host:port) every second; yields its URL."""
    config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"}, "rule_files": [str(rules)],
              "scrape_configs": [{"job_name": job, "honor_labels": job in honor_labels,
                                  "static_configs": [{"targets": [address]}]} for job, address in targets.items()]}
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
    address = f"127.0.0.1:{free_port()}"
    command = ["prometheus", f"--config.file={workdir / 'prometheus.yml'}", f"--storage.tsdb.path={workdir / 'tsdb'}",
               f"--web.listen-address={address}"]
    with server(command, f"http://{address}/-/ready", workdir / "prometheus.log"):
        yield f"http://{address}"
