"""`makestream mcp` in process: every tool through the SDK's own client, against the simulator.

The server runs on an in-process zone (`mcp_helpers.served`) at a fast clock; the client is the
SDK's `Client`, connected in process (protocol 2026-07-28, and the earlier handshake protocol
where the two differ: resource subscriptions).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import anyio
import mcp_types
import pytest

from makestream.mcp.service import monitor_uri
from makestream.sim import demo_world
from tests.mcp_helpers import Served, follow_world, served
from tests.worlds import outcome_world

pytestmark = pytest.mark.anyio

TOOLS = {"stream_live_execution", "start_monitoring", "get_execution_state", "stop_monitoring",
         "get_scenario_state", "get_module_flow", "list_alerts", "set_alert_thresholds"}


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    return tmp_path / "config.toml"


def _error_text(result: mcp_types.CallToolResult) -> str:
    assert result.is_error
    [block] = result.content
    assert isinstance(block, mcp_types.TextContent)
    return block.text


async def test_every_tool_has_an_input_and_an_output_schema(config_path: Path) -> None:
    async with served(demo_world(), config_path) as s:
        tools = (await s.client.list_tools()).tools
        assert {t.name for t in tools} == TOOLS
        for tool in tools:
            assert tool.input_schema["type"] == "object"
            assert tool.output_schema is not None and tool.output_schema["type"] == "object"
            assert tool.description and not tool.description.startswith(" ")
        templates = (await s.client.list_resource_templates()).resource_templates
        assert [t.uri_template for t in templates] == ["makestream://monitors/{monitor_id}/state"]


async def test_an_idle_server_makes_no_request(config_path: Path) -> None:
    async with served(demo_world(), config_path) as s:
        await s.client.list_tools()
        await anyio.sleep(0.5)  # 25 simulated seconds
        assert s.zone.request_count() == 0


async def test_stream_live_execution_sends_progress_then_the_result(config_path: Path) -> None:
    progress: list[tuple[float, float | None, str | None]] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append((value, total, message))

    async with served(follow_world(duration=30), config_path) as s:
        result = await s.ok("stream_live_execution", {"scenario_id": 401, "timeout_s": 30},
                            progress_callback=on_progress)
        truth = {r.execution_id: r for r in s.zone.truth()}
    record = truth[result["execution_id"]]
    assert result["status"] == record.status == "success"
    assert result["operations"] == record.operations
    assert result["centicredits"] == record.centicredits
    assert result["credits"] == record.centicredits / 100
    assert abs(result["duration_ms"] / 1000 - (record.ended_at - record.started_at)) < 0.01
    assert result["url"].endswith(f"/scenarios/401/logs/{record.execution_id}")
    assert [m["module_id"] for m in result["modules"]] == [1, 2, 3]
    assert result["continue_with"] is None
    # Several reports while it ran, each further on, with a percent and ETA by history; the
    # last one says how it ended.
    values = [v for v, _, _ in progress]
    assert len(progress) >= 4 and values == sorted(set(values))
    running = [m for _, total, m in progress[1:-1] if total == 100]
    assert running and all("ETA" in (m or "") or "due now" in (m or "") for m in running)
    assert any("% (" in (m or "") and "history" in (m or "") for m in running)
    assert progress[-1][0] == 100 and "success" in (progress[-1][2] or "")


async def test_a_run_started_by_the_tool_reports_its_error_and_cause(config_path: Path) -> None:
    async with served(follow_world(), config_path) as s:
        result = await s.ok("stream_live_execution",
                            {"scenario_id": 402, "run": True, "timeout_s": 30})
        [record] = [r for r in s.zone.truth() if r.source == "manual"]
    assert result["execution_id"] == record.execution_id
    assert result["status"] == "error"
    assert result["error"]["message"] and result["error"]["cause_module"] == "json:ParseJSON"
    statuses = {m["module_id"]: m["status"] for m in result["modules"]}
    assert statuses[2] == "error"


async def test_a_run_that_outlasts_timeout_returns_running_with_a_way_on(
    config_path: Path,
) -> None:
    async with served(outcome_world(duration=600), config_path, speed=20) as s:
        first = await s.ok("stream_live_execution",
                           {"scenario_id": 201, "run": True, "timeout_s": 1.5})
        assert first["status"] == "running"
        eid = first["execution_id"]
        assert first["continue_with"] == {"scenario_id": 201, "execution_id": eid}
        again = await s.ok("stream_live_execution", {**first["continue_with"], "timeout_s": 1})
        assert again["status"] == "running" and again["execution_id"] == eid
        # Nothing was started twice.
        assert len([r for r in s.zone.truth() if r.source == "manual"]) == 1


async def test_an_execution_that_ended_is_reported_from_its_log(config_path: Path) -> None:
    async with served(follow_world(), config_path) as s:
        await anyio.sleep(0.1)
        past = [r for r in s.zone.truth() if r.scenario_id == 401
                and r.ended_at < s.zone.clock.now()][-1]
        result = await s.ok("stream_live_execution", {"scenario_id": 401,
                                                      "execution_id": past.execution_id})
    assert result["status"] == past.status and result["operations"] == past.operations


async def test_get_scenario_state_is_the_state_document(config_path: Path) -> None:
    async with served(demo_world(), config_path) as s:
        one = await s.ok("get_scenario_state", {"scenario_id": 101, "last": 3})
        team = await s.ok("get_scenario_state", {"team_id": 1})
    [scenario] = one["scenarios"]
    assert scenario["scenario_id"] == 101 and len(scenario["last_executions"]) == 3
    assert one["budget"]["limit_per_min"] > 0
    assert {x["team_id"] for x in team["scenarios"]} == {1} and len(team["scenarios"]) > 1


async def test_get_module_flow_gives_text_and_structure(config_path: Path) -> None:
    async with served(follow_world(), config_path) as s:
        flow = await s.ok("get_module_flow", {"scenario_id": 401})
        done = await s.ok("stream_live_execution",
                          {"scenario_id": 402, "run": True, "timeout_s": 30})
        ran = await s.ok("get_module_flow", {"scenario_id": 402,
                                             "execution_id": done["execution_id"]})
    assert [n["id"] for n in flow["flow"]] == [1, 2, 3] and flow["modules"] == 3
    assert "http · ActionSendData" in flow["text"] and "3 modules" in flow["text"]
    assert all(n["result"] is None for n in flow["flow"])
    assert ran["execution_id"] == done["execution_id"]
    assert ran["flow"][1]["result"]["status"] == "error"
    assert "✗" in ran["text"]


async def test_monitors_hand_out_each_run_once_and_stop(config_path: Path) -> None:
    async with served(demo_world(), config_path) as s:
        start = s.zone.clock.now()
        started = await s.ok("start_monitoring", {"scenario_ids": [104, 101]})
        mid = started["monitor_id"]
        assert started["resource"] == monitor_uri(mid)
        assert sorted(started["scenario_ids"]) == [101, 104]
        seen: list[dict[str, Any]] = []
        for _ in range(6):
            await anyio.sleep(1)
            state = await s.ok("get_execution_state", {"monitor_id": mid})
            assert state["status"] == "running" and state["dropped"] == 0
            seen += state["finished"]
        end = s.zone.clock.now()
        stopped = await s.ok("stop_monitoring", {"monitor_id": mid})
        truth = {r.execution_id: r for r in s.zone.truth()}
    assert stopped["dropped"] == 0
    seen += stopped["unread"]  # a run may end between the last read and the stop
    ids = [r["execution_id"] for r in seen]
    assert len(ids) == len(set(ids)) == stopped["finished"]
    # Every run of the two that ended well inside the window was handed out.
    expected = {e for e, r in truth.items() if r.scenario_id in (101, 104)
                and start + 5 <= r.ended_at <= end - 60}
    assert expected and expected <= set(ids)
    for run in seen:
        assert run["status"] == truth[run["execution_id"]].status


async def test_stopping_hands_out_the_runs_not_yet_read(config_path: Path) -> None:
    async with served(follow_world(), config_path) as s:
        mid = (await s.ok("start_monitoring", {"scenario_ids": [402]}))["monitor_id"]
        done = await s.ok("stream_live_execution",
                          {"scenario_id": 402, "run": True, "timeout_s": 30})
        for _ in range(100):  # the monitor sees the end within a moment; reading it hands none
            read = await s.client.read_resource(monitor_uri(mid))
            [contents] = read.contents
            assert isinstance(contents, mcp_types.TextResourceContents)
            if done["execution_id"] in contents.text:
                break
            await anyio.sleep(0.2)
        stopped = await s.ok("stop_monitoring", {"monitor_id": mid})
    assert [r["execution_id"] for r in stopped["unread"]] == [done["execution_id"]]
    assert stopped["finished"] == 1 and stopped["dropped"] == 0


async def test_a_team_monitor_watches_the_teams_scenarios(config_path: Path) -> None:
    async with served(demo_world(), config_path) as s:
        started = await s.ok("start_monitoring", {"team_id": 1})
        ids = {sc.id for sc in s.zone.world.scenarios if sc.team_id == 1}
        assert set(started["scenario_ids"]) == ids
        await s.ok("stop_monitoring", {"monitor_id": started["monitor_id"]})


async def test_alerts_from_a_monitors_own_thresholds(config_path: Path) -> None:
    async with served(follow_world(), config_path) as s:
        started = await s.ok("start_monitoring", {
            "scenario_ids": [402], "thresholds": {"consecutive_failures": 1}})
        mid = started["monitor_id"]
        await s.ok("stream_live_execution", {"scenario_id": 402, "run": True, "timeout_s": 30})
        for _ in range(100):  # the alert follows the run's end within a moment
            if (await s.ok("list_alerts", {"monitor_id": mid}))["alerts"]:
                break
            await anyio.sleep(0.2)
        everywhere = await s.ok("list_alerts")
        state = await s.ok("get_execution_state", {"monitor_id": mid})
    [alert] = everywhere["alerts"]
    assert alert["rule"] == "consecutive_failures" and alert["monitor_id"] == mid
    assert alert["scenario_id"] == 402 and alert["event"] == "raised"
    assert [a["alert_id"] for a in state["alerts"]] == [alert["alert_id"]]
    assert state["open_alerts"] == [alert]
    # The config file was not written: the thresholds were the monitor's own.
    assert not await anyio.Path(config_path).exists()


async def test_set_alert_thresholds_writes_the_config_file(config_path: Path) -> None:
    async with served(demo_world(), config_path) as s:
        done = await s.ok("set_alert_thresholds", {"key": "duration_max_s", "value": "10m"})
        scoped = await s.ok("set_alert_thresholds",
                            {"key": "error_rate", "value": 0.25, "scenario_id": 101})
        off = await s.ok("set_alert_thresholds", {"key": "duration_max_s", "value": False})
    assert done["value"] == 600 and done["enabled"] and done["path"] == str(config_path)
    assert scoped["scenario_id"] == 101 and scoped["value"] == 0.25
    assert off["enabled"] is False
    text = await anyio.Path(config_path).read_text()
    assert "duration_max_s" in text and "[scenarios.101.thresholds]" in text


async def test_a_subscriber_hears_when_a_monitors_state_changes(config_path: Path) -> None:
    async with served(demo_world(), config_path) as s:
        started = await s.ok("start_monitoring", {"scenario_ids": [104]})
        uri = started["resource"]
        with anyio.fail_after(20):
            async with s.client.listen(resource_subscriptions=[uri]) as subscription:
                async for event in subscription:
                    assert getattr(event, "uri", None) == uri
                    break
        read = await s.client.read_resource(uri)
        [contents] = read.contents
        assert isinstance(contents, mcp_types.TextResourceContents)
        assert '"status":"running"' in contents.text


async def test_a_subscriber_on_the_handshake_protocol_hears_it_too(config_path: Path) -> None:
    updated = anyio.Event()
    heard: list[str] = []

    async def on_message(message: Any) -> None:
        if isinstance(message, mcp_types.ServerNotification) and \
                isinstance(message, mcp_types.ResourceUpdatedNotification):
            heard.append(str(message.params.uri))
            updated.set()

    async with served(demo_world(), config_path, mode="legacy",
                      message_handler=on_message) as s:
        assert s.client.server_capabilities.resources is not None
        assert s.client.server_capabilities.resources.subscribe
        started = await s.ok("start_monitoring", {"scenario_ids": [104]})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # resources/subscribe is deprecated, not gone
            await s.client.subscribe_resource(started["resource"])
        with anyio.fail_after(20):
            await updated.wait()
    assert heard[0] == started["resource"]


async def test_a_state_resource_of_an_unknown_monitor_is_not_found(config_path: Path) -> None:
    from mcp.shared.exceptions import MCPError

    async with served(demo_world(), config_path) as s:
        with pytest.raises(MCPError, match="does not exist"):
            await s.client.read_resource(monitor_uri("nope"))


BAD_CALLS = [
    ("get_scenario_state", {"scenario_id": 999}, "scenario not found"),
    ("get_module_flow", {"scenario_id": 999}, "not found"),
    ("stream_live_execution", {"scenario_id": 999, "timeout_s": 10}, "not found"),
    ("start_monitoring", {"scenario_ids": [999]}, "not found"),
    ("set_alert_thresholds", {"key": "no_such_rule", "value": 3}, "unknown threshold"),
    ("set_alert_thresholds", {"key": "error_rate", "value": "lots"}, "is not a number"),
    ("start_monitoring", {"scenario_ids": [101], "thresholds": {"nope": 1}},
     "unknown threshold"),
    ("get_execution_state", {"monitor_id": "gone"}, "does not exist"),
    ("stop_monitoring", {"monitor_id": "gone"}, "does not exist"),
    ("list_alerts", {"monitor_id": "gone"}, "does not exist"),
    ("get_scenario_state", {"scenario_id": "abc"}, "argument scenario_id"),
    ("get_scenario_state", {}, "scenario_id or team_id"),
    ("get_scenario_state", {"scenario_id": 101, "team_id": 1}, "scenario_id or team_id"),
    ("get_module_flow", {}, "argument scenario_id is required"),
    ("stream_live_execution", {"scenario_id": 401, "timeout_s": -1}, "argument timeout_s"),
    ("stream_live_execution", {"scenario_id": 401, "timeout_s": 10_000}, "argument timeout_s"),
    ("stream_live_execution", {"scenario_id": 401, "data": {"a": 1}}, "add run=true"),
    ("stream_live_execution", {"scenario_id": 401, "run": True, "execution_id": "ab"},
     "not both"),
    ("stream_live_execution", {"scenario_id": 401, "execution_id": "a b\x1b"},
     "argument execution_id"),
    ("start_monitoring", {"scenario_ids": [0]}, "argument scenario_ids.0"),
    ("no_such_tool", {}, "Unknown tool"),
]


@pytest.mark.parametrize(("tool", "arguments", "expected"), BAD_CALLS,
                         ids=[f"{t}-{i}" for i, (t, _, _) in enumerate(BAD_CALLS)])
async def test_bad_input_is_a_tool_error_of_one_sentence(
    config_path: Path, tool: str, arguments: dict[str, Any], expected: str,
) -> None:
    async with served(follow_world(), config_path) as s:
        text = _error_text(await s.call(tool, arguments))
    assert expected.lower() in text.lower()
    assert "\n" not in text and "Traceback" not in text and "Error executing" not in text


async def test_a_bad_token_is_a_tool_error_that_never_shows_the_token(
    config_path: Path,
) -> None:
    token = "secret-token-that-make-refuses"
    async with served(demo_world(), config_path, token=token) as s:
        texts = [_error_text(await s.call(name, args)) for name, args in [
            ("get_scenario_state", {"scenario_id": 101}),
            ("start_monitoring", {"scenario_ids": [101]}),
            ("stream_live_execution", {"scenario_id": 101, "timeout_s": 10}),
            ("get_module_flow", {"scenario_id": 101}),
        ]]
    for text in texts:
        assert "401" in text or "token" in text.lower()
        assert token not in text and "\n" not in text


def _record_requests(s: Served) -> list[int]:
    """The simulated clock's time (ms) of every request the zone receives, from now on."""
    times: list[int] = []
    count = s.zone.count_request

    def recording(now_ms: int) -> None:
        times.append(now_ms)
        count(now_ms)

    s.zone.count_request = recording  # type: ignore[method-assign]
    return times


