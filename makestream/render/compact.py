"""Compact output: one human-readable line per event, for logs and slow terminals.

The text of a line is the same with or without colour; colour only wraps the leading word (and
dims the clock and idle lines), so `grep` and eyes read the same thing.

Names and messages come from Make (or from a saved file `render` reads) and may hold terminal
control sequences: `CompactWriter.write` cleans each line's text (`makestream.safetext.clean`)
before it adds colour, the one place where a line reaches the stream. Lines are not shortened:
a log keeps the whole message.
"""

from __future__ import annotations

from typing import IO

from makestream.events import (
    AlertRaised,
    AlertResolved,
    ApiThrottled,
    ExecutionExpected,
    ExecutionFinished,
    ExecutionProgress,
    ExecutionStarted,
    ModuleResult,
    ScenarioChanged,
    ScenarioState,
    StreamClosed,
    StreamError,
    StreamHeartbeat,
    StreamLagged,
    StreamOpened,
    _Event,
)
from makestream.render.text import duration as _ms
from makestream.render.text import plural, time_of_day
from makestream.safetext import clean


def describe(event: _Event) -> str:
    """The text of one event, without time stamp."""
    who = f"{event.scenario_id}" if event.scenario_id is not None else ""
    name = getattr(event, "scenario_name", None)
    if name:
        who = f"{who} {name!r}"
    run = f" {event.execution_id[:8]}" if event.execution_id else ""
    match event:
        case StreamOpened():
            targets = ", ".join(map(str, event.targets))
            shared = event.budget_processes
            among = f" (shared by {shared} processes)" if shared > 1 else ""
            budget = f"budget {event.budget_per_min:g}/min of {event.api_limit}{among}"
            return f"watching {targets} · {budget}"
        case ExecutionStarted():
            expected = event.expected_duration_ms
            eta = f", expected {_ms(expected)}" if expected else ""
            return f"started  {who}{run} ({event.source}{eta})"
        case ExecutionExpected():
            expected = event.expected_duration_ms
            eta = f", usually {_ms(expected)}" if expected else ""
            return (f"expected {who} (scheduled {time_of_day(event.due_at)} UTC{eta}; "
                    "not listed by Make yet)")
        case ScenarioState():
            return f"state    {who} {_state_words(event)}"
        case ExecutionProgress():
            pct = f"{event.percent:.0f}% " if event.percent is not None else ""
            # Only progress that rests on past durations is an estimate; module counts are not.
            note = " (estimate)" if event.basis == "history" else ""
            return f"running  {who}{run} {pct}{_ms(event.elapsed_ms)} elapsed{note}"
        case ExecutionFinished():
            extra = ""
            if event.error is not None and event.error.message:
                cause = f" in {event.error.cause_module}" if event.error.cause_module else ""
                extra = f" · {event.error.message}{cause}"
            ops = f" · {event.operations} ops" if event.operations is not None else ""
            link = f" · {event.url}" if event.url else ""
            return f"{event.status:<8} {who}{run} {_ms(event.duration_ms)}{ops}{extra}{link}"
        case ModuleResult():
            return (
                f"module   {who}{run} #{event.module_id} {event.module} {event.status}"
                + (f" ({plural(event.bundles, 'bundle')})" if event.bundles is not None else "")
            )
        case ScenarioChanged():
            fields = ", ".join(f"{f}={getattr(event, f)}" for f in event.changed)
            return f"changed  {who} {fields}"
        case AlertRaised():
            return f"ALERT    [{event.severity}] {event.message}"
        case AlertResolved():
            return f"resolved [{event.severity}] {event.message}"
        case ApiThrottled():
            return f"throttled by Make; retrying in {event.retry_in_s:g}s"
        case StreamError():
            kind = "fatal" if event.fatal else "retrying"
            return f"error    {event.message} ({kind})"
        case StreamHeartbeat():
            used = "?" if event.used_last_minute is None else event.used_last_minute
            line = f"budget   {used} requests last minute · {event.running} running"
            return f"{line} · failing: {event.failing}" if event.failing else line
        case StreamLagged():
            return f"lagged   {event.message}"
        case StreamClosed():
            s = event.summary
            return (
                f"closed   {event.reason} · exit {event.exit_code} · {s.get('finished', 0)} "
                f"finished ({s.get('success', 0)} ok, {s.get('warning', 0)} warning, "
                f"{s.get('error', 0)} error)"
            )
    return f"{event.type} {who}{run}"


