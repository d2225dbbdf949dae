"""serve-sse's alerts: evaluated once by the upstream watch, streamed on /v1/events, listed in
/v1/state, counted in /metrics, and handed to the same sinks as `watch` (here an Alertmanager
sink posting to a local receiver). Also `serve-sse --demo --alertmanager` as a command.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest
from test_server import SseReader, sse_server, wait_for
from test_server_cli import _options, free_port, isolated_env, makestream
from test_sinks import Receiver

from makestream.config import parse
from makestream.engine.alerts import AlertEvaluator
from makestream.errors import UsageError
from makestream.sinks import AlertmanagerSink

# Every run is over the limit: each scenario raises `duration_max_s` with its first run.
ANY_RUN = "[thresholds]\nduration_max_s = { value = 0.001, severity = \"warning\" }\n"
RULE = "duration_max_s"


@pytest.mark.anyio
async def test_alerts_reach_the_stream_the_state_the_metrics_and_the_sink() -> None:
    evaluator = AlertEvaluator(parse(ANY_RUN))
    async with Receiver().running() as receiver:
        am = AlertmanagerSink(receiver.url, generator_url="http://box:8787/", resend_s=60)
        async with am, sse_server(watch={"alerts": evaluator},
                                  hub={"sinks": [am], "idle_stop_s": 0.2}) as srv:
            http = srv.http()
            async with http.stream("GET", "/v1/events?type=alert.*") as response:
                [first] = await SseReader(response).until(lambda evs: len(evs) >= 1)
            assert first.event == "alert.raised" and first.data["rule"] == RULE
            sid = first.data["scenario_id"]

            state = (await http.get(f"/v1/state?scenario={sid}")).json()
            mine = [a for a in state["alerts"] if a["alert_id"] == first.data["alert_id"]]
            assert [(a["rule"], a["severity"], a["scenario_id"]) for a in mine] == [
                (RULE, "warning", sid)]
            assert mine[0]["raised_at"] == first.data["ts"]
            assert {a["scenario_id"] for a in state["alerts"]} == {sid}  # the filter holds
            everything = (await http.get("/v1/state")).json()["alerts"]
            assert len(everything) == len(evaluator.active()) >= 1

            metrics = (await http.get("/metrics")).text
            line = next(x for x in metrics.splitlines()
                        if x.startswith(f'makestream_alerts_open{{rule="{RULE}"'))
            assert float(line.split()[-1]) >= 1

            # (The sink may post alerts raised before the stream's first in an earlier batch.)
            def posted() -> list[dict[str, Any]]:
                return [a for body in receiver.accepted for a in orjson.loads(body)]

            await wait_for(lambda: any(a["labels"]["alert_id"] == first.data["alert_id"]
                                       for a in posted()))
            assert {a["generatorURL"] for a in posted()} == {"http://box:8787/"}

            # With a sink listening, the upstream does not stop for want of SSE clients.
            await wait_for(lambda: srv.hub.client_count == 0)
            started = srv.hub.stats.upstream_starts
            await anyio.sleep(1.0)  # five times the idle stop
            assert srv.hub.running and srv.hub.stats.upstream_starts == started


def test_serve_takes_the_sink_options(tmp_path: Path) -> None:
    auth = tmp_path / "auth"
    auth.write_text("Bearer t0k")
    opts = _options(alertmanager=["http://am1:9093", "http://am2:9093"],
                    alertmanager_auth_file=auth, alert_label=["env=prod"],
                    webhook=["http://hook"], webhook_format="slack")
    assert opts.sinks is not None
    assert opts.sinks.alertmanager.urls == ("http://am1:9093", "http://am2:9093")
    assert opts.sinks.alertmanager.credentials.authorization == "Bearer t0k"
    assert opts.sinks.labels == {"env": "prod"}
    assert [w.format for w in opts.sinks.webhooks] == ["slack"]
    assert _options().sinks is None
    with pytest.raises(UsageError, match="--alert-label '9': not a Prometheus label name"):
        _options(alertmanager=["http://am"], alert_label=["9=x"])


@pytest.mark.slow
def test_serve_sse_demo_sends_alerts_with_wall_clock_times(tmp_path: Path) -> None:
    """The demo's clock runs fast (here 30x): Alertmanager must still get real times."""
    config = tmp_path / "makestream" / "config.toml"
    config.parent.mkdir()
    config.write_text(ANY_RUN)
    port = free_port()
    with _AmThread() as am:
        process = subprocess.Popen(
            makestream("serve-sse", "--demo", "--port", str(port), "--alertmanager", am.url,
                       "--alert-label", "env=demo"),
            env=isolated_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        try:
            deadline = time.monotonic() + 30
            while not am.posts and time.monotonic() < deadline and process.poll() is None:
                time.sleep(0.05)
            assert am.posts, process.stderr.read().decode() if process.poll() is not None else ""
            received_at = am.posts[0][0]
        finally:
            process.terminate()
            assert process.wait(timeout=15) == 0
            for stream in (process.stdout, process.stderr):
                assert stream is not None
                stream.close()
    alert = am.posts[0][1][0]
    assert alert["labels"]["env"] == "demo" and alert["labels"]["rule"] == RULE
    assert alert["generatorURL"] == f"http://127.0.0.1:{port}/"
    starts = _epoch(alert["startsAt"])
    assert received_at - 5 <= starts <= received_at + 1  # wall clock, not minutes ahead


def _epoch(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text).timestamp()


class _AmThread:
    """A stand-in Alertmanager in a thread: records (wall time, body) of each alerts post."""

    def __init__(self) -> None:
        import http.server
        import threading

        self.posts: list[tuple[float, Any]] = []
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                owner.posts.append((time.time(), orjson.loads(body)))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> _AmThread:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