def busiest_minute(times_ms: list[int]) -> int:
    """The most requests in any sliding 60 s window."""
    ordered, most, first = sorted(times_ms), 0, 0
    for last, at in enumerate(ordered):
        while at - ordered[first] >= 60_000:
            first += 1
        most = max(most, last - first + 1)
    return most


def test_the_sliding_window_counts_a_burst_across_two_clock_minutes() -> None:
    # 150 requests at the end of one minute and 150 at the start of the next: 150 a clock
    # minute, 300 within 60 s.
    burst = [59_000 + n for n in range(150)] + [60_000 + n for n in range(150)]
    assert busiest_minute(burst) == 300
    assert busiest_minute([0, 59_999, 60_000, 120_000]) == 2


async def _drain(s: Served, monitor_id: str) -> dict[str, Any]:
    return await s.ok("get_execution_state", {"monitor_id": monitor_id})


@pytest.mark.slow
@pytest.mark.timeout(240)
async def test_25_monitors_each_see_every_run_once_within_one_budget(config_path: Path) -> None:
    world = demo_world().with_api_limit(240)
    ids = [sc.id for sc in world.scenarios]
    async with served(world, config_path, speed=30) as s:
        request_ms = _record_requests(s)
        start = s.zone.clock.now()
        watched: dict[str, set[int]] = {}

        async def start_one(i: int) -> None:
            targets = sorted({ids[i % len(ids)], ids[(i + 3) % len(ids)]})
            started = await s.ok("start_monitoring", {"scenario_ids": targets})
            watched[started["monitor_id"]] = set(targets)

        async with anyio.create_task_group() as tg:
            for i in range(25):
                tg.start_soon(start_one, i)
        assert len(watched) == 25
        seen: dict[str, list[str]] = {mid: [] for mid in watched}
        stop_at = start + 8 * 60

        async def drain_all() -> None:
            for mid in watched:
                state = await _drain(s, mid)
                assert state["status"] == "running" and state["dropped"] == 0
                seen[mid] += [run["execution_id"] for run in state["finished"]]
                assert state["budget"]["limit_per_min"] == 240

        while s.zone.clock.now() < stop_at:
            await anyio.sleep(1)
            await drain_all()
        truth = s.zone.truth()
        # Lag is allowed (two busy cores slow the fast clock's readers); loss is not.
        expected = {mid: {r.execution_id for r in truth if r.scenario_id in targets
                          and start + 30 <= r.ended_at <= stop_at - 90}
                    for mid, targets in watched.items()}
        for _ in range(60):
            if all(expected[mid] <= set(seen[mid]) for mid in watched):
                break
            await anyio.sleep(0.5)
            await drain_all()
        throttled = [n for n in s.notices if n.kind == "throttled"]
    by_id = {r.execution_id: r for r in truth}
    for mid, targets in watched.items():
        assert len(seen[mid]) == len(set(seen[mid])), f"monitor {mid} saw a run twice"
        missing = expected[mid] - set(seen[mid])
        assert not missing, f"monitor {mid} missed {len(missing)} of {len(expected[mid])} runs"
        assert expected[mid], "the window should hold runs of every pair of scenarios"
        assert all(by_id[eid].scenario_id in targets for eid in seen[mid])
    # The one budget: at most its share (0.8) of the organization's limit in any 60 s, not
    # only in each clock minute (a budget at 230 a minute would pass that), and no 429.
    assert request_ms and busiest_minute(request_ms) <= 0.8 * 240 and not throttled


