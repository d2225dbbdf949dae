"""A client nobody here wrote: the MCP Inspector's CLI against `makestream mcp --demo`.

CI installs the Inspector ahead into `.cache/inspector` (`.ci/run`), so the test downloads
nothing; elsewhere it runs the same version through npx. Skipped only where Node is absent.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from makestream.clock import Clock

INSPECTOR = "@modelcontextprotocol/inspector@2.12.0"  # as .ci/run installs it
LOCAL = Path(__file__).resolve().parent.parent / ".cache" / "inspector" / "node_modules" / ".bin"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


def inspector() -> list[str]:
    local = LOCAL / "mcp-inspector"
    node = shutil.which("node")
    if node is not None and local.exists():
        return [node, str(local)]
    npx = shutil.which("npx")
    if node is None or npx is None:
        pytest.skip("Node.js (node and npx) is not installed")
    return [npx, "--yes", INSPECTOR]


@pytest.fixture(scope="module")
def npm_cache() -> Path:
    """npx's cache, kept in the clone's (ignored) .cache/: npx fetches the Inspector once, not
    once per test (each test's HOME is its own tmp_path, so npx's default cache would start
    empty every time) nor once per run."""
    cache = Path(__file__).resolve().parent.parent / ".cache" / "npm"
    cache.mkdir(parents=True, exist_ok=True)
    return cache


@pytest.fixture
def run_inspector(tmp_path: Path, npm_cache: Path) -> Any:
    def run(*args: str, status: int = 0) -> Any:
        return _run_inspector(tmp_path, npm_cache, *args, status=status)
    return run


def _run_inspector(tmp_path: Path, npm_cache: Path, *args: str, status: int = 0) -> Any:
    env = {**os.environ, "HOME": str(tmp_path), "MAKESTREAM_CONFIG": str(tmp_path / "c.toml"),
           "MAKESTREAM_CLOCK": Clock(30).spec(), "NO_COLOR": "1",
           "npm_config_cache": str(npm_cache)}
    env.pop("MAKE_API_TOKEN", None)
    done = subprocess.run(
        [*inspector(), "--cli", sys.executable, "-m", "makestream", "mcp", "--demo", *args],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=150,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == status, done.stderr[-2000:] + done.stdout[-2000:]
    return json.loads(done.stdout)


def test_the_inspector_lists_the_tools(run_inspector: Any) -> None:
    listed = run_inspector("--method", "tools/list")
    tools = {tool["name"]: tool for tool in listed["tools"]}
    assert set(tools) == {
        "stream_live_execution", "start_monitoring", "get_execution_state", "stop_monitoring",
        "get_scenario_state", "get_module_flow", "list_alerts", "set_alert_thresholds",
    }
    for tool in tools.values():
        assert tool["inputSchema"]["type"] == "object" and "outputSchema" in tool


def test_the_inspector_calls_get_scenario_state(run_inspector: Any) -> None:
    result = run_inspector("--method", "tools/call", "--tool-name",
                           "get_scenario_state", "--tool-arg", "scenario_id=101")
    assert not result.get("isError")
    [scenario] = result["structuredContent"]["scenarios"]
    assert scenario["scenario_id"] == 101 and scenario["name"]
    assert json.loads(result["content"][0]["text"]) == result["structuredContent"]


def test_the_inspector_sees_an_unknown_scenario_as_a_tool_error(run_inspector: Any) -> None:
    # The Inspector exits 5 on a result with isError (a protocol error would be another code).
    result = run_inspector("--method", "tools/call", "--tool-name",
                           "get_scenario_state", "--tool-arg", "scenario_id=999", status=5)
    assert result["isError"] is True
    assert "not found" in result["content"][0]["text"].lower()
