"""/metrics as Prometheus reads it, and the contrib files built on it.

The exposition of a busy server (runs, alerts, 429s) is checked by the real `promtool check
metrics` (Debian package `prometheus`), the alerting rules in contrib/prometheus by `promtool
check rules`, and every query of the Grafana dashboard by `promtool` too (as recording rules, with
Grafana's variables filled in). Every metric name the two files mention must be in /metrics.
Without promtool these tests are skipped, unless CI is set: CI installs it (.ci/run).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from test_server import SseReader, count_finished, sse_server, wait_for
from test_server_alerts import ANY_RUN

from makestream import __version__
from makestream.config import parse
from makestream.engine.alerts import AlertEvaluator

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "contrib" / "prometheus" / "makestream.rules.yml"
DASHBOARD = ROOT / "contrib" / "grafana" / "makestream.json"
PROMTOOL = shutil.which("promtool")


def promtool(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    if PROMTOOL is None:
        if os.environ.get("CI") == "true":
            pytest.fail("promtool is missing, and CI must run this test (.ci/run installs the "
                        "Debian package prometheus)")
        pytest.skip("promtool is not installed (Debian package prometheus)")
    return subprocess.run([PROMTOOL, *args], input=stdin.decode() if stdin else None,
                          capture_output=True, text=True, timeout=30, check=False)


@pytest.fixture(scope="module")
def exposition() -> str:
    """/metrics of a server that has seen runs, alerts, 429s and an SSE client."""
    import anyio

    async def scrape() -> str:
        evaluator = AlertEvaluator(parse(ANY_RUN))
        async with sse_server(watch={"alerts": evaluator}) as srv:
            srv.zone.faults.rate_429 = 0.2
            http = srv.http()
            async with http.stream("GET", "/v1/events") as response:
                await SseReader(response).until(count_finished(3))
            await wait_for(lambda: (srv.metrics.registry.get_sample_value(
                "makestream_api_throttled_total") or 0) > 0)
            srv.metrics.sink_errors.labels("alertmanager").inc()  # as serve-sse's sinks do
            response = await http.get("/metrics")
            assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
            return response.text

    return anyio.run(scrape)


def names_in(text: str) -> set[str]:
    """Metric and family names of an exposition: every sample's, and every # TYPE line's."""
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            names.add(line.split()[2])
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


# -- /metrics --------------------------------------------------------------------------------------


def test_promtool_finds_nothing_to_lint_in_metrics(exposition: str) -> None:
    result = promtool("check", "metrics", stdin=exposition.encode())
    assert result.returncode == 0, result.stdout + result.stderr
    assert (result.stdout + result.stderr).strip() == ""


def test_metrics_follow_the_conventions(exposition: str) -> None:
    names = names_in(exposition)
    assert not [n for n in names if n.endswith("_created")]
    assert f'makestream_build_info{{version="{__version__}"}} 1.0' in exposition
    assert {"process_cpu_seconds_total", "process_resident_memory_bytes", "python_info"} <= names
    # Counters in base units; of the per-minute gauges only the configured budget is left.
    assert [n for n in names if "minute" in n] == ["makestream_api_budget_per_minute"]
    assert re.search(r'makestream_api_requests_total\{code="429",endpoint="/[a-z{}/]+",'
                     r'method="GET"\} \d', exposition)
    assert "status=" not in re.sub(r"makestream_executions_total\{[^}]*\}", "", exposition)
    assert 'makestream_alerts_open{rule="duration_max_s",severity="warning"}' in exposition
    assert "makestream_detection_latency_seconds_bucket{le=" in exposition


# -- contrib ---------------------------------------------------------------------------------------


def dashboard_queries() -> list[str]:
    board = json.loads(DASHBOARD.read_text())
    queries = [t["expr"] for p in board["panels"] for t in p["targets"]]
    for var in board["templating"]["list"]:
        if var["type"] == "query":
            queries.append(var["definition"])
    return queries


def test_promtool_accepts_the_alerting_rules() -> None:
    result = promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 8 rules found" in result.stdout


def test_promtool_accepts_every_dashboard_query(tmp_path: Path) -> None:
    queries = [q for q in dashboard_queries() if not q.startswith("label_values(")]
    filled = [q.replace("$__rate_interval", "5m").replace('"$instance"', '".*"')
              for q in queries]
    assert not [q for q in filled if "$" in q]
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{n}", "expr": q} for n, q in enumerate(filled)]}]}
    path = tmp_path / "dashboard.rules.yml"
    path.write_text(json.dumps(rules))  # JSON is YAML
    result = promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_metric_the_dashboard_and_rules_name_is_exported(exposition: str) -> None:
    mentioned = set(re.findall(r"\bmakestream_[a-z0-9_]+", RULES.read_text()))
    for query in dashboard_queries():
        mentioned |= set(re.findall(r"\bmakestream_[a-z0-9_]+", query))
    exported = names_in(exposition)
    assert mentioned and mentioned - exported == set()
    # What the issue asks the dashboard to show is there.
    for name in ("makestream_executions_total", "makestream_detection_latency_seconds_bucket",
                 "makestream_api_budget_per_minute", "makestream_api_throttled_total",
                 "makestream_sse_clients", "makestream_alerts_open"):
        assert name in mentioned


def test_the_dashboard_is_well_formed() -> None:
    board: dict[str, Any] = json.loads(DASHBOARD.read_text())
    assert board["uid"] == "makestream" and board["schemaVersion"] >= 36
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        assert panel["title"] and panel["targets"], panel
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert [t["refId"] for t in panel["targets"]] == [chr(65 + i) for i in
                                                          range(len(panel["targets"]))]
    names = [v["name"] for v in board["templating"]["list"]]
    assert names == ["datasource", "instance"]
