"""What the documentation says that the command definitions cannot: exit statuses, environment,
files, examples, and the event reference.

Each table is written once here and rendered twice, into the man page and into the README, so the
two never tell different stories. Text uses a small markup both renderers understand: ``code``
in backticks, paragraphs separated by blank lines.

Where a fact lives in code, the table is checked against the code rather than copied from it:
every `ExitCode` member must have a description, every event type a summary, and the docs tests
check that each documented environment variable is read somewhere in the package.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from makestream import limits
from makestream.errors import ExitCode
from makestream.events import EVENT_TYPES, SCHEMA_VERSION
from makestream.files import size_text

# --- exit status --------------------------------------------------------------------------------

EXIT_STATUS: dict[ExitCode, str] = {
    ExitCode.OK: "Success. Also when a reader closed the pipe (`| head -1`): makestream ends "
    "quietly.",
    ExitCode.EXECUTION_ERROR: "An execution ended in error (with `--exit-status`).",
    ExitCode.USAGE: "Usage or configuration error: a bad option, argument, value, cursor or "
    "config file.",
    ExitCode.EXECUTION_WARNING: "An execution ended with warnings (with `--exit-status`).",
    ExitCode.ALERT: "A threshold alert of the failing severity was raised (`--fail-on-alert`).",
    ExitCode.TIMEOUT: "`--timeout` was reached first.",
    ExitCode.CANNOT_MONITOR: "Cannot monitor: authentication failed, the scenario or execution "
    "was not found, or Make's API stayed unreachable after retries. One-shot commands "
    "(`watch --no-follow`, `state`, `flow`, `thresholds test`) give up after 3 tries of a "
    "request, none started more than 60 s after the first, each try bounded at 20 s as a "
    "whole; a following watch gives up only while it starts (`--run`, `--execution`: 4 tries, "
    "each bounded at 30 s) and later keeps retrying through outages, reporting them as "
    "`stream.error` events.",
    ExitCode.INTERRUPTED: "Interrupted (SIGINT, Ctrl-C).",
    ExitCode.TERMINATED: "Terminated (SIGTERM). `serve-sse` treats SIGTERM as its normal "
    "shutdown: it closes every stream with `stream.closed` and exits 0.",
}

EXIT_STATUS_NOTE = (
    "With several executions the worst outcome wins: 6 > 1 > 5 > 4 > 3 > 0. `watch` and "
    "`state` report outcomes (1, 3) only with `--exit-status`; `watch` exits 4 only with "
    "`--fail-on-alert`. An alert sink that fails (`--webhook`, `--alertmanager`) never changes "
    "the status: it is a `stream.error` event and one `makestream: warning:` line on stderr. "
    "With NDJSON, the last line, `stream.closed`, carries the same `exit_code`."
)

# --- environment --------------------------------------------------------------------------------


@dataclass(frozen=True)
class EnvVar:
    """A variable makestream reads, and what it does."""

    name: str
    text: str


ENVIRONMENT: tuple[EnvVar, ...] = (
    EnvVar(
        "MAKE_API_TOKEN",
        "The Make API token (Profile > API access > Add token) or an OAuth access token. A "
        "monitor needs the `scenarios:read` scope; `--run` also needs `scenarios:run`, and "
        "`organizations:read` lets makestream read the organization's request limit. "
        "`--token-file` (`--make-token-file` for `serve-sse`) takes precedence. The token never "
        "appears in output, logs, errors or events.",
    ),
    EnvVar(
        "MAKE_ZONE",
        "The Make zone of the token: `eu1.make.com`, `eu2.make.com`, `us1.make.com`, "
        "`us2.make.com`, `eu1.make.celonis.com` or `us1.make.celonis.com`.",
    ),
    EnvVar(
        "MAKE_API_URL",
        "The API base URL, for a private or White Label instance or the simulator "
        "(`http://127.0.0.1:8900/api/v2`). Takes precedence over `MAKE_ZONE`.",
    ),
    EnvVar(
        "MAKESTREAM_CONFIG",
        "The configuration file, instead of `$XDG_CONFIG_HOME/makestream/config.toml`.",
    ),
    EnvVar(
        "XDG_CONFIG_HOME",
        "Where the configuration directory is; `~/.config` when unset or not an absolute path.",
    ),
    EnvVar(
        "MAKESTREAM_STORE",
        "The history store that `watch`, `serve-sse` and `history` use, instead of "
        "`$XDG_DATA_HOME/makestream/history.db`; `off` keeps no history. `--store` and "
        "`--no-store` take precedence.",
    ),
    EnvVar(
        "XDG_DATA_HOME",
        "Where the history store's directory is; `~/.local/share` when unset or not an absolute "
        "path.",
    ),
    EnvVar(
        "NO_COLOR",
        "When set to anything non-empty, `--color auto` means no colour.",
    ),
    EnvVar(
        "MAKESTREAM_SSE_TOKEN",
        "The bearer token `serve-sse` requires of its clients, unless `--auth-token-file` is "
        "given.",
    ),
    EnvVar(
        "MAKESTREAM_BUDGET_SHARE",
        "makestream's share of the organization's request limit (0.01 to 1; default 0.8), for "
        "all its processes on this machine together; `--budget-share` takes precedence.",
    ),
    EnvVar(
        "MAKESTREAM_BUS",
        "`serve-sse`: the Redis URL of `--bus` (`redis://HOST:PORT/DB` or `rediss://…`), to run "
        "as one replica of several; `--bus` takes precedence.",
    ),
    EnvVar(
        "MAKESTREAM_BUDGET_DIR",
        "The folder of the shared request budget's files, instead of `/run/user/UID/makestream` "
        "(or `/tmp/makestream-UID` where the former does not exist). It must belong to you and "
        "not be writable by others; every process that should share one budget must see the "
        "same value.",
    ),
    EnvVar(
        "MAKESTREAM_MCP_TOKEN",
        "The bearer token `mcp --http` requires of its clients, unless `--auth-token-file` is "
        "given.",
    ),
    EnvVar(
        "MAKESTREAM_CLOCK",
        "For testing only: `SPEED@EPOCH_SECONDS` makes makestream's clock run `SPEED` times "
        "faster than real time, so it can share a fast clock with `makestream sim serve`. "
        "Against a real Make zone it only makes makestream's own timing wrong.",
    ),
)

# --- limits -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Limit:
    """A cap on something that comes from outside, and what happens past it."""

    what: str
    value: str
    past_it: str


def _s(seconds: float) -> str:
    return f"{seconds:g} s"


LIMITS: tuple[Limit, ...] = (
    Limit("A cursor (`--resume`, `--cursor-file`, `Last-Event-ID`)",
          f"{size_text(limits.CURSOR_MAX_CHARS)} of text, inflating to at most "
          f"{size_text(limits.CURSOR_MAX_INFLATED)}, {limits.CURSOR_MAX_IDS:,} execution ids",
          "exit 2, or 400 from `serve-sse`"),
    Limit("The config file", size_text(limits.CONFIG_MAX_BYTES), "exit 2"),
    Limit("`--data` (text or `@FILE`)", size_text(limits.DATA_MAX_BYTES)
          + f", nested at most {limits.JSON_MAX_DEPTH} levels", "exit 2"),
    Limit("A token file", size_text(limits.TOKEN_MAX_BYTES), "exit 2"),
    Limit("`sim serve --world`", size_text(limits.WORLD_MAX_BYTES), "exit 2"),
    Limit("One line of `render`'s input", size_text(limits.NDJSON_LINE_MAX_BYTES),
          "a one-line error naming the line"),
    Limit("One answer from Make's API", size_text(limits.RESPONSE_MAX_BYTES)
          + f" (an error answer: {size_text(limits.ERROR_BODY_MAX_BYTES)} is read), nested at "
          f"most {limits.JSON_MAX_DEPTH} levels",
          "a payload error (`stream.error`; a one-shot command exits 6)"),
    Limit("Numbers in Make's answers", f"integers 0 to 2^53, durations up to "
          f"{limits.MAKE_DURATION_MAX_MS // 86_400_000} days, years {limits.MAKE_YEAR_MIN} to "
          f"{limits.MAKE_YEAR_MAX}", "a payload error, as above; in one run or scenario of a "
          "list, that field is taken as unknown (a run's figure is `null`, a scenario's flag "
          "keeps its last value), said once in a `stream.error` (a warning on stderr from a "
          "one-shot command), and the rest is read"),
    Limit("Make's `Retry-After`", _s(limits.RETRY_AFTER_MAX_S),
          "the wait is cut; `api.throttled` carries `asked_s`"),
    Limit("An HTTP request head to `serve-sse`", size_text(limits.HEADERS_MAX_BYTES)
          + f", sent within {_s(limits.HEADERS_TIMEOUT_S)}",
          "431 (too large) or 408 (too slow), and the connection is closed"),
    Limit("Scenario ids in one `serve-sse` request (`?scenario=`)",
          f"{limits.FILTER_MAX_IDS}, each at most 19 digits", "400"),
    Limit("An idle kept-alive connection to `serve-sse`", _s(limits.IDLE_TIMEOUT_S), "closed"),
    Limit("Monitors one `mcp` server runs at once", f"{limits.MCP_MONITORS_MAX}",
          "`start_monitoring` is a tool error (stopped monitors do not count)"),
    Limit("A monitor nobody reads (`mcp --monitor-idle`)",
          _s(limits.MCP_MONITOR_IDLE_S) + " by default", "it is stopped"),
    Limit("`resources/subscribe` subscriptions of one `mcp` session",
          f"{limits.MCP_SUBSCRIPTIONS_MAX}, to running monitors only", "a protocol error"),
    Limit("A request body to `mcp --http`", size_text(limits.MCP_HTTP_BODY_MAX_BYTES), "413"),
    Limit("Scenario ids in one `mcp` tool call", f"{limits.MCP_SCENARIOS_MAX:,}",
          "a tool error"),
    Limit("`data` of a run started by `stream_live_execution`",
          size_text(limits.MCP_DATA_MAX_BYTES) + f", nested at most {limits.JSON_MAX_DEPTH} "
          "levels", "a tool error"),
    Limit("`stream_live_execution`'s `timeout_s`", _s(limits.MCP_FOLLOW_MAX_S), "a tool error"),
    Limit("Runs and alerts a monitor keeps for the next `get_execution_state`",
          f"{limits.MCP_BACKLOG_MAX:,}", "the oldest go; `dropped` counts them"),
)

LIMITS_NOTE = (
    "Files named on the command line must be regular files (a pipe is accepted for `--data` "
    "and token files); a device or directory is refused before it is opened. Text from Make "
    "(names, error messages) is shown with control characters made visible, never sent to the "
    "terminal as they are."
)

# --- files --------------------------------------------------------------------------------------

FILES: tuple[tuple[str, str], ...] = (
    (
        "$XDG_CONFIG_HOME/makestream/config.toml",
        "The configuration: alert thresholds, in general and per scenario (default "
        "`~/.config/makestream/config.toml`; `MAKESTREAM_CONFIG` names another file). A missing "
        "file means the built-in defaults. `makestream thresholds set`, `unset` and `reset` edit "
        "it in place, keeping comments and order, and replace it atomically; `makestream "
        "thresholds check` validates it.",
    ),
    (
        "$XDG_DATA_HOME/makestream/history.db",
        "The history store (SQLite, WAL mode; `~/.local/share/makestream/history.db` by default, "
        "`MAKESTREAM_STORE` or `--store` names another file, `--no-store` keeps none). `watch` "
        "and `serve-sse` add every finished execution, alert transition and scenario change they "
        "report, once per execution however many processes write the file, and delete what is "
        "older than `--keep` (90 days) a little at a time; a watch learns typical durations from "
        "it before reading Make's logs. `makestream history` reads it. A file that cannot be "
        "used (damaged, locked, read-only, disk full, newer schema) never stops a stream: it is "
        "reported once on stderr and as a `stream.error` event.",
    ),
    (
        "cursor files (--cursor-file PATH)",
        "One line: the cursor of the last event written to the output. `watch --cursor-file` "
        "reads it at start (a missing file means: start afresh) and replaces it atomically after "
        "every event it has written, so a crash leaves the old cursor or the new one and a rerun "
        "reports everything it has not reported yet (and, after a crash between a line and its "
        "cursor, that one line again). The directory must exist.",
    ),
    (
        "/run/user/UID/makestream/budget-*.json (else /tmp/makestream-UID/)",
        "The request budget that every makestream process of this user shares per Make "
        "organization (or per token, when the token cannot read its organization): the sends of "
        "the last minute and any 429 pause, read and written under a lock. Safe to delete at any "
        "time; a process that cannot use the folder keeps to a budget of its own and says so "
        "once on stderr.",
    ),
    (
        "token files (--token-file PATH)",
        "The Make API token on one line, as an alternative to `MAKE_API_TOKEN`.",
    ),
)

# --- examples (man page) ------------------------------------------------------------------------

# (what it does, the command). Scenario 123 and team 42 stand for the reader's own ids; the
# README's tour uses the simulated zone's ids instead, so that its examples run.
EXAMPLES: tuple[tuple[str, str], ...] = (
    (
        "Try makestream without an account: a live view of the built-in simulated zone.",
        "makestream watch --demo",
    ),
    (
        "One line per finished execution, as they happen:",
        "makestream watch 123 | jq -c 'select(.type == \"execution.finished\")\n"
        "    | {execution_id, status, duration_ms}'",
    ),
    (
        "The failures of the last hour in a team, with their error and a link to the run:",
        "makestream watch --team 42 --no-follow | jq -r 'select(.type == \"execution.finished\"\n"
        "    and .status == \"error\") | \"\\(.scenario_name): \\(.error.message) \\(.url)\"'",
    ),
    (
        "Runs, failures and average duration per scenario over the last hour:",
        "makestream watch --team 42 --no-follow | jq -s 'map(select(.type == "
        "\"execution.finished\"))\n"
        "    | group_by(.scenario_id) | map({scenario: .[0].scenario_name, runs: length,\n"
        "      errors: map(select(.status == \"error\")) | length,\n"
        "      avg_ms: (map(.duration_ms) | add / length | floor)})'",
    ),
    (
        "From cron, every five minutes: append what finished since the last run, nothing twice "
        "(a crontab line):",
        "*/5 * * * * makestream watch --team 42 --no-follow \\\n"
        "    --cursor-file \"$HOME/.local/state/makestream/team-42.cur\" \\\n"
        "    >> \"$HOME/makestream/team-42.ndjson\"",
    ),
    (
        "In CI, run a scenario and fail the job unless the run succeeds within ten minutes:",
        "makestream watch 123 --run --data '{\"order\": 1001}' --exit-status --timeout 10m",
    ),
    (
        "Alert when two runs in a row fail, and stop with status 4 when it happens:",
        "makestream thresholds set consecutive_failures 2 --severity critical\n"
        "makestream watch --team 42 --fail-on-alert critical",
    ),
    (
        "Serve the events to dashboards, then read them with curl:",
        "MAKESTREAM_SSE_TOKEN=secret makestream serve-sse --team 42 --host 0.0.0.0\n"
        "curl -N -H 'Authorization: Bearer secret' \\\n"
        "    'http://HOST:8787/v1/events?type=execution.*'",
    ),
    (
        "Save a stream and look at it again later:",
        "makestream watch 123 --count 10 > runs.ndjson\nmakestream render runs.ndjson",
    ),
)

SEE_ALSO: tuple[tuple[str, int], ...] = (("jq", 1), ("curl", 1))

DESCRIPTION_EXTRA = (
    "Make offers no push API for executions, so makestream learns about them by polling Make's "
    "REST API. It keeps to 80% of the organization's per-minute request limit (read from the "
    "organization, else `--api-limit`), spends requests where a run is most likely to have "
    "started or ended, and backs off when Make answers 429, reporting it as an `api.throttled` "
    "event rather than failing.\n\n"
    "Standard output carries data only: NDJSON events (one JSON object per line, flushed per "
    "event) when it is a pipe or a file, a live view when it is a terminal (`--format` "
    "overrides). Diagnostics go to standard error. Colour follows `--color` and `NO_COLOR`.\n\n"
    "SCENARIO is a scenario id, the number in the scenario's URL in Make. Without an account, "
    "`--demo` uses a built-in simulated Make zone, and `makestream sim serve` serves one over "
    "HTTP. The demo behaves as a real account may: on wall-clock time (`--speed` runs it faster), "
    "with runs listed only once they end; runs a watch starts or follows show progress, and "
    "scheduled runs show as expected once their nextExec passes."
)

# --- events -------------------------------------------------------------------------------------

# One line per event type. A model's own docstring, when it has one, takes precedence, so these
# can move into `makestream.events` without touching the generator. A new event type with
# neither makes the generator fail, so it cannot go undocumented.
EVENT_SUMMARIES: dict[str, str] = {
    "stream.opened": "The first event of every stream: what is watched and the request budget.",
    "execution.started": "A run began, or makestream first saw it running.",
    "execution.progress": "A running execution's elapsed time and, where history or module "
    "data allows, an estimated percentage; `basis` says which.",
    "execution.finished": "A run ended. Delivered exactly once per execution, also across "
    "restarts resumed from a cursor.",
    "module.result": "One module's result in a finished run (`watch --modules`).",
    "scenario.changed": "A scenario was activated, deactivated, invalidated or paused, or its "
    "incomplete executions (DLQ) or webhook queue changed.",
    "alert.raised": "A threshold rule fired (see `makestream thresholds`).",
    "alert.resolved": "A raised alert's condition no longer holds.",
    "api.throttled": "Make answered 429; makestream waits and tightens its budget.",
    "stream.error": "Something failed. Transient errors are retried and the stream goes on; a "
    "fatal one ends it.",
    "stream.heartbeat": "A sign of life, with the request budget in use.",
    "stream.lagged": "An SSE client fell behind and is disconnected.",
    "stream.closed": "The last event: why the stream ended, its exit status and a summary.",
}

# What a field means, for fields whose model gives no `description`. As with the summaries, the
# model's own description takes precedence. Keys are "type.field", or "field" for every type.
FIELD_NOTES: dict[str, str] = {
    "scenario_name": "The scenario's name in Make.",
    "execution.progress.elapsed_ms": "Time since the run started.",
    "execution.progress.expected_duration_ms": "The expected total duration, when known.",
    "execution.finished.status": "How the run ended.",
    "execution.finished.duration_ms": "How long the run took.",
    "execution.finished.operations": "Operations the run used.",
    "execution.finished.transfer_bytes": "Data the run transferred, in bytes.",
    "execution.finished.centicredits": "What the run cost, in hundredths of a credit.",
    "execution.finished.error": "For a failed run: Make's message, the error's name, and the "
    "module and app at fault.",
    "module.result.module_id": "The module's id in the blueprint.",
    "module.result.app": "The module's app.",
    "module.result.status": "The module's result: `success`, `warning` or `error`.",
    "module.result.bundles": "Bundles the module processed.",
    "module.result.size": "Data the module transferred, in bytes.",
    "scenario.changed.changed": "The names of the fields below that changed.",
    "scenario.changed.is_active": "The scenario is on.",
    "scenario.changed.is_invalid": "Make deactivated the scenario after errors.",
    "scenario.changed.is_paused": "The scenario is paused (a subscription problem).",
    "scenario.changed.dlq_count": "Incomplete executions waiting (DLQ).",
    "scenario.changed.queue_count": "Webhook requests waiting in the scenario's queue.",
    "scenario.state.team_id": "The scenario's team.",
    "scenario.state.is_active": "The scenario is on.",
    "scenario.state.is_invalid": "Make deactivated the scenario after errors.",
    "scenario.state.is_paused": "The scenario is paused (a subscription problem).",
    "scenario.state.dlq_count": "Incomplete executions waiting (DLQ).",
    "scenario.state.queue_count": "Webhook requests waiting in the scenario's queue (webhook "
    "scenarios).",
    "rule": "The rule's key, as `makestream thresholds` lists it.",
    "severity": "How serious it is.",
    "value": "The value that was measured.",
    "threshold": "The threshold it was compared with.",
    "message": "One line for people.",
    "api.throttled.retry_in_s": "Seconds until makestream asks again.",
    "api.throttled.rate_per_min": "The request rate makestream now keeps to, per minute.",
    "stream.error.error_type": "The kind of error, e.g. `TransportError`, `AuthError`, `sink`.",
    "stream.error.fatal": "True when the error ends the stream.",
    "stream.error.retry_in_s": "For a transient error: seconds until the next try.",
    "stream.heartbeat.used_last_minute": "Requests sent in the last minute.",
    "stream.heartbeat.budget_per_min": "Requests per minute makestream allows itself.",
    "stream.heartbeat.running": "Executions in flight.",
    "stream.closed.reason": "Why it ended: `finished`, `count`, `caught up`, `timeout`, "
    "`alert`, `error`, `interrupted`, ...",
    "stream.closed.exit_code": "The exit status the process ends with.",
    "stream.closed.summary": "Counts of finished executions: `finished`, `success`, `warning`, "
    "`error`.",
}

EVENT_FORMAT = (
    "One JSON object per line, UTF-8, each line flushed as it is written. Objects are flat and "
    f"snake_case. Every event carries the common fields below; schema version `v` is "
    f"{SCHEMA_VERSION}. New event types and fields may appear: consumers ignore what they do not "
    "know. Fields without a value are left out. `makestream schema` prints the JSON Schema."
)


@dataclass(frozen=True)
class FieldDoc:
    """One field of an event, for the reference tables."""

    name: str
    type: str
    description: str


@dataclass(frozen=True)
class EventDoc:
    """One event type: its summary and its own fields (the common ones are listed once)."""

    type: str
    summary: str
    fields: tuple[FieldDoc, ...]


def event_reference() -> tuple[tuple[FieldDoc, ...], tuple[EventDoc, ...]]:
    """The common fields and every event type, from the models in `makestream.events`."""
    from makestream.events import json_schema

    schema = json_schema()
    defs: dict[str, Any] = schema["$defs"]
    models = [(model, defs[model.__name__]["properties"]) for model in EVENT_TYPES]
    # The common fields are those every event type has, in the order of the first.
    common_names = [
        name for name in models[0][1] if all(name in props for _model, props in models)
    ]
    first = models[0][1]
    common = tuple(
        # `type` is a different constant in every model; in common it is a string.
        FieldDoc(name, "string", "The event type: one of those below.")
        if "const" in first[name]
        else FieldDoc(name, _json_type(first[name], defs), str(first[name].get("description", "")))
        for name in common_names
    )
    events: list[EventDoc] = []
    for model, properties in models:
        type_name = str(model.model_fields["type"].default)
        own = tuple(
            FieldDoc(name, _json_type(prop, defs), _meaning(type_name, name, prop))
            for name, prop in properties.items()
            if name not in common_names
        )
        events.append(EventDoc(type_name, _summary(model, type_name), own))
    return common, tuple(events)


def _meaning(type_name: str, name: str, prop: dict[str, Any]) -> str:
    own = str(prop.get("description", ""))
    return own or FIELD_NOTES.get(f"{type_name}.{name}") or FIELD_NOTES.get(name, "")


def _summary(model: type, type_name: str) -> str:
    own_doc = model.__dict__.get("__doc__")
    if own_doc:
        return " ".join(own_doc.split())
    try:
        return EVENT_SUMMARIES[type_name]
    except KeyError:
        raise LookupError(
            f"event type {type_name!r} has no summary: give {model.__name__} a docstring "
            "or add it to makestream.docs.reference.EVENT_SUMMARIES"
        ) from None


def _json_type(prop: dict[str, Any], defs: dict[str, Any]) -> str:
    """A short type for a JSON Schema property: `integer`, `"a" | "b"`, `string[]`, `{a, b}`."""
    if "const" in prop:
        return f'"{prop["const"]}"'
    if "enum" in prop:
        return " | ".join(f'"{value}"' for value in prop["enum"])
    if "$ref" in prop:
        target = defs[prop["$ref"].rsplit("/", 1)[-1]]
        return "{" + ", ".join(target.get("properties", {})) + "}"
    if "anyOf" in prop:
        # Optional fields are `X | null`; the encoder leaves None out, so name only X.
        kinds = [_json_type(p, defs) for p in prop["anyOf"] if p.get("type") != "null"]
        return " | ".join(kinds)
    kind = prop.get("type", "any")
    if kind == "array":
        return _json_type(prop.get("items", {}), defs) + "[]"
    return str(kind)


# --- MCP tools ----------------------------------------------------------------------------------

MCP_NOTE = (
    "`makestream mcp` serves these tools over stdio (or Streamable HTTP with `--http`). Each "
    "has an input and an output JSON Schema (`tools/list`); results carry the structured "
    "output and the same as JSON text. A bad argument, an unknown scenario or monitor, a "
    "threshold that does not exist or a token Make refuses is a result with `isError` and one "
    "sentence. The resource `makestream://monitors/{monitor_id}/state` holds a monitor's state "
    "(runs in flight, recent runs, open alerts); subscribers (`subscriptions/listen`, or "
    "`resources/subscribe` on earlier protocols) hear when a run begins or ends or an alert "
    "changes."
)


@dataclass(frozen=True)
class ToolDoc:
    """One MCP tool: what it does, its arguments (`name?` when optional) and its result."""

    name: str
    summary: str
    arguments: tuple[FieldDoc, ...]
    returns: tuple[FieldDoc, ...]


def mcp_tools() -> tuple[ToolDoc, ...]:
    """Every tool of `makestream mcp`, from the server's own `tools/list`."""
    from makestream.mcp.server import tool_list

    tools: list[ToolDoc] = []
    for tool in tool_list():
        summary = (tool.description or "").split("\n\n", 1)[0].replace("\n", " ")
        inputs, outputs = tool.input_schema, tool.output_schema or {}
        required = set(inputs.get("required", []))
        arguments = tuple(
            FieldDoc(name if name in required else f"{name}?",
                     _json_type(prop, inputs.get("$defs", {})), _description(prop))
            for name, prop in inputs.get("properties", {}).items()
        )
        returns = tuple(
            FieldDoc(name, _json_type(prop, outputs.get("$defs", {})), _description(prop))
            for name, prop in outputs.get("properties", {}).items()
        )
        tools.append(ToolDoc(tool.name, summary, arguments, returns))
    return tuple(tools)


def _description(prop: dict[str, Any]) -> str:
    """A property's description; an optional one keeps it inside its `anyOf`."""
    found = prop.get("description") or next(
        (p["description"] for p in prop.get("anyOf", []) if "description" in p), "")
    return str(found)
