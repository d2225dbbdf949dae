"""What every format shares: the rendered request, the context it is rendered in, and the summary
of an alert that the chat formats (Slack, Discord, Teams) lay out each in their own way."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from makestream.events import AlertRaised, AlertResolved, _Event
from makestream.sinks.formats.text import extra_text, figure, run_url, visible

AlertEvent = AlertRaised | AlertResolved
State = Literal["raised", "renotified", "resolved"]


class NotAnAlert(ValueError):
    """The format renders alert events only, and was handed another kind."""


@dataclass(frozen=True)
class Rendered:
    """One webhook request's body, its Content-Type, and any headers the format adds."""

    body: bytes
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Context:
    """What a format needs beyond the event. Renderers are pure: the same event in the same
    context always renders the same bytes (the snapshot tests rely on it).

    `now` (RFC 3339) stands in for the time of an event that carries none. `wall` is the
    wall-clock time the sender was offered the event: formats whose receivers compare times with
    their own clocks (Alertmanager's) use it rather than the event's `ts`, which follows the
    engine's clock (faster than real time under a sped-up demo). `raised_at` is when a resolved
    alert was raised, where the sender remembers it (Alertmanager's `startsAt`), on the clock of
    `wall` when that is given."""

    now: str
    source: str = "makestream"
    receiver: str = "makestream"
    external_url: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    raised_at: str | None = None
    wall: str | None = None


def alert_only(event: _Event, format_name: str) -> AlertEvent:
    if not isinstance(event, AlertRaised | AlertResolved):
        raise NotAnAlert(f"the {format_name} format renders alert events, not {event.type}")
    return event


@dataclass(frozen=True)
class Summary:
    """An alert as the chat formats show it; every text is `visible` but not yet escaped."""

    state: State
    severity: str
    title: str
    message: str
    facts: tuple[tuple[str, str], ...]
    alert_id: str
    when: str
    url: str | None


_MARK = {"critical": "🔴", "warning": "🟠"}


def state_of(event: AlertEvent) -> State:
    if isinstance(event, AlertResolved):
        return "resolved"
    # The engine re-sends a long-lasting alert with `renotified: true` (--renotify).
    return "renotified" if getattr(event, "renotified", False) is True else "raised"


def title_of(event: AlertEvent, state: State) -> str:
    rule = visible(event.rule)
    if state == "resolved":
        return f"✅ Resolved: {rule}"
    still = " (still active)" if state == "renotified" else ""
    return f"{_MARK.get(event.severity, '🔴')} {event.severity.capitalize()} alert{still}: {rule}"


def summarize(event: AlertEvent, context: Context) -> Summary:
    state = state_of(event)
    facts: list[tuple[str, str]] = [("Severity", event.severity)]
    name = extra_text(event, "scenario_name")
    if event.scenario_id is not None:
        scenario = str(event.scenario_id)
        facts.append(("Scenario", f"{visible(name)} ({scenario})" if name else scenario))
    if event.execution_id is not None:
        facts.append(("Execution", visible(event.execution_id)))
    facts += [("Value", figure(event.value)), ("Threshold", figure(event.threshold))]
    return Summary(
        state=state,
        severity=event.severity,
        title=title_of(event, state),
        message=visible(event.message),
        facts=tuple(facts),
        alert_id=visible(event.alert_id),
        when=event.ts or context.now,
        url=run_url(event),
    )