async def test_a_fault_in_one_monitor_ends_only_that_monitor(config_path: Path) -> None:
    async with served(demo_world(), config_path) as s:
        broken = (await s.ok("start_monitoring", {"scenario_ids": [104]}))["monitor_id"]
        sound = (await s.ok("start_monitoring", {"scenario_ids": [104]}))["monitor_id"]
        monitor = s.service.monitors[broken]

        def fault(event: Any) -> bool:
            raise RuntimeError("a bug")

        monitor.book.apply = fault  # type: ignore[method-assign]
        with anyio.fail_after(20):
            await monitor.done.wait()
        state = await s.ok("get_execution_state", {"monitor_id": broken})
        assert state["status"] == "closed" and "internal error" in state["last_error"]
        assert (await s.ok("get_execution_state", {"monitor_id": sound}))["status"] == "running"
        assert not (await s.call("get_scenario_state", {"scenario_id": 101})).is_error


async def test_a_config_file_that_cannot_be_written_is_a_tool_error(tmp_path: Path) -> None:
    path = Path("/proc/makestream-nowhere/config.toml")
    async with served(demo_world(), path) as s:
        text = _error_text(await s.call("set_alert_thresholds",
                                        {"key": "error_rate", "value": 0.3}))
    assert text.startswith(f"{path}: cannot write the config file: ") and "\n" not in text


