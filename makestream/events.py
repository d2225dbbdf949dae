"""The event contract: typed events, their NDJSON encoding, and a validating reader.

Format
------
One JSON object per line, UTF-8, terminated by ``\\n``, flushed after every line. Objects are flat
and snake_case so that ``jq`` filters stay short. Every event carries:

``v``            schema version, currently ``1``
``type``         one of the types below; consumers must ignore types they do not know
``seq``          strictly increasing within one stream (starts at 1)
``ts``           when makestream emitted the event, RFC 3339 UTC with milliseconds
``cursor``       opaque; ``makestream watch --resume CURSOR`` continues after this event. In
                 ``watch`` output only events that move the resume position carry one:
                 ``stream.opened``, ``execution.finished``, ``stream.closed``, and the first
                 event after the positions otherwise changed (a scenario's history learned);
                 resume from the latest cursor seen. Over SSE every event carries one (its
                 ``id:``).
``scenario_id``  where the event concerns one scenario
``execution_id`` where the event concerns one execution

Types and their own fields:

``stream.opened``       targets (scenario ids), api_limit, budget_per_min, follow, version,
                       budget_processes
``execution.started``   source, started_at, expected_duration_ms, modules_total, scenario_name
``execution.expected``  due_at, basis (``schedule``), expected_duration_ms, scenario_name: a
                        scheduled run should be under way (its ``nextExec`` passed) but Make has
                        not listed it yet; no execution_id
``execution.progress``  elapsed_ms, expected_duration_ms, percent, basis (``history`` | ``modules``)
``execution.finished``  status (``success`` | ``warning`` | ``error``), started_at, duration_ms,
                        operations, transfer_bytes, centicredits, error {message, name,
                        cause_module, cause_app}, url, scenario_name
``scenario.state``      the scenario as it stands (``watch --snapshot``, after stream.opened):
                        scenario_name, team_id, is_active, is_invalid, is_paused, scheduling,
                        next_exec, dlq_count, queue_count, last_run {execution_id, status,
                        started_at, duration_ms}, success_rate, sample_size,
                        expected_duration_ms
``module.result``       module_id, module, app, status, bundles, size
``scenario.changed``    changed (names of the fields that changed), is_active, is_invalid,
                        is_paused, dlq_count, queue_count, scenario_name
``alert.raised``        alert_id, rule, severity, value, threshold, message, replayed
``alert.resolved``      the same fields as alert.raised
``api.throttled``       retry_in_s, rate_per_min, asked_s (a longer Retry-After that was cut)
``stream.error``        message, error_type, fatal, retry_in_s
``stream.heartbeat``    used_last_minute, budget_per_min, running, budget_processes, failing (the
                        latest request's error while no request has succeeded since)
``stream.lagged``       message (an SSE subscriber fell behind and is disconnected)
``stream.closed``       reason, exit_code, summary {finished, success, warning, error, ...}

``execution.finished`` is delivered exactly once per execution across restarts when the stream is
resumed from a cursor. Progress, heartbeats and errors are observations of the moment and are not
replayed.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import IO, Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, TypeAdapter, ValidationError

from makestream.errors import UsageError
from makestream.limits import RETRY_AFTER_MAX_S

SCHEMA_VERSION = 1


def rfc3339(epoch_s: float) -> str:
    """Format epoch seconds as RFC 3339 UTC with milliseconds (``2026-11-26T10:00:00.000Z``)."""
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class _Event(BaseModel):
    # Unknown fields are kept so that a newer producer's events survive a round trip.
    model_config = ConfigDict(extra="allow", frozen=True)

    v: int = Field(default=SCHEMA_VERSION, description="Schema version.")
    type: str = Field(default="", description="The event type; see the module docstring.")
    seq: int = Field(default=0, description="Strictly increasing within one stream.")
    ts: str = Field(default="", description="Emission time, RFC 3339 UTC.")
    cursor: str | None = Field(
        default=None,
        description="Opaque resume position after this event. In `watch` output, only on "
        "events that move it (stream.opened, execution.finished, stream.closed, and the first "
        "event after a scenario's history was learned): resume from the latest one seen. Over "
        "SSE, on every event.",
    )
    scenario_id: int | None = Field(default=None, description="The scenario concerned.")
    execution_id: str | None = Field(default=None, description="The execution concerned.")


class StreamOpened(_Event):
    type: Literal["stream.opened"] = "stream.opened"
    targets: list[int] = Field(default_factory=list, description="Scenario ids watched.")
    api_limit: int = Field(description="Organization limit, requests per minute.")
    budget_per_min: float = Field(description="Requests per minute makestream allows itself.")
    follow: bool = Field(default=True, description="False for --no-follow.")
    version: str = Field(description="makestream version.")
    budget_processes: int = Field(
        default=1,
        description="makestream processes on this machine sharing the organization's budget "
        "(budget_per_min is for all of them together).",
    )


class ExecutionStarted(_Event):
    type: Literal["execution.started"] = "execution.started"
    source: str = Field(description="How the run began: run (by makestream), auto, manual, ...")
    started_at: str = Field(description="RFC 3339 UTC.")
    expected_duration_ms: int | None = Field(default=None, description="Median of recent runs.")
    modules_total: int | None = Field(
        default=None,
        description="Modules in the scenario's blueprint, once makestream has read it (the live "
        "view and --modules read it); absent before.",
    )
    scenario_name: str | None = None


class ExecutionExpected(_Event):
    """A scheduled run that should have begun: the scenario's `nextExec` passed and Make moved
    it on, but no log entry names the run yet (Make may list runs only once they end)."""

    type: Literal["execution.expected"] = "execution.expected"
    due_at: str = Field(description="When the schedule started the run (the passed nextExec).")
    basis: Literal["schedule"] = Field(
        default="schedule",
        description="What the expectation rests on: `schedule`, the scenario's nextExec.",
    )
    expected_duration_ms: int | None = Field(default=None, description="Median of recent runs.")
    scenario_name: str | None = None


class ExecutionProgress(_Event):
    type: Literal["execution.progress"] = "execution.progress"
    elapsed_ms: int
    expected_duration_ms: int | None = None
    percent: float | None = Field(default=None, description="0-99; None when nothing to go by.")
    basis: Literal["history", "modules"] = Field(
        default="history",
        description="What the estimate rests on: `history`, the durations of the scenario's "
        "recent runs (Make reports no module-by-module progress, so `modules` is reserved).",
    )


class ExecutionErrorInfo(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    message: str | None = None
    name: str | None = None
    cause_module: str | None = None
    cause_app: str | None = None


class ExecutionFinished(_Event):
    type: Literal["execution.finished"] = "execution.finished"
    status: Literal["success", "warning", "error"]
    started_at: str | None = Field(
        default=None, description="When the run began (RFC 3339 UTC), from its log entry."
    )
    ended_at: str | None = Field(
        default=None, description="When the run ended (RFC 3339 UTC), from its log entry."
    )
    duration_ms: int | None = None
    operations: int | None = None
    transfer_bytes: int | None = None
    centicredits: int | None = None
    error: ExecutionErrorInfo | None = None
    url: str | None = Field(default=None, description="The run in Make's web UI.")
    scenario_name: str | None = None
    # Not part of the event's schema; kept by `model_copy`, lost by serialization. `_log_ms`:
    # the time Make's log lists the run at (epoch ms), which cursors count in, when the run was
    # reported from its log entry; the history store keeps it so that a resumed watch can
    # replay stored runs (`store.replay`). `_from_store`: this report came from the store.
    _log_ms: int | None = PrivateAttr(default=None)
    _from_store: bool = PrivateAttr(default=False)

    def with_log_ms(self, log_ms: int | None, *, from_store: bool = False) -> ExecutionFinished:
        """This event, knowing the log time it was listed at (and whether the store told it)."""
        self._log_ms = log_ms
        self._from_store = from_store
        return self

    @property
    def log_ms(self) -> int | None:
        return self._log_ms

    @property
    def from_store(self) -> bool:
        return self._from_store


class LastRun(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    execution_id: str
    status: str
    started_at: str | None = None
    duration_ms: int | None = None


class ScenarioState(_Event):
    """One scenario as it stands when the watch begins (`watch --snapshot`)."""

    type: Literal["scenario.state"] = "scenario.state"
    scenario_name: str | None = None
    team_id: int | None = None
    is_active: bool | None = None
    is_invalid: bool | None = None
    is_paused: bool | None = None
    scheduling: str | None = Field(default=None, description="indefinitely, immediately, ...")
    next_exec: str | None = Field(default=None, description="Make's nextExec, RFC 3339 UTC.")
    dlq_count: int | None = None
    queue_count: int | None = None
    last_run: LastRun | None = Field(default=None, description="The latest finished run.")
    success_rate: float | None = Field(
        default=None, description="Share of the recent finished runs that did not fail, 0-1."
    )
    sample_size: int = Field(default=0, description="Finished runs the figures rest on.")
    expected_duration_ms: int | None = Field(default=None, description="Median of recent runs.")


class ModuleResult(_Event):
    type: Literal["module.result"] = "module.result"
    module_id: int
    module: str | None = Field(default=None, description="Make module, app:Name.")
    app: str | None = None
    status: str
    bundles: int | None = None
    size: int | None = None


class ScenarioChanged(_Event):
    type: Literal["scenario.changed"] = "scenario.changed"
    changed: list[str] = Field(default_factory=list)
    is_active: bool | None = None
    is_invalid: bool | None = None
    is_paused: bool | None = None
    dlq_count: int | None = None
    queue_count: int | None = None
    scenario_name: str | None = None


class _AlertFields(_Event):
    alert_id: str = Field(description="Stable per rule and subject.")
    rule: str
    severity: Literal["warning", "critical"]
    value: float | None = None
    threshold: float | None = None
    message: str
    replayed: bool | None = Field(
        default=None,
        description="True when the start-up catch-up over past runs (--since, --resume) raised "
        "or resolved the alert, rather than something seen live; absent otherwise. Sinks "
        "(--webhook, --alertmanager) are not sent these: an alert still active when the "
        "catch-up ends is raised again then, without this mark, and that one is sent.",
    )


class AlertRaised(_AlertFields):
    type: Literal["alert.raised"] = "alert.raised"


class AlertResolved(_AlertFields):
    type: Literal["alert.resolved"] = "alert.resolved"


class ApiThrottled(_Event):
    type: Literal["api.throttled"] = "api.throttled"
    retry_in_s: float
    rate_per_min: float | None = None
    asked_s: float | None = Field(
        default=None,
        description="The Retry-After Make sent, when it asked for longer than makestream waits "
        f"(the pause was cut to {RETRY_AFTER_MAX_S:g} s); absent otherwise.",
    )


class StreamError(_Event):
    type: Literal["stream.error"] = "stream.error"
    message: str
    error_type: str | None = None
    fatal: bool = False
    retry_in_s: float | None = None


class StreamHeartbeat(_Event):
    type: Literal["stream.heartbeat"] = "stream.heartbeat"
    used_last_minute: int | None = None
    budget_per_min: float | None = None
    running: int = 0
    budget_processes: int | None = Field(
        default=None, description="makestream processes sharing the organization's budget."
    )
    failing: str | None = Field(
        default=None,
        description="The latest request to Make failed and none has succeeded since: its "
        "one-line error. Absent while requests succeed.",
    )


class StreamLagged(_Event):
    type: Literal["stream.lagged"] = "stream.lagged"
    message: str


class StreamClosed(_Event):
    type: Literal["stream.closed"] = "stream.closed"
    reason: str
    exit_code: int
    summary: dict[str, Any] = Field(default_factory=dict)


Event = Annotated[
    StreamOpened
    | ExecutionStarted
    | ExecutionExpected
    | ExecutionProgress
    | ExecutionFinished
    | ModuleResult
    | ScenarioChanged
    | ScenarioState
    | AlertRaised
    | AlertResolved
    | ApiThrottled
    | StreamError
    | StreamHeartbeat
    | StreamLagged
    | StreamClosed,
    Field(discriminator="type"),
]

EVENT_TYPES: tuple[type[_Event], ...] = (
    StreamOpened,
    ExecutionStarted,
    ExecutionExpected,
    ExecutionProgress,
    ExecutionFinished,
    ModuleResult,
    ScenarioChanged,
    ScenarioState,
    AlertRaised,
    AlertResolved,
    ApiThrottled,
    StreamError,
    StreamHeartbeat,
    StreamLagged,
    StreamClosed,
)
KNOWN_TYPES = frozenset(t.model_fields["type"].default for t in EVENT_TYPES)

# Validates any event by its `type`; public for fast paths that parse many lines.
EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)


def encode(event: _Event) -> bytes:
    """One NDJSON line (with its trailing newline). Unset optional fields are left out.

    Text is kept as it came, with nothing a terminal would obey (`safetext.json_dumps`)."""
    from makestream.safetext import json_dumps

    return json_dumps(event.model_dump(mode="json", exclude_none=True)) + b"\n"


def decode(line: bytes | str) -> _Event:
    """Parse and validate one line. Raises ValueError with a short reason."""
    try:
        data = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    if not isinstance(data.get("type"), str):
        raise ValueError("type: missing or not a string")
    if data["type"] not in KNOWN_TYPES:
        raise ValueError(f"unknown event type {data.get('type')!r}")
    try:
        return EVENT_ADAPTER.validate_python(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"][1:]) or "event"
        raise ValueError(f"{where}: {first['msg']}") from None


def read_ndjson(
    lines: Iterable[bytes], *, source: str = "<stdin>", skip_invalid: bool = False
) -> Iterator[_Event]:
    """Yield validated events from NDJSON lines; blank lines are ignored.

    A bad line raises UsageError naming the source and line number, unless ``skip_invalid``,
    in which case it is skipped. Events of unknown types are skipped either way, as the
    contract asks of consumers.
    """
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            yield decode(raw)
        except ValueError as exc:
            if str(exc).startswith("unknown event type") and b'"type"' in raw:
                continue
            if skip_invalid:
                continue
            raise UsageError(f"{source}:{number}: invalid event: {exc}") from None


# Every event as written carries these; the models give them defaults only so that a line from
# a newer or older producer can still be read.
ENVELOPE = ("v", "type", "seq", "ts")
_FORMATS = {"ts": "date-time", "started_at": "date-time", "ended_at": "date-time", "url": "uri",
            "due_at": "date-time", "next_exec": "date-time"}


def _declare_format(prop: dict[str, Any], fmt: str) -> None:
    if prop.get("type") == "string":
        prop["format"] = fmt
    for branch in prop.get("anyOf", ()):
        if branch.get("type") == "string":
            branch["format"] = fmt


def json_schema() -> dict[str, Any]:
    """The JSON Schema of every event (``makestream schema``), as consumers should check it:
    the envelope is required of every event, and times and links declare their formats."""
    schema = EVENT_ADAPTER.json_schema()
    schema["title"] = "makestream event"
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    events = {model.__name__ for model in EVENT_TYPES}
    for name, definition in schema["$defs"].items():
        props = definition.get("properties", {})
        for field, fmt in _FORMATS.items():
            if field in props:
                _declare_format(props[field], fmt)
        if name in events:
            required = [f for f in ENVELOPE if f in props]
            required += [f for f in definition.get("required", []) if f not in required]
            definition["required"] = required
    return schema


def write_line(stream: IO[bytes], event: _Event) -> None:
    """Write one event and flush, so a pipe reader sees it at once."""
    stream.write(encode(event))
    stream.flush()
