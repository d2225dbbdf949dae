"""The MCP server: makestream's tools and the monitors' state resources, on a `Service`.

Tools (names and shapes are stable; the README and the man page list them):

``stream_live_execution``  follow one run (or start it), with progress notifications
``start_monitoring``       a monitor (a watch) on scenarios or a team → ``monitor_id``
``get_execution_state``    a monitor's runs in flight, runs and alerts since the last call
``stop_monitoring``        end a monitor
``get_scenario_state``     the ``makestream state`` document
``get_module_flow``        a scenario's module flow, as text and as structure
``list_alerts``            the alerts open now, of one monitor or of all
``set_alert_thresholds``   ``makestream thresholds set``: validated, written atomically

Resource: ``makestream://monitors/{monitor_id}/state``, with update notifications both ways
clients ask for them: ``subscriptions/listen`` (protocol 2026-07-28) and ``resources/subscribe``
(earlier protocols).

Errors: a mistake by the caller or an answer from Make that stops a tool (unknown scenario,
rejected token, unknown threshold, a monitor that is gone, arguments that do not fit the schema)
is a tool result with ``isError`` and one sentence; never a protocol error or a traceback.
`MakeClient` keeps the token out of every message it makes.
"""

from __future__ import annotations

import inspect
import io
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import anyio
import mcp_types
from mcp.server.connection import Connection
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceNotFoundError, ToolError, UnexpectedToolError
from mcp.server.subscriptions import InMemorySubscriptionBus, ResourceUpdated
from mcp.shared.exceptions import MCPError
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import Field, ValidationError

from makestream import __version__, limits
from makestream.errors import MakestreamError
from makestream.limits import MAKE_INT_MAX, MCP_FOLLOW_MAX_S, MCP_SCENARIOS_MAX
from makestream.mcp.models import (
    AlertList,
    FlowNode,
    ModuleFlow,
    ModuleRun,
    MonitorStarted,
    MonitorState,
    MonitorStopped,
    RunResult,
    StateDocument,
    ThresholdSet,
)
from makestream.mcp.service import NOTIFY_TIMEOUT_S, MonitorGone, Service, monitor_uri
from makestream.safetext import clean

if TYPE_CHECKING:
    from mcp.server.context import ServerRequestContext
    from mcp.server.session import ServerSession

    from makestream.make.models import Blueprint, BlueprintModule
    from makestream.render.flow import ModuleOutcome

# A one-shot read (state, flow) gives up after this long: the client's own retries are those of
# a following watch, and a tool call must end.
ONE_SHOT_S = 90.0
THRESHOLDS_MAX = 64  # settings in one start_monitoring (the rules have fewer keys than this)
MESSAGE_MAX = 2000  # characters of an error sentence (a message may quote Make's answer)

_Fn = TypeVar("_Fn", bound=Callable[..., Any])

ScenarioId = Annotated[int, Field(ge=1, le=MAKE_INT_MAX, description="A Make scenario id.")]
TeamId = Annotated[int, Field(ge=1, le=MAKE_INT_MAX, description="A Make team id.")]
ExecutionId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$",
                                   description="A Make execution id.")]
MonitorId = Annotated[str, Field(min_length=1, max_length=64, description="From start_monitoring.")]
ThresholdValue = Annotated[
    str | float | bool,
    Field(description="A number, a duration such as 10m for the rules in seconds, or on/off."),
]

INSTRUCTIONS = """\
makestream watches Make.com scenario executions. Follow one run with stream_live_execution \
(progress notifications while it runs; it returns within timeout_s, with continue_with when the \
run has not ended). Watch scenarios over time with start_monitoring, then get_execution_state \
(runs and alerts since the last call) or the monitor's resource; stop_monitoring when done."""


def _sentence(text: str) -> str:
    """Text for a tool error: one line, no control characters, of bounded length."""
    return clean(" ".join(text.split()), max_chars=MESSAGE_MAX)