def _state_words(event: ScenarioState) -> str:
    words = ["inactive" if event.is_active is False else "active"]
    if event.is_invalid:
        words.append("stopped after errors")
    if event.is_paused:
        words.append("paused by Make")
    if event.last_run is not None:
        when = time_of_day(event.last_run.started_at)
        words.append(f"last run {event.last_run.status}" + (f" {when} UTC" if when else ""))
    else:
        words.append("no recent runs")
    if event.success_rate is not None:
        words.append(f"{event.success_rate:.0%} ok of {event.sample_size}")
    if event.next_exec:
        words.append(f"next {time_of_day(event.next_exec)} UTC")
    if event.dlq_count:
        words.append(plural(event.dlq_count, "incomplete run"))
    if event.queue_count:
        words.append(f"{event.queue_count} queued")
    return " · ".join(words)


# Plain ANSI SGR codes: the basic colours follow the terminal's palette (light or dark).
_SGR = {"green": "32", "yellow": "33", "red": "31", "bold red": "1;31", "bold": "1", "dim": "2"}


def _style(event: _Event) -> tuple[str, bool]:
    """The style of the leading word, and whether it covers the whole line."""
    match event:
        case ExecutionFinished() | ModuleResult():
            return {"success": "green", "warning": "yellow"}.get(event.status, "red"), False
        case ExecutionStarted() | ExecutionExpected() | StreamOpened() | StreamClosed():
            return "bold", False
        case StreamHeartbeat() if event.failing:
            return "bold red", False
        case ExecutionProgress() | StreamHeartbeat():
            return "dim", True
        case ScenarioChanged() | ScenarioState():
            return ("red" if event.is_invalid else "yellow" if event.is_paused else ""), False
        case AlertRaised():
            return ("bold red" if event.severity == "critical" else "yellow"), False
        case AlertResolved():
            return "green", False
        case ApiThrottled():
            return "yellow", False
        case StreamError():
            return ("bold red" if event.fatal else "yellow"), False
        case StreamLagged():
            return "bold red", False
    return "", False


def paint(event: _Event, clock: str, text: str) -> str:
    """The line `clock text` with ANSI colour; stripping the codes gives the plain line."""
    style, whole = _style(event)
    dim = f"\x1b[2m{clock}\x1b[0m"
    if not style:
        return f"{dim} {text}"
    code = _SGR[style]
    if whole:
        return f"{dim} \x1b[{code}m{text}\x1b[0m"
    word, space, rest = text.partition(" ")
    return f"{dim} \x1b[{code}m{word}\x1b[0m{space}{rest}"


class CompactWriter:
    """Writes `HH:MM:SS text` lines, flushed per event, coloured when `color` is true."""

    def __init__(self, stream: IO[str], *, color: bool = False) -> None:
        self.stream = stream
        self.color = color

    def write(self, event: _Event) -> None:
        # Everything from the event is cleaned here, after `describe` and before `paint`, so that
        # no field, however it is formatted, reaches the terminal raw; `ts` too, since a saved
        # file may have anything there.
        # A finished run is stamped with its own end (from Make's log), not with when it was
        # written: a back-filled cron log then says when each run happened.
        when = getattr(event, "ended_at", None) or event.ts
        clock = clean(when[11:19] if len(when) >= 19 else "")
        text = clean(describe(event))
        line = paint(event, clock, text) if self.color else f"{clock} {text}"
        self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        self.stream.flush()
