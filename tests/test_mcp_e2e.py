"""`makestream mcp --demo` as a subprocess, driven by the SDK's client over stdio and over
Streamable HTTP; and the command's options."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from makestream.clock import Clock
from makestream.errors import UsageError


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def isolated_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "MAKESTREAM_CONFIG": str(tmp_path / "config.toml"), "NO_COLOR": "1",
           "MAKESTREAM_CLOCK": Clock(30).spec(), **extra}
    for name in ("MAKESTREAM_MCP_TOKEN", "MAKE_API_TOKEN"):
        if name not in extra:
            env.pop(name, None)
    return env


def makestream(*args: str) -> list[str]:
    return [sys.executable, "-m", "makestream", *args]


# -- options -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("127.0.0.1:8788", ("127.0.0.1", 8788)), ("localhost:0", ("localhost", 0)),
    ("[::1]:9000", ("::1", 9000)),
])
def test_http_addresses(text: str, expected: tuple[str, int]) -> None:
    from makestream.cli.mcp import parse_address

    assert parse_address(text) == expected


@pytest.mark.parametrize("text", ["8788", "host:", ":80", "host:99999", "host:8x", "h:123456"])
def test_bad_http_addresses_are_usage_errors(text: str) -> None:
    from makestream.cli.mcp import parse_address

    with pytest.raises(UsageError, match="expected HOST:PORT"):
        parse_address(text)


def test_options_follow_serve_sses_rules(tmp_path: Path) -> None:
    from makestream.cli.mcp import mcp_options

    assert mcp_options(http=None, auth_token_file=None, allow_host=[], env={}).host is None
    with pytest.raises(UsageError, match="reachable from other machines"):
        mcp_options(http="0.0.0.0:8788", auth_token_file=None, allow_host=[], env={})
    opts = mcp_options(http="0.0.0.0:8788", auth_token_file=None, allow_host=["Proxy.Example."],
                       env={"MAKESTREAM_MCP_TOKEN": " s3cret "})
    assert (opts.host, opts.port, opts.token, opts.allow_hosts) == \
        ("0.0.0.0", 8788, "s3cret", ["proxy.example"])
    token_file = tmp_path / "token"
    token_file.write_text("from-file\n")
    assert mcp_options(http="127.0.0.1:1", auth_token_file=token_file, allow_host=[],
                       env={}).token == "from-file"
    with pytest.raises(UsageError, match="go with --http"):
        mcp_options(http=None, auth_token_file=token_file, allow_host=[], env={})
    assert mcp_options(http=None, auth_token_file=None, allow_host=[],
                       env={}).monitor_idle_s == 1800
    assert mcp_options(http=None, auth_token_file=None, allow_host=[], env={},
                       monitor_idle="5m").monitor_idle_s == 300
    with pytest.raises(UsageError, match="--monitor-idle"):
        mcp_options(http=None, auth_token_file=None, allow_host=[], env={}, monitor_idle="soon")
    with pytest.raises(UsageError, match="--allow-host"):
        mcp_options(http="127.0.0.1:1", auth_token_file=None, allow_host=["a:80"], env={})


def test_refusals_before_serving_exit_2(tmp_path: Path) -> None:
    env = isolated_env(tmp_path)
    public = subprocess.run(makestream("mcp", "--demo", "--http", "0.0.0.0:1"), env=env,
                            capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert public.returncode == 2 and public.stdout == ""
    assert "reachable from other machines" in public.stderr
    tokenless = subprocess.run(makestream("mcp"), env={**env, "MAKE_ZONE": "eu1.make.com"},
                               capture_output=True, text=True,
                               timeout=30, stdin=subprocess.DEVNULL)
    assert tokenless.returncode == 2 and "no API token" in tokenless.stderr
    assert tokenless.stdout == ""  # stdout is the protocol's alone


# -- stdio ---------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.anyio
@pytest.mark.timeout(120)
async def test_stdio_with_the_sdk_client(tmp_path: Path) -> None:
    params = StdioServerParameters(command=sys.executable, args=["-m", "makestream", "mcp",
                                                                 "--demo"],
                                   env=isolated_env(tmp_path))
    progress: list[tuple[float, float | None, str | None]] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append((value, total, message))

    async with Client(params) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        assert "stream_live_execution" in names and len(names) == 8
        state = await client.call_tool("get_scenario_state", {"scenario_id": 101})
        assert not state.is_error and state.structured_content is not None
        assert state.structured_content["scenarios"][0]["scenario_id"] == 101
        # The webhook scenario runs every few seconds of the demo's clock.
        run = await client.call_tool("stream_live_execution",
                                     {"scenario_id": 104, "timeout_s": 40},
                                     progress_callback=on_progress)
        assert not run.is_error and run.structured_content is not None
        assert run.structured_content["status"] in ("success", "warning", "error")
        assert progress and progress[-1][0] == 100
        started = await client.call_tool("start_monitoring", {"scenario_ids": [104]})
        assert not started.is_error and started.structured_content is not None
        mid = started.structured_content["monitor_id"]
        stopped = await client.call_tool("stop_monitoring", {"monitor_id": mid})
        assert not stopped.is_error
        gone = await client.call_tool("get_execution_state", {"monitor_id": mid})
        assert gone.is_error


# -- Streamable HTTP -----------------------------------------------------------------------------


class HttpServer:
    def __init__(self, tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/mcp"
        self.process = subprocess.Popen(
            makestream("mcp", "--demo", "--http", f"127.0.0.1:{self.port}", *args),
            env=env or isolated_env(tmp_path), stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        assert self.process.stderr is not None
        line = self.process.stderr.readline().decode()
        if "listening on" not in line:
            self.process.kill()
            pytest.fail(f"makestream mcp --http did not start: {line}")
        assert self.url in line

    def close(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        code = self.process.wait(timeout=20)
        for stream in (self.process.stdout, self.process.stderr):
            assert stream is not None
            stream.close()
        return code


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[HttpServer]:
    server = HttpServer(tmp_path)
    yield server
    server.close()


def _post(url: str, **headers: str) -> httpx.Response:
    body: dict[str, Any] = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    return httpx.post(url, json=body, headers={"Accept": "application/json, text/event-stream",
                                               **headers}, timeout=10)


@pytest.mark.slow
@pytest.mark.anyio
@pytest.mark.timeout(120)
async def test_streamable_http_with_the_sdk_client(http_server: HttpServer) -> None:
    async with Client(http_server.url) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        assert "get_scenario_state" in names
        state = await client.call_tool("get_scenario_state", {"scenario_id": 104})
        assert not state.is_error and state.structured_content is not None
        flow = await client.call_tool("get_module_flow", {"scenario_id": 104})
        assert not flow.is_error and flow.structured_content is not None
        assert flow.structured_content["modules"] >= 1
        # Progress and resource updates reach an HTTP client too.
        progress: list[float] = []

        async def on_progress(value: float, total: float | None, message: str | None) -> None:
            progress.append(value)

        run = await client.call_tool("stream_live_execution",
                                     {"scenario_id": 104, "timeout_s": 40},
                                     progress_callback=on_progress)
        assert not run.is_error and progress and progress[-1] == 100
        # No token: any local user could connect, so nothing that starts a run or writes.
        for name, arguments in [
            ("stream_live_execution", {"scenario_id": 104, "run": True, "timeout_s": 5}),
            ("set_alert_thresholds", {"key": "error_rate", "value": 0.3}),
        ]:
            refusal = await client.call_tool(name, arguments)
            assert refusal.is_error and "--auth-token-file" in str(refusal.content)
        started = await client.call_tool("start_monitoring", {"scenario_ids": [104]})
        assert started.structured_content is not None
        uri = started.structured_content["resource"]
        with anyio.fail_after(40):
            async with client.listen(resource_subscriptions=[uri]) as subscription:
                async for event in subscription:
                    assert getattr(event, "uri", None) == uri
                    break
    # Without a token: a page whose name is pointed at 127.0.0.1 is refused (DNS rebinding).
    refused = await anyio.to_thread.run_sync(
        lambda: _post(http_server.url, Host="attacker.example"))
    assert refused.status_code == 421
    assert http_server.close() in (0, 130)


@pytest.mark.slow
@pytest.mark.anyio
@pytest.mark.timeout(120)
async def test_streamable_http_with_a_token(tmp_path: Path) -> None:
    import httpx2
    from mcp.client.streamable_http import streamable_http_client

    server = HttpServer(tmp_path, env=isolated_env(tmp_path, MAKESTREAM_MCP_TOKEN="s3cret"))
    try:
        bare = await anyio.to_thread.run_sync(lambda: _post(server.url))
        assert bare.status_code == 401 and bare.json() == {"error": "unauthorized"}
        wrong = await anyio.to_thread.run_sync(
            lambda: _post(server.url, Authorization="Bearer nope"))
        assert wrong.status_code == 401
        # With the token any Host is answered (a rebinding page has no token).
        other = await anyio.to_thread.run_sync(
            lambda: _post(server.url, Authorization="Bearer s3cret", Host="proxy.example"))
        assert other.status_code != 421
        async with httpx2.AsyncClient(headers={"Authorization": "Bearer s3cret"}) as http, \
                Client(streamable_http_client(server.url, http_client=http)) as client:
            result = await client.call_tool("list_alerts", {})
            assert not result.is_error
            assert result.structured_content == {"alerts": []}
    finally:
        server.close()
