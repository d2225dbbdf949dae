"""The Alertmanager sink against real Alertmanagers (Debian package prometheus-alertmanager).

Two of them, an HA pair with clustering off, each on a free loopback port with its own storage
and a minimal configuration whose one receiver is a webhook on this test. makestream's sink
(built from the command-line options, as `watch` and `serve-sse` build it) raises an alert: both
Alertmanagers list it in `/api/v2/alerts` with a wall-clock `startsAt`; then resolves it: both
drop it from the active alerts and Alertmanager notifies the webhook that it is resolved.
Skipped without the binary unless CI is set: CI installs it (.ci/run).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import httpx
import orjson
import pytest
from test_server_alerts import _AmThread
from test_server_cli import free_port
from test_sinks import raised, resolved

from makestream.sinks import build_sinks, sink_options

BINARY = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
CONFIG = """\
route:
  receiver: test
  group_by: [alert_id]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: test
    webhook_configs:
      - url: {hook}/hook
        send_resolved: true
"""


@contextmanager
def alertmanager(directory: Path, hook: str) -> Iterator[str]:
    """A running Alertmanager; its base URL."""
    if BINARY is None:
        if os.environ.get("CI") == "true":
            pytest.fail("Alertmanager is missing, and CI must run this test (.ci/run installs "
                        "the Debian package prometheus-alertmanager)")
        pytest.skip("Alertmanager is not installed (Debian package prometheus-alertmanager)")
    directory.mkdir()
    config = directory / "alertmanager.yml"
    config.write_text(CONFIG.format(hook=hook))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [BINARY, f"--config.file={config}", f"--storage.path={directory / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=",
         "--log.level=warn"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                assert process.stderr is not None
                pytest.fail(f"Alertmanager did not start: {process.stderr.read().decode()}")
            time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        assert process.stderr is not None
        process.stderr.close()


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


async def _eventually(check: Any, within: float = 20.0) -> Any:
    with anyio.fail_after(within):
        # Polling: the state is Alertmanager's, in another process.
        while not (found := await check()):  # noqa: ASYNC110
            await anyio.sleep(0.1)
    return found


@pytest.mark.anyio
async def test_a_real_ha_pair_gets_the_alert_with_wall_clock_times_and_sees_it_resolved(
        tmp_path: Path) -> None:
    with _AmThread() as hook, ExitStack() as stack:
        urls = [stack.enter_context(alertmanager(tmp_path / name, hook.url))
                for name in ("am1", "am2")]
        errors: list[str] = []
        sinks = build_sinks(sink_options(alertmanagers=urls, alert_labels=["env=ci"]),
                            on_error=errors.append, generator_url="http://box:8787/")
        alert_id = "consecutive_failures:1"
        async with httpx.AsyncClient(timeout=5) as http:

            async def listed(url: str) -> list[dict[str, Any]]:
                answer = (await http.get(f"{url}/api/v2/alerts")).json()
                return [a for a in answer if a["labels"].get("alert_id") == alert_id]

            async with sinks[0], sinks[1]:
                before = time.time()
                for sink in sinks:
                    sink.offer(raised(1))
                for url in urls:
                    [alert] = await _eventually(lambda url=url: listed(url))
                    assert alert["status"]["state"] == "active"
                    assert alert["labels"] == {
                        "alertname": "makestream_consecutive_failures",
                        "rule": "consecutive_failures", "severity": "critical",
                        "alert_id": alert_id, "scenario_id": "1", "env": "ci",
                    }
                    assert alert["annotations"]["summary"] == "scenario 1: 3 runs in a row failed"
                    assert alert["generatorURL"] == "http://box:8787/"
                    # When makestream was told, by the wall clock (the event's ts is 2026-11-26).
                    assert before - 1 <= _epoch(alert["startsAt"]) <= time.time() + 1

                for sink in sinks:
                    sink.offer(resolved(1))
                for url in urls:
                    await _eventually(lambda url=url: _gone(listed, url))

            async def resolution() -> list[dict[str, Any]]:
                return [a for _, body in hook.posts for a in body["alerts"]
                        if a["labels"]["alert_id"] == alert_id and a["status"] == "resolved"]

            [ended, *_] = await _eventually(resolution)
        assert before - 1 <= _epoch(ended["endsAt"]) <= time.time() + 1
        assert any(a["status"] == "firing" for _, body in hook.posts for a in body["alerts"])
        assert errors == []


async def _gone(listed: Any, url: str) -> bool:
    return not await listed(url)



DEMO_CONFIG = """\
[scenarios.104.thresholds]
duration_max_s = { value = 6, severity = "warning" }
"""


@pytest.mark.slow
def test_a_demo_alert_shows_in_alertmanager_with_wall_clock_times_and_resolves(
        tmp_path: Path) -> None:
    # `watch --demo` on a clock 20 times faster than real time: the events' own times run
    # ahead of Alertmanager's clock, and the alert must still be dated by the wall clock.
    config = tmp_path / "config.toml"
    config.write_text(DEMO_CONFIG)
    with _AmThread() as hook, alertmanager(tmp_path / "am", hook.url) as url:
        env = {**os.environ, "MAKESTREAM_CONFIG": str(config), "NO_COLOR": "1"}
        env.pop("MAKESTREAM_CLOCK", None)
        before = time.time()
        done = subprocess.run(
            [sys.executable, "-m", "makestream", "watch", "--demo", "--speed", "20",
             "--alertmanager", url, "-n", "25", "-o", "ndjson", "--type", "alert.*"],
            env=env, capture_output=True, text=True, timeout=120, check=False,
        )
        after = time.time()
        assert done.returncode == 0, done.stderr
        events = [orjson.loads(line) for line in done.stdout.splitlines()]
        mine = [e for e in events if e.get("alert_id") == "duration_max_s:104"]
        kinds = [e["type"] for e in mine]
        assert "alert.raised" in kinds and "alert.resolved" in kinds, kinds
        # The events carry the demo's fast clock: minutes ahead of the wall clock by now.
        assert max(_epoch(e["ts"]) for e in mine) > after + 60

        def notified(status: str) -> list[dict[str, Any]]:
            return [a for _, body in hook.posts for a in body["alerts"]
                    if a["labels"]["alert_id"] == "duration_max_s:104" and a["status"] == status]

        deadline = time.monotonic() + 30
        while not notified("resolved") and time.monotonic() < deadline:
            time.sleep(0.1)
        [first, *_] = notified("firing")
        [ended, *_] = notified("resolved")
        for stamp in (first["startsAt"], ended["startsAt"], ended["endsAt"]):
            assert before - 1 <= _epoch(stamp) <= after + 1, stamp
