"""`makestream serve-sse` as a command: options, refusals, signals, and the live page in Chromium.

The server runs as `python -m makestream serve-sse --demo` with a fast `MAKESTREAM_CLOCK`; the page
test drives headless Chromium over the DevTools protocol on a pipe (`--remote-debugging-pipe`),
because `--dump-dom` snapshots the page at load, before any event has arrived.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from makestream.clock import Clock
from makestream.errors import UsageError

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
TOKEN = "page-test-token"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def makestream(*args: str) -> list[str]:
    return [sys.executable, "-m", "makestream", *args]


def isolated_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path), "NO_COLOR": "1",
           "MAKESTREAM_CLOCK": Clock(30).spec(), **extra}
    for name in ("MAKESTREAM_SSE_TOKEN", "MAKESTREAM_CONFIG", "MAKE_API_TOKEN"):
        if name not in extra:
            env.pop(name, None)
    return env


class Server:
    def __init__(self, process: subprocess.Popen[bytes], port: int) -> None:
        self.process, self.url = process, f"http://127.0.0.1:{port}"


def start_server(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> Server:
    port = free_port()
    process = subprocess.Popen(
        makestream("serve-sse", "--demo", "--port", str(port), *args),
        env=env or isolated_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return Server(process, port)
        except httpx.TransportError:
            pass
        if process.poll() is not None:
            pytest.fail(f"serve-sse exited: {process.stderr.read().decode()}")  # type: ignore[union-attr]
        time.sleep(0.1)
    process.kill()
    pytest.fail("serve-sse did not become ready")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = start_server(tmp_path)
    yield srv
    if srv.process.poll() is None:
        srv.process.kill()
    srv.process.wait(timeout=10)
    for stream in (srv.process.stdout, srv.process.stderr):
        assert stream is not None
        stream.close()


def read_events(response: httpx.Response) -> Iterator[dict[str, Any]]:
    """Events of an SSE response, as their data objects (framing is tested in test_server)."""
    for line in response.iter_lines():
        if line.startswith("data: "):
            yield json.loads(line[6:])


# -- options -------------------------------------------------------------------------------------


def _options(**kw: Any) -> Any:
    from makestream.cli.serve import serve_options

    values: dict[str, Any] = dict(
        scenarios=[], team=None, host="127.0.0.1", port=8787, auth_token_file=None,
        insecure_no_auth=False, allow_origin=[], max_clients=10_000, max_per_address=1000,
        idle_stop="60s", heartbeat="15s", send_timeout="10s", queue=1000, replay=10_000,
        interval="1s", api_limit=None, alerts=True, env={},
    )
    values.update(kw)
    return serve_options(**values)


def test_options_from_arguments(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("  from-file\n")
    opts = _options(host="0.0.0.0", auth_token_file=token_file, idle_stop="0",
                    allow_origin=["https://a.example/"], heartbeat="500ms")
    assert (opts.token, opts.idle_stop_s, opts.allow_origins, opts.heartbeat_s) == (
        "from-file", None, ["https://a.example"], 0.5)
    assert _options(env={"MAKESTREAM_SSE_TOKEN": "from-env"}).token == "from-env"
    assert _options(host="::1").token is None  # loopback needs no token
    assert _options(host="0.0.0.0", insecure_no_auth=True).token is None


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"host": "0.0.0.0"}, "--host 0.0.0.0 is reachable from other machines"),
        ({"host": "example.com"}, "--host example.com is reachable from other machines"),
        ({"allow_origin": ["example.com"]}, "--allow-origin 'example.com'"),
        ({"send_timeout": "0s"}, "--heartbeat and --send-timeout must be more than 0s"),
        ({"idle_stop": "soon"}, "--idle-stop: 'soon' is not a duration"),
    ],
)
def test_option_mistakes(kw: dict[str, Any], message: str) -> None:
    with pytest.raises(UsageError) as caught:
        _options(**kw)
    assert caught.value.message.startswith(message)


def test_refuses_to_bind_all_interfaces_without_a_token(tmp_path: Path) -> None:
    done = subprocess.run(makestream("serve-sse", "--demo", "--host", "0.0.0.0"),
                          env=isolated_env(tmp_path), capture_output=True, text=True,
                          timeout=30, check=False)
    assert done.returncode == 2
    assert done.stdout == ""
    [line] = done.stderr.splitlines()
    assert line.startswith("makestream: error: --host 0.0.0.0 is reachable from other machines")


def test_help_names_the_token_options() -> None:
    done = subprocess.run(makestream("serve-sse", "--help"), capture_output=True, text=True,
                          timeout=30, check=False, env={**os.environ, "COLUMNS": "200"})
    assert done.returncode == 0
    for option in ("--auth-token-file", "MAKESTREAM_SSE_TOKEN", "--make-token-file",
                   "MAKE_API_TOKEN", "--insecure-no-auth", "--allow-origin", "--max-clients",
                   "--max-per-address", "--idle-stop"):
        assert option in done.stdout


# -- signals -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_sigterm_closes_every_stream_and_exits_cleanly(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=20) as http, \
            http.stream("GET", "/v1/events") as one, \
            http.stream("GET", "/v1/events?type=execution.finished") as two:
        streams = [read_events(one), read_events(two)]
        next(streams[0])  # both are connected and streaming
        server.process.send_signal(signal.SIGTERM)
        for events in streams:
            received = list(events)  # ends when the server ends the response
            assert received[-1]["type"] == "stream.closed"
            assert received[-1]["reason"] == "server shutting down"
    assert server.process.wait(timeout=15) == 0
    assert server.process.stderr is not None
    stderr = server.process.stderr.read().decode()
    assert stderr.startswith("makestream serve-sse: listening on http://127.0.0.1:")
    assert "Traceback" not in stderr and len(stderr.splitlines()) == 1


# -- the live page -------------------------------------------------------------------------------


class DevTools:
    """Chromium's DevTools protocol over `--remote-debugging-pipe` (JSON, NUL-terminated)."""

    def __init__(self, url: str) -> None:
        assert CHROMIUM is not None
        to_chrome_r, self._write = os.pipe()
        self._read, from_chrome_w = os.pipe()

        def pipes_at_3_and_4() -> None:
            os.dup2(to_chrome_r, 3)
            os.dup2(from_chrome_w, 4)

        self.process = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
             "--disable-background-networking", "--no-first-run", "--remote-debugging-pipe",
             "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            pass_fds=(3, 4), preexec_fn=pipes_at_3_and_4,
        )
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buffer = b""
        self._id = 0
        target = self.call("Target.createTarget", url=url)["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target,
                                 flatten=True)["sessionId"]

    def call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        self._id += 1
        message: dict[str, Any] = {"id": self._id, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        os.write(self._write, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + 20
        while True:
            while b"\0" not in self._buffer:
                left = deadline - time.monotonic()
                ready, _, _ = select.select([self._read], [], [], max(0.0, left))
                assert ready, f"no answer to {method}"
                chunk = os.read(self._read, 1 << 16)
                assert chunk, "chromium closed the pipe"
                self._buffer += chunk
            raw, _, self._buffer = self._buffer.partition(b"\0")
            reply = json.loads(raw)
            if reply.get("id") == self._id:
                assert "error" not in reply, reply["error"]
                return dict(reply["result"])

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", self.session, expression=expression,
                           returnByValue=True)
        return result["result"].get("value")

    def close(self) -> None:
        with contextlib.suppress(AssertionError, OSError):
            self.call("Browser.close")
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._read)
        os.close(self._write)