@contextmanager
def _tool_errors() -> Iterator[None]:
    """makestream's errors (the caller's mistakes, Make's refusals) as tool errors."""
    try:
        yield
    except MakestreamError as exc:
        raise ToolError(_sentence(exc.message)) from None
    except TimeoutError:  # the ONE_SHOT_S limit of a one-shot read
        raise ToolError(f"Make did not answer within {ONE_SHOT_S:.0f}s; try again "
                        "later") from None


def _lasting(session: ServerSession) -> Connection | None:
    """The connection of a request's `session` when it lasts across requests and the SDK says
    when it ends (its exit stack): a handshake-protocol session (stdio, or HTTP with a session
    id). On protocol 2026-07-28 each request is its own connection: None."""
    connection = getattr(session, "_connection", None)  # the SDK keeps it private
    if isinstance(connection, Connection) \
            and connection.protocol_version not in MODERN_PROTOCOL_VERSIONS:
        return connection
    return None


def _end_monitors(service: Service, monitor_ids: set[str]) -> None:
    for monitor_id in list(monitor_ids):
        service.discard(monitor_id, "session ended")


def _peer(session: ServerSession) -> object:
    """Who a request came from: its lasting connection, else the request's own session."""
    return _lasting(session) or session


def _argument_problem(tool: str, exc: ValidationError) -> str:
    """One sentence about arguments that do not fit a tool's input schema."""
    errors = exc.errors()
    first = errors[0]
    where = ".".join(str(part) for part in first["loc"]) or "arguments"
    message = "is required" if first["type"] == "missing" else first["msg"].rstrip(".")
    message = message[0].lower() + message[1:] if message else "is not valid"
    more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
    return _sentence(f"{tool}: argument {where} {message}{more}")


class MakestreamMCP(MCPServer[Any]):
    """MCPServer whose tool errors are one sentence each (no prefix, no validation dump)."""

    # `resources/subscribe`: URI → each subscriber (`_peer`) and a session to notify it with
    legacy: dict[str, dict[object, ServerSession]]

    async def call_tool(self, name: str, arguments: dict[str, Any],
                        context: Context[Any, Any] | None = None) -> Any:
        try:
            return await super().call_tool(name, arguments, context)
        except UnexpectedToolError:
            raise  # a crash: the SDK answers with the tool's name alone and logs the rest
        except ToolError as exc:
            cause = exc.__cause__
            if isinstance(cause, ValidationError):
                raise ToolError(_argument_problem(name, cause)) from cause
            if isinstance(cause, ToolError):
                raise ToolError(str(cause)) from None
            raise

    def add_legacy_subscriptions(self, service: Service) -> None:
        """Serve `resources/subscribe` for clients of protocols before 2026-07-28: to monitors'
        states only, at most MCP_SUBSCRIPTIONS_MAX a session; a stopped monitor's subscribers
        and an ended session's subscriptions are forgotten (`self.legacy`: URI → sessions)."""
        legacy: dict[str, dict[object, ServerSession]] = {}
        self.legacy = legacy

        async def subscribe(ctx: ServerRequestContext[Any, Any],
                            params: mcp_types.SubscribeRequestParams) -> mcp_types.EmptyResult:
            uri = str(params.uri)
            monitor_id = monitor_of(uri)
            if monitor_id is None or monitor_id not in service.monitors:
                raise MCPError(code=mcp_types.INVALID_PARAMS, message=_sentence(
                    f"{uri} is not the state of a running monitor: subscribe to the resource "
                    "start_monitoring returned"))
            peer = _peer(ctx.session)
            mine = len([u for u, subscribers in legacy.items() if peer in subscribers])
            if peer not in legacy.get(uri, {}) and mine >= limits.MCP_SUBSCRIPTIONS_MAX:
                raise MCPError(code=mcp_types.INVALID_PARAMS, message=(
                    f"this session has {limits.MCP_SUBSCRIPTIONS_MAX} subscriptions, the most "
                    "one session may have: unsubscribe from one first"))
            connection = _lasting(ctx.session)
            if connection is not None and "makestream.subscribed" not in connection.state:
                connection.state["makestream.subscribed"] = True
                connection.exit_stack.callback(self.forget, connection)
            legacy.setdefault(uri, {})[peer] = ctx.session
            return mcp_types.EmptyResult()

        async def unsubscribe(ctx: ServerRequestContext[Any, Any],
                              params: mcp_types.UnsubscribeRequestParams) -> mcp_types.EmptyResult:
            uri = str(params.uri)
            subscribers = legacy.get(uri)
            if subscribers is not None:
                subscribers.pop(_peer(ctx.session), None)
                if not subscribers:
                    legacy.pop(uri, None)
            return mcp_types.EmptyResult()

        def monitor_gone(uri: str) -> None:
            legacy.pop(uri, None)

        service.gone.append(monitor_gone)
        low = self._lowlevel_server
        low.add_request_handler("resources/subscribe", mcp_types.SubscribeRequestParams,
                                subscribe)
        low.add_request_handler("resources/unsubscribe", mcp_types.UnsubscribeRequestParams,
                                unsubscribe)

    def forget(self, peer: object) -> None:
        """Drop every subscription of `peer` (a session that ended or stopped listening)."""
        for uri, subscribers in list(self.legacy.items()):
            subscribers.pop(peer, None)
            if not subscribers:
                self.legacy.pop(uri, None)

    async def notify_legacy(self, uri: str) -> None:
        """Tell `uri`'s legacy subscribers, each within its own NOTIFY_TIMEOUT_S: a session
        that does not take it in time (or at all) is forgotten, and the others still hear."""

        async def send(peer: object, session: ServerSession) -> None:
            with anyio.move_on_after(NOTIFY_TIMEOUT_S):
                try:
                    await session.send_resource_updated(uri)
                    return
                except Exception:  # a closed session
                    pass
            self.forget(peer)

        subscribers = self.legacy.get(uri)
        if subscribers:
            async with anyio.create_task_group() as tg:
                for peer, session in list(subscribers.items()):
                    tg.start_soon(send, peer, session)