async def _slow_run(s: Served, monkeypatch: pytest.MonkeyPatch, delay_s: float) -> None:
    """POST /run answers `delay_s` real seconds late (Make under load)."""
    original = s.service.client.run

    async def slow(*args: Any, **kwargs: Any) -> Any:
        await anyio.sleep(delay_s)
        return await original(*args, **kwargs)

    monkeypatch.setattr(s.service.client, "run", slow)


async def test_a_run_started_just_before_the_timeout_keeps_its_id(
    config_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with served(outcome_world(duration=600), config_path, speed=20) as s:
        await _slow_run(s, monkeypatch, 0.4)
        result = await s.ok("stream_live_execution",
                            {"scenario_id": 201, "run": True, "timeout_s": 0.1})
        [record] = [r for r in s.zone.truth() if r.source == "manual"]
    assert result["execution_id"] == record.execution_id
    assert result["continue_with"] == {"scenario_id": 201, "execution_id": record.execution_id}
    assert result["note"] is None


async def test_a_run_whose_id_never_came_says_so(
    config_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from makestream.mcp import follow

    monkeypatch.setattr(follow, "RUN_ANSWER_S", 0.1)
    async with served(outcome_world(duration=600), config_path, speed=20) as s:
        await _slow_run(s, monkeypatch, 5)
        result = await s.ok("stream_live_execution",
                            {"scenario_id": 201, "run": True, "timeout_s": 0.1})
    assert result["status"] == "waiting" and result["execution_id"] is None
    assert result["continue_with"] is None  # not "the next run to end": it may be another
    assert "execution id is unknown" in result["note"]


async def test_monitors_and_followed_runs_keep_their_history_in_the_store(
        config_path: Path, tmp_path: Path) -> None:
    import sqlite3

    from makestream.store.paths import StoreChoice

    db = tmp_path / "history.db"
    async with served(follow_world(duration=5), config_path,
                      store=StoreChoice(db, keep_s=90 * 86400)) as s:
        started = await s.ok("start_monitoring", {"scenario_ids": [401]})
        with anyio.fail_after(20):
            # Polling the monitor as an assistant would, until two runs have ended.
            seen: list[str] = []
            while len(seen) < 2:
                state = await s.ok("get_execution_state", {"monitor_id": started["monitor_id"]})
                seen += [r["execution_id"] for r in state["finished"]]
                await anyio.sleep(0.05)
        followed = await s.ok("stream_live_execution", {"scenario_id": 401, "timeout_s": 30})
        await s.ok("stop_monitoring", {"monitor_id": started["monitor_id"]})
    # The store is written by its own thread and closed with the service.
    with sqlite3.connect(db) as conn:
        stored = {row[0] for row in conn.execute("SELECT execution_id FROM executions")}
    assert set(seen) <= stored
    assert followed["execution_id"] in stored