@pytest.mark.slow
def test_live_page_shows_a_finished_execution_in_chromium(tmp_path: Path) -> None:
    if CHROMIUM is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is required under CI (.ci/run installs it)")
        pytest.skip("chromium is not installed (apt-get install chromium); CI runs this test")
    # With a token, as a deployment would be: the page passes ?access_token= on to EventSource.
    srv = start_server(tmp_path, env=isolated_env(tmp_path, MAKESTREAM_SSE_TOKEN=TOKEN))
    try:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        with httpx.Client(base_url=srv.url, timeout=20, headers=headers) as http, \
                http.stream("GET", "/v1/events") as response:
            events = read_events(response)
            first = next(events)
            done = next(e for e in events if e["type"] == "execution.finished")
        # From a cursor before that run ended, the page gets it from the replay at once.
        page = f"{srv.url}/?access_token={TOKEN}&cursor={first['cursor']}"
        browser = DevTools(page)
        try:
            selector = f'tr.finished[data-execution-id="{done["execution_id"]}"]'
            probe = (f"(() => {{ const row = document.querySelector('{selector}');"
                     " return row ? row.dataset.status + '|' + row.textContent : ''; })()")
            deadline = time.monotonic() + 20
            shown = ""
            while not shown and time.monotonic() < deadline:
                shown = browser.evaluate(probe) or ""
                time.sleep(0.2)
            assert shown, "the finished execution never appeared on the page"
            status, _, text = shown.partition("|")
            assert status == done["status"]
            assert done["scenario_name"] in text and done["execution_id"] in text
            assert browser.evaluate("document.getElementById('connection').dataset.state") \
                == "open"
        finally:
            browser.close()
    finally:
        srv.process.send_signal(signal.SIGTERM)
        assert srv.process.wait(timeout=15) == 0
        for stream in (srv.process.stdout, srv.process.stderr):
            assert stream is not None
            stream.close()