def monitor_of(uri: str) -> str | None:
    """The monitor id of a monitor's state URI; None for any other URI."""
    prefix, suffix = monitor_uri(""), "/state"
    head = prefix[: -len(suffix)]
    if uri.startswith(head) and uri.endswith(suffix) and len(uri) > len(prefix):
        monitor_id = uri[len(head): -len(suffix)]
        return monitor_id if "/" not in monitor_id else None
    return None


def _flow_nodes(modules: list[BlueprintModule],
                results: dict[int, ModuleOutcome] | None) -> list[FlowNode]:
    from makestream.render.flow import LABEL_MAX

    def label(text: str | None) -> str | None:
        return clean(text, max_chars=LABEL_MAX) if text else None

    nodes = []
    for module in modules:
        outcome = results.get(module.id) if results else None
        metadata = module.metadata if isinstance(module.metadata, dict) else {}
        designer = metadata.get("designer") if isinstance(metadata, dict) else None
        name = designer.get("name") if isinstance(designer, dict) else None
        flt = module.filter.get("name") if module.filter else None
        key, app = clean(module.module, max_chars=LABEL_MAX), clean(module.app, max_chars=LABEL_MAX)
        nodes.append(FlowNode(
            id=module.id, module=key, app=app,
            name=label(name if isinstance(name, str) else None),
            filter=label(flt if isinstance(flt, str) else None),
            routes=[_flow_nodes(route.flow, results) for route in module.routes],
            on_error=_flow_nodes(module.onerror, results),
            result=ModuleRun(module_id=module.id, module=key, app=app,
                             status=outcome.status, bundles=outcome.bundles, size=outcome.size)
            if outcome is not None else None,
        ))
    return nodes


