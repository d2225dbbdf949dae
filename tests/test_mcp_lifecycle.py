"""How monitors, subscriptions and HTTP requests are kept within bounds: monitors end when their
caller is gone (cancelled, session ended, never read), legacy subscriptions name live monitors
only, and `mcp --http` caps request bodies and refuses side effects without a token."""

from __future__ import annotations

import warnings
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from makestream import config
from makestream.engine.alerts import AlertEvaluator
from makestream.mcp import service as service_module
from makestream.mcp.server import build_server
from makestream.mcp.service import monitor_uri
from makestream.sim import demo_world
from tests.mcp_helpers import Served, served

pytestmark = pytest.mark.anyio


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    return tmp_path / "config.toml"


async def _no_watch_left(s: Served) -> None:
    for _ in range(500):  # the watch ends within moments (10 s at most)
        if not s.service.watches:
            return
        await anyio.sleep(0.02)
    raise AssertionError(f"{len(s.service.watches)} watches still run")


# -- monitors --------------------------------------------------------------------------------


async def test_a_start_cancelled_before_its_id_was_returned_leaves_no_monitor(
    config_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with served(demo_world(), config_path) as s:
        scenario = s.service.client.scenario

        async def slow(*args: Any, **kwargs: Any) -> Any:
            await anyio.sleep(0.3)  # a slow Make: the watch is still opening
            return await scenario(*args, **kwargs)

        monkeypatch.setattr(s.service.client, "scenario", slow)
        alerts = AlertEvaluator(config.with_settings(config_path, {}))
        with anyio.move_on_after(0.05) as scope:  # the client cancels the call
            await s.service.start_monitor([104], None, alerts)
        assert scope.cancelled_caught
        assert s.service.monitors == {}
        await _no_watch_left(s)  # and nothing polls on its behalf


async def test_monitors_end_with_the_session_that_started_them(config_path: Path) -> None:
    async with served(demo_world(), config_path) as s:
        kept = await s.ok("start_monitoring", {"scenario_ids": [104]})  # protocol 2026-07-28
        async with Client(build_server(s.service), mode="legacy") as other:
            result = await other.call_tool("start_monitoring", {"scenario_ids": [101]})
            assert result.structured_content is not None
            mid = result.structured_content["monitor_id"]
            monitor = s.service.monitors[mid]
        with anyio.fail_after(10):
            await monitor.done.wait()
        assert mid not in s.service.monitors
        # A request of protocol 2026-07-28 is its own connection: its monitor stays.
        state = await s.ok("get_execution_state", {"monitor_id": kept["monitor_id"]})
        assert state["status"] == "running"


async def test_a_monitor_nobody_reads_is_stopped(config_path: Path) -> None:
    async with served(demo_world(), config_path) as s:
        read = (await s.ok("start_monitoring", {"scenario_ids": [104]}))["monitor_id"]
        unread = (await s.ok("start_monitoring", {"scenario_ids": [101]}))["monitor_id"]
        idle_s = s.service.monitor_idle_s
        assert idle_s == 30 * 60  # the default
        for mid in (read, unread):  # both started long ago
            s.service.monitors[mid].last_read -= idle_s + 1
        await s.ok("get_execution_state", {"monitor_id": read})
        await s.client.read_resource(monitor_uri(read))
        assert s.service.stop_idle() == [unread]
        assert set(s.service.monitors) == {read}
        text = (await s.call("get_execution_state", {"monitor_id": unread})).content[0]
        assert "does not exist" in getattr(text, "text", "")


async def test_stopped_monitors_do_not_count_toward_the_most(
    config_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(service_module, "MCP_MONITORS_MAX", 1)
    async with served(demo_world(), config_path) as s:
        first = (await s.ok("start_monitoring", {"scenario_ids": [104]}))["monitor_id"]
        assert (await s.call("start_monitoring", {"scenario_ids": [101]})).is_error
        monitor = s.service.monitors[first]
        assert monitor.watch is not None
        monitor.watch.stop("ended")  # closed, still readable
        with anyio.fail_after(10):
            await monitor.done.wait()
        assert (await s.ok("get_execution_state", {"monitor_id": first}))["status"] == "closed"
        await s.ok("start_monitoring", {"scenario_ids": [101]})


# -- legacy subscriptions --------------------------------------------------------------------


async def _subscribe(s: Served, uri: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # resources/subscribe is deprecated, not gone
        await s.client.subscribe_resource(uri)


async def test_subscriptions_name_running_monitors_only_and_are_capped(
    config_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from makestream import limits

    monkeypatch.setattr(limits, "MCP_SUBSCRIPTIONS_MAX", 1)
    async with served(demo_world(), config_path, mode="legacy") as s:
        for uri in ["makestream://monitors/nope/state", "https://example.com/x",
                    "file:///etc/passwd"]:
            with pytest.raises(MCPError, match="not the state of a running monitor"):
                await _subscribe(s, uri)
        one = (await s.ok("start_monitoring", {"scenario_ids": [104]}))["resource"]
        two = (await s.ok("start_monitoring", {"scenario_ids": [101]}))["resource"]
        await _subscribe(s, one)
        await _subscribe(s, one)  # again: still one
        with pytest.raises(MCPError, match="the most one session may have"):
            await _subscribe(s, two)


async def test_a_stopped_monitor_takes_its_subscribers_with_it(config_path: Path) -> None:
    async with served(demo_world(), config_path) as s:
        server = build_server(s.service)
        started = await s.ok("start_monitoring", {"scenario_ids": [104]})
        uri = started["resource"]
        server.legacy[uri] = {"peer": _Session()}  # type: ignore[dict-item]
        await s.ok("stop_monitoring", {"monitor_id": started["monitor_id"]})
        assert uri not in server.legacy


class _Session:
    """A subscriber's session: `stuck` ones never take a notification."""

    def __init__(self, stuck: bool = False) -> None:
        self.stuck = stuck
        self.heard: list[str] = []

    async def send_resource_updated(self, uri: str) -> None:
        if self.stuck:
            await anyio.sleep_forever()
        self.heard.append(uri)


async def test_one_stuck_subscriber_neither_delays_the_others_nor_stays(
    config_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from makestream.mcp import server as server_module

    monkeypatch.setattr(server_module, "NOTIFY_TIMEOUT_S", 0.2)
    async with served(demo_world(), config_path) as s:
        server = build_server(s.service)
        uri = (await s.ok("start_monitoring", {"scenario_ids": [104]}))["resource"]
        stuck, first, second = _Session(stuck=True), _Session(), _Session()
        server.legacy[uri] = {"a": first, "stuck": stuck, "b": second}  # type: ignore[dict-item]
        started = anyio.current_time()
        with anyio.fail_after(5):
            await server.notify_legacy(uri)
        assert anyio.current_time() - started < 1
        assert uri in first.heard and uri in second.heard  # (the monitor may notify too)
        assert set(server.legacy[uri]) == {"a", "b"}  # the stuck one was dropped


# -- HTTP ------------------------------------------------------------------------------------


@pytest.fixture
async def http(config_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[
        httpx.AsyncClient]:
    from makestream.mcp import http as mcp_http

    monkeypatch.setattr(mcp_http, "BODY_MAX", 4096)
    async with served(demo_world(), config_path) as s:
        server = build_server(s.service)
        app = mcp_http.http_app(server, mcp_http.HttpOptions("127.0.0.1", 8788))
        async with server.session_manager.run(), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8788",
            headers={"Accept": "application/json, text/event-stream"},
        ) as client:
            yield client


def _ping(padding: int = 0) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"_meta": {"pad": "x" *
                                                                              padding}}}


async def test_http_request_bodies_are_capped(http: httpx.AsyncClient) -> None:
    small = await http.post("/mcp", json=_ping())
    assert small.status_code != 413
    declared = await http.post("/mcp", json=_ping(10_000))
    assert declared.status_code == 413 and "larger than 4096 bytes" in declared.text

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it arrives
        for _ in range(10):
            yield b"x" * 1000

    streamed = await http.post("/mcp", content=chunks(),
                               headers={"Content-Type": "application/json"})
    assert streamed.status_code == 413


async def test_without_a_token_tools_with_side_effects_refuse(config_path: Path) -> None:
    from makestream.mcp.http import NO_TOKEN_REFUSAL

    async with served(demo_world(), config_path) as s:
        s.service.side_effects_refused = NO_TOKEN_REFUSAL  # as `mcp --http` sets it
        calls: list[tuple[str, dict[str, Any]]] = [
            ("stream_live_execution", {"scenario_id": 104, "run": True, "timeout_s": 5}),
            ("set_alert_thresholds", {"key": "error_rate", "value": 0.3}),
        ]
        for name, arguments in calls:
            result = await s.call(name, arguments)
            assert result.is_error
            text = getattr(result.content[0], "text", "")
            assert "--auth-token-file" in text and "\n" not in text
        assert not [r for r in s.zone.truth() if r.source == "manual"]
        assert not await anyio.Path(config_path).exists()
        # What only reads still works.
        await s.ok("get_scenario_state", {"scenario_id": 104})