def _wait_for(browser: DevTools, expression: str, timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = browser.evaluate(expression)
        if value:
            return value
        time.sleep(0.2)
    return None


@pytest.mark.slow
def test_live_page_loads_the_state_first_with_its_open_alert_and_names_a_missing_token(
    tmp_path: Path,
) -> None:
    if CHROMIUM is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is required under CI (.ci/run installs it)")
        pytest.skip("chromium is not installed (apt-get install chromium); CI runs this test")
    # Any run breaks this threshold, so an alert opens with the first run that ends.
    config = tmp_path / "makestream" / "config.toml"
    config.parent.mkdir()
    config.write_text('[thresholds]\nduration_max_s = { value = 0.001, severity = "warning" }\n')
    srv = start_server(tmp_path, "--store", str(tmp_path / "history.db"),
                       env=isolated_env(tmp_path, MAKESTREAM_SSE_TOKEN=TOKEN))
    try:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        state: dict[str, Any] = {}
        trend: dict[str, Any] = {}
        deadline = time.monotonic() + 30
        while not (state.get("alerts") and trend.get("scenarios")) \
                and time.monotonic() < deadline:
            state = httpx.get(f"{srv.url}/v1/state", headers=headers, timeout=10).json()
            trend = httpx.get(f"{srv.url}/v1/trend", headers=headers, timeout=10).json()
            time.sleep(0.2)
        assert state.get("alerts"), "no alert opened"
        assert trend.get("scenarios"), "no run reached the history store"
        alert = state["alerts"][0]
        # The alert was raised before the page existed: only /v1/state can tell it.
        browser = DevTools(f"{srv.url}/?access_token={TOKEN}")
        try:
            probe = (f"(() => {{ const li = document.querySelector("
                     f"'#alerts li[data-alert-id=\"{alert['alert_id']}\"]');"
                     " return li ? li.textContent : ''; })()")
            shown = _wait_for(browser, probe)
            # Its figures may have moved on since (a re-notification); its subject has not.
            subject = alert["message"].partition(":")[0]
            assert shown and shown.startswith(f"{alert['severity']}: {subject}:")
            rows = browser.evaluate(
                "[...document.querySelectorAll('#scenarios tr')].map(r =>"
                " [Number(r.dataset.scenarioId), r.cells[0].textContent, r.cells[2].textContent])")
            by_id = {sid: (name, rate) for sid, name, rate in rows}
            assert set(by_id) >= {s["scenario_id"] for s in state["scenarios"]}
            rated = [s for s in state["scenarios"] if s["success_rate"] is not None]
            assert rated
            for s in rated:
                # From the page's own /v1/state, a moment later: runs may have ended since.
                name, rate = by_id[s["scenario_id"]]
                assert name == s["name"]
                percent, _, sample = rate.partition("% of ")
                assert 0 <= int(percent) <= 100 and int(sample) > 0
            # Each scenario with stored runs has its trend drawn: bars, and a title per day.
            stored = {t["scenario_id"]: sum(d["runs"] for d in t["days"])
                      for t in trend["scenarios"]}
            drawn = _wait_for(browser, (
                "(() => { const out = {}; for (const r of document.querySelectorAll("
                "'#scenarios tr')) { const td = r.cells[7]; if (td.querySelector('rect.runs'))"
                " out[r.dataset.scenarioId] = td.querySelector('title').textContent; }"
                " return Object.keys(out).length ? out : null; })()"))
            assert drawn and set(map(int, drawn)) >= {sid for sid, n in stored.items() if n}
            assert all(" runs, " in title for title in drawn.values())
            # The status filter hides the other finished runs; times do not wrap.
            assert _wait_for(browser, "document.querySelectorAll('#finished tr').length > 0")
            browser.evaluate("(() => { const s = document.getElementById('filter-status');"
                             " s.value = 'error'; s.dispatchEvent(new Event('change')); })()")
            assert browser.evaluate(
                "[...document.querySelectorAll('#finished tr')]"
                ".every(r => r.hidden === (r.dataset.status !== 'error'))")
            assert browser.evaluate(
                "getComputedStyle(document.querySelector('#finished td.time')).whiteSpace"
            ) == "nowrap"
            zone = browser.evaluate("document.getElementById('zone').textContent")
            assert zone.startswith("times in ") and "UTC" in zone
            assert _wait_for(
                browser, "document.getElementById('connection').dataset.state === 'open'")
        finally:
            browser.close()
        # Without the token the page says what is missing and how to give it.
        browser = DevTools(f"{srv.url}/")
        try:
            said = _wait_for(browser, "(() => { const c = document.getElementById('connection');"
                                      " return c.dataset.state === 'closed' ? c.textContent : ''"
                                      " })()")
            assert said and "token" in said and "access_token=" in said
        finally:
            browser.close()
    finally:
        srv.process.send_signal(signal.SIGTERM)
        assert srv.process.wait(timeout=15) == 0
        for stream in (srv.process.stdout, srv.process.stderr):
            assert stream is not None
            stream.close()