def _flow_text(blueprint: Blueprint, results: dict[int, ModuleOutcome] | None,
               title: str) -> str:
    from rich.console import Console

    from makestream.render.flow import FlowDiagram

    out = io.StringIO()
    console = Console(file=out, width=120, color_system=None, force_terminal=False,
                      no_color=True, highlight=False)
    console.print(FlowDiagram(blueprint, results, title=title, ascii_only=False))
    return "\n".join(line.rstrip() for line in out.getvalue().splitlines())


def build_server(service: Service) -> MakestreamMCP:
    """The MCP server of one process; every tool runs on `service`."""
    bus = InMemorySubscriptionBus()
    server = MakestreamMCP("makestream", version=__version__, instructions=INSTRUCTIONS,
                           subscriptions=bus, log_level="WARNING")
    server.add_legacy_subscriptions(service)

    async def notify(uri: str) -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(server.notify_legacy, uri)
            with anyio.move_on_after(NOTIFY_TIMEOUT_S):
                await bus.publish(ResourceUpdated(uri=uri))

    service.notify.append(notify)

    def tool(fn: _Fn) -> _Fn:
        # The docstring, dedented, is the description clients show.
        server.add_tool(fn, description=inspect.cleandoc(fn.__doc__ or ""),
                        structured_output=True)
        return fn

    @tool
    async def stream_live_execution(
        ctx: Context[Any, Any],
        scenario_id: ScenarioId,
        execution_id: ExecutionId | None = None,
        run: Annotated[bool, Field(description="Start a run first (POST /run).")] = False,
        data: Annotated[dict[str, Any] | None, Field(
            description="With run: the scenario's inputs.")] = None,
        timeout_s: Annotated[float, Field(
            gt=0, le=MCP_FOLLOW_MAX_S,
            description="Return by then either way (status running, with continue_with).",
        )] = 55.0,
    ) -> RunResult:
        """Follow one run of a scenario in real time and return how it ended.

        Follows `execution_id`, or a run it starts (`run`, with `data` as inputs), or else the
        scenario's next run to end. While it runs, progress notifications give the percent and
        ETA (by the durations of recent runs) and a one-line message. Returns the status,
        duration, operations, credits, the error with its cause module, the Make link and each
        module's result; if the run has not ended within timeout_s, status is running (or
        waiting) and continue_with holds the arguments to call again with. With run, the
        progress messages name the execution as soon as Make answers POST /run; if it has not
        answered by timeout_s, the call waits up to 10 s more for the answer, and if none came,
        note says so (the run may have started) instead of following another run.
        """
        from makestream.mcp.follow import Progress, follow

        if data is not None and not run:
            raise ToolError("data is the inputs of a run that this call starts: add run=true")
        if run and execution_id is not None:
            raise ToolError("give execution_id to follow a run, or run=true to start one, "
                            "not both")
        if data is not None:
            _check_data(data)
        if run and service.side_effects_refused is not None:
            raise ToolError(service.side_effects_refused)

        async def report(progress: Progress) -> None:
            await ctx.report_progress(progress.progress, progress.total, progress.message)

        with _tool_errors():
            return await follow(service, scenario_id=scenario_id, execution_id=execution_id,
                                run=run, data=data, timeout_s=timeout_s, report=report)

    @tool
    async def start_monitoring(
        ctx: Context[Any, Any],
        scenario_ids: Annotated[list[ScenarioId] | None, Field(
            max_length=MCP_SCENARIOS_MAX, description="Scenarios to watch.")] = None,
        team_id: Annotated[TeamId | None, Field(
            description="Without scenario_ids: every scenario of this team.")] = None,
        thresholds: Annotated[dict[str, ThresholdValue] | None, Field(
            max_length=THRESHOLDS_MAX,
            description="Alert thresholds for this monitor, on top of the config file's: KEY "
            "(a rule or RULE.PARAM, as `makestream thresholds` lists them) → value.",
        )] = None,
    ) -> MonitorStarted:
        """Start watching scenarios (or a team) in the background; returns a monitor id.

        Read what it saw with get_execution_state (or its resource, which notifies
        subscribers); end it with stop_monitoring. Every monitor shares the server's one
        request budget. A monitor ends with the session that started it (where the protocol
        has sessions), and when nobody has read it for a while (30 minutes by default).
        """
        from makestream import config
        from makestream.engine.alerts import AlertEvaluator

        ids = list(dict.fromkeys(scenario_ids or []))
        if not ids and team_id is None:
            ids = service.demo_scenarios()
            if not ids:
                raise ToolError("name scenario_ids or a team_id to monitor")
        settings = {key: _setting_text(value) for key, value in (thresholds or {}).items()}
        with _tool_errors():
            effective = config.with_settings(service.config_path, settings)
            monitor = await service.start_monitor(
                ids, team_id if not ids else None, AlertEvaluator(effective))
        book = monitor.book
        connection = _lasting(ctx.request_context.session)
        if connection is not None:  # it ends with the session that started it
            mine = connection.state.get("makestream.monitors")
            if not isinstance(mine, set):
                mine = connection.state["makestream.monitors"] = set()
                connection.exit_stack.callback(_end_monitors, service, mine)
            mine.intersection_update(service.monitors)  # the stopped ones are gone already
            mine.add(book.monitor_id)
        return MonitorStarted(monitor_id=book.monitor_id, scenario_ids=book.scenario_ids,
                              resource=monitor_uri(book.monitor_id))

    @tool
    async def get_execution_state(monitor_id: MonitorId) -> MonitorState:
        """A monitor's runs in flight (with progress), the runs that ended and the alerts raised
        or resolved since the last call (each handed out once), the alerts open now and the
        request budget's use."""
        with _tool_errors():
            book = service.read(monitor_id).book
        return book.drain(service.client.budget.snapshot())

    @tool
    async def stop_monitoring(monitor_id: MonitorId) -> MonitorStopped:
        """Stop a monitor; its id is gone afterwards. The runs and alerts it saw since the last
        get_execution_state come with the answer, so stopping loses none."""
        with _tool_errors():
            monitor = await service.stop_monitor(monitor_id)
        last = monitor.book.drain(service.client.budget.snapshot())
        return MonitorStopped(monitor_id=monitor_id, stopped=True,
                              finished=monitor.book.finished_total, unread=last.finished,
                              unread_alerts=last.alerts, dropped=last.dropped)

    @tool
    async def get_scenario_state(
        scenario_id: ScenarioId | None = None,
        team_id: Annotated[TeamId | None, Field(
            description="Instead of scenario_id: every scenario of this team.")] = None,
        last: Annotated[int, Field(ge=1, le=50, description="Recent runs to list.")] = 10,
    ) -> StateDocument:
        """A scenario's (or a team's scenarios') flags, recent runs, success rate and p50/p95
        durations: the `makestream state` document. A few requests per scenario."""
        from makestream.engine.state import fetch_state

        if (scenario_id is None) == (team_id is None):
            raise ToolError("give scenario_id or team_id (one of them)")
        with _tool_errors(), anyio.fail_after(ONE_SHOT_S):
            document = await fetch_state(
                service.client, scenario_ids=[scenario_id] if scenario_id else [],
                team_id=team_id, last=last)
        return StateDocument.model_validate(document)

    @tool
    async def get_module_flow(
        scenario_id: ScenarioId, execution_id: ExecutionId | None = None
    ) -> ModuleFlow:
        """A scenario's module flow: the diagram `makestream flow` draws (routers, filters,
        error handlers) and the same as structure; with execution_id, each module's result in
        that run (one request per module)."""
        from makestream.cli.flow import fetch_outcomes

        with _tool_errors(), anyio.fail_after(ONE_SHOT_S):
            blueprint = await service.client.blueprint(scenario_id)
            results = None
            if execution_id is not None:
                results = await fetch_outcomes(service.client, scenario_id, blueprint,
                                               execution_id)
                if not results:
                    raise ToolError(f"execution {execution_id}: no module logs of scenario "
                                    f"{scenario_id} mention it")
        name = clean(blueprint.name or "Scenario", max_chars=200)
        title = f"{name} · scenario {scenario_id}"
        if execution_id is not None:
            title += f" · execution {execution_id}"
        return ModuleFlow(
            scenario_id=scenario_id, name=name, execution_id=execution_id,
            text=_flow_text(blueprint, results, title),
            flow=_flow_nodes(blueprint.flow, results),
            modules=sum(1 for _ in blueprint.walk()),
        )

    @tool
    async def list_alerts(monitor_id: MonitorId | None = None) -> AlertList:
        """The alerts open now: of one monitor, or of every monitor."""
        with _tool_errors():
            monitors = [service.monitor(monitor_id)] if monitor_id is not None \
                else list(service.monitors.values())
        return AlertList(alerts=[a for m in monitors for a in m.book.open_alerts.values()])

    @tool
    async def set_alert_thresholds(
        key: Annotated[str, Field(min_length=1, max_length=100,
                                  description="A rule or RULE.PARAM, e.g. duration_p95_ms.")],
        value: ThresholdValue,
        scenario_id: Annotated[ScenarioId | None, Field(
            description="For this scenario only (else for every scenario).")] = None,
    ) -> ThresholdSet:
        """Set an alert threshold in the config file, as `makestream thresholds set` does (the
        same validation; the file is written atomically). Monitors started afterwards use it."""
        from makestream import config

        if service.side_effects_refused is not None:
            raise ToolError(service.side_effects_refused)
        text = _setting_text(value)
        path = service.config_path
        with _tool_errors():
            config.set_threshold(path, key, text, scenario=scenario_id)
            rule, _ = config.split_key(key)
            effective = config.load(path).thresholds.threshold(rule, scenario_id)
        return ThresholdSet(
            key=key, scenario_id=scenario_id, path=str(path), enabled=effective.enabled,
            value=effective.value, severity=effective.severity, params=dict(effective.params),
            note="monitors started from now on use it; running monitors keep their thresholds",
        )

    @server.resource("makestream://monitors/{monitor_id}/state", mime_type="application/json",
                     description="A monitor's state: runs in flight, recent runs, open alerts; "
                     "subscribers hear when a run begins or ends or an alert changes.")
    async def monitor_state(monitor_id: str) -> str:
        try:
            monitor = service.read(monitor_id)
        except MonitorGone:
            raise ResourceNotFoundError(f"monitor {monitor_id!r} does not exist") from None
        state: MonitorState = monitor.book.snapshot(service.client.budget.snapshot())
        return state.model_dump_json()

    return server


def tool_list() -> list[mcp_types.Tool]:
    """The tools as `tools/list` gives them (for the documentation), from a server with no
    client behind it."""
    from types import SimpleNamespace
    from typing import cast

    server = build_server(cast(Service, SimpleNamespace(notify=[], gone=[], monitors={})))
    return anyio.run(server.list_tools)


def _setting_text(value: str | float | bool) -> str:
    """A threshold value as `thresholds set` reads it from a command line."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _check_data(data: dict[str, Any]) -> None:
    """A run's inputs within the size and depth makestream accepts from --data."""
    import orjson

    from makestream.limits import JSON_MAX_DEPTH, MCP_DATA_MAX_BYTES

    if len(orjson.dumps(data)) > MCP_DATA_MAX_BYTES:
        raise ToolError(f"data is larger than {MCP_DATA_MAX_BYTES // 1024 // 1024} MiB, the limit")

    def depth(value: Any, level: int) -> None:
        if level > JSON_MAX_DEPTH:
            raise ToolError(f"data is nested more than {JSON_MAX_DEPTH} levels deep, the limit")
        children = value.values() if isinstance(value, dict) else \
            value if isinstance(value, list) else ()
        for child in children:
            depth(child, level + 1)

    depth(data, 1)
