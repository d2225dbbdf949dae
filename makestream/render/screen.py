"""The live screen, built from a `ViewState`.

Everything here turns view-model data into finished rich objects (Text, tables of Text) at call
time. The live writer calls `screen()` under its lock and hands the result to rich's refresh
thread, which therefore never reads a state that is being changed. Nothing is laid out with
markup strings: names and error messages from Make may contain `[brackets]`.

Layout, top to bottom, each part only when it has something to say (the summary left at the
end is in `summary.py`):

    header       version, targets, health; budget gauge
    running      one row per execution: bar, percent, elapsed, ETA (`~` marks estimates)
    finished     the latest runs, newest first
    alerts       open alerts
    scenarios    scenarios that need attention (stopped, inactive, incomplete runs, queue)
    flow         the module flow of the scenario in focus, on tall terminals
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from rich.console import Group
from rich.table import Table
from rich.text import Text

from makestream.render.flow import FlowDiagram
from makestream.render.text import (
    SEVERITY_STYLE,
    Glyphs,
    clock_span,
    duration,
    glyphs,
    plural,
    status_style,
    time_of_day,
)
from makestream.render.view import FinishedRow, RunningRow, ScenarioRow, ViewState

if TYPE_CHECKING:
    from rich.console import RenderableType

    from makestream.make.models import Blueprint

BAR_WIDTH = 20
FLOW_MIN_HEIGHT = 40  # terminal rows below which the flow diagram is left out
HEALTH_STYLE = {"ok": "green", "warn": "yellow", "fail": "bold red"}


def bar(fraction: float | None, width: int, g: Glyphs, style: str = "") -> Text:
    """A gauge that still reads without colour: done and to-do use different characters."""
    if fraction is None:
        return Text(g.bar_todo * width, style="dim")
    done = max(0, min(width, round(fraction * width)))
    text = Text()
    text.append(g.bar_done * done, style=style)
    text.append(g.bar_todo * (width - done), style="dim")
    return text


def scenario_label(scenario_id: int | None, name: str | None) -> Text:
    text = Text()
    if scenario_id is not None:
        text.append(str(scenario_id), style="dim")
    if name:
        text.append(f" {name}" if scenario_id is not None else name)
    return text


def _header(state: ViewState, now: float | None, g: Glyphs) -> RenderableType:
    grid = Table.grid(padding=(0, 1), expand=True)
    grid.add_column(ratio=1, no_wrap=True, overflow=g.overflow)
    grid.add_column(no_wrap=True, overflow=g.overflow, justify="right", max_width=48)
    title = Text()
    title.append("makestream", style="bold")
    if state.version:
        title.append(f" {state.version}", style="dim")
    if state.targets:
        shown = ", ".join(map(str, state.targets))
        title.append(f" {g.middot} watching {shown}")
    level, words = state.health_at(now)
    health = Text()
    health.append(f"{g.dot} ", style=HEALTH_STYLE[level])
    health.append(words, style=HEALTH_STYLE[level] if level != "ok" else "")
    grid.add_row(title, health)
    return Group(grid, _gauge(state, g))


def _gauge(state: ViewState, g: Glyphs) -> Text:
    gauge = Text(no_wrap=True, overflow=g.overflow)
    gauge.append("budget ", style="dim")
    per_min = state.budget_per_min
    used = state.used_last_minute
    if not per_min:
        gauge.append("not known yet", style="dim")
        return gauge
    fraction = (used or 0) / per_min
    style = "green" if fraction < 0.7 else "yellow" if fraction < 0.9 else "red"
    gauge.append_text(bar(fraction if used is not None else None, BAR_WIDTH, g, style))
    gauge.append(f" {'?' if used is None else used}/{per_min:g} requests per minute")
    if state.api_limit:
        gauge.append(f" (limit {state.api_limit})", style="dim")
    if state.budget_processes > 1:
        gauge.append(f" · shared by {state.budget_processes} processes", style="dim")
    return gauge


def _running(rows: list[RunningRow], now: float | None, g: Glyphs, limit: int) -> Table:
    # expand=True: fixed columns get their natural width, the ratio columns share the rest.
    grid = Table.grid(padding=(0, 1), expand=True)
    grid.add_column(ratio=1, no_wrap=True, overflow=g.overflow, min_width=12)
    grid.add_column(no_wrap=True, style="dim")  # run id
    grid.add_column(no_wrap=True)  # bar
    grid.add_column(no_wrap=True, justify="right", min_width=4)
    grid.add_column(no_wrap=True, justify="right")  # elapsed
    grid.add_column(no_wrap=True, min_width=10)  # ETA
    for row in rows[:limit]:
        percent = row.percent_at(now)
        remaining = row.remaining_ms(now)
        tilde = "~" if row.estimate else ""
        # Within a second of the expected end is "now", not "late 0:00".
        overdue = remaining is not None and remaining <= -1000
        gauge = bar(None if percent is None else percent / 100, BAR_WIDTH, g,
                    "yellow" if overdue else "")
        pct = Text(f"{tilde}{percent:.0f}%" if percent is not None else "")
        if remaining is None:
            eta = Text("ETA ?", style="dim")
        elif overdue:
            eta = Text(f"late {clock_span(-remaining)}", style="yellow")
        elif remaining <= 0:
            eta = Text(f"ETA {tilde}now")
        else:
            eta = Text(f"ETA {tilde}{clock_span(remaining)}")
        grid.add_row(
            scenario_label(row.scenario_id, row.scenario_name),
            Text("expected" if row.expected else row.execution_id[:8]),
            gauge,
            pct,
            Text(clock_span(row.elapsed_at(now))),
            eta,
        )
    _more(grid, len(rows) - limit, g)
    return grid


def status_text(status: str, g: Glyphs) -> Text:
    return Text(f"{g.status(status)} {status}", style=status_style(status))


def _finished(rows: list[FinishedRow], g: Glyphs, width: int) -> Table:
    table = Table(box=None, pad_edge=False, padding=(0, 1), header_style="dim", expand=True)
    table.add_column("ended", no_wrap=True, style="dim")
    table.add_column("scenario", no_wrap=True, overflow=g.overflow, ratio=1)
    wide = width >= 100
    if wide:
        table.add_column("run", no_wrap=True, style="dim")
    table.add_column("status", no_wrap=True)
    table.add_column("took", no_wrap=True, justify="right")
    table.add_column("ops", no_wrap=True, justify="right")
    for row in rows:
        who = scenario_label(row.scenario_id, row.scenario_name)
        if row.error:
            # Under the name, where the widest column gives the message the most room.
            who.append(f"\n{g.arrow} {row.error}", style="red")
        cells = [Text(time_of_day(row.ended_ts)), who]
        if wide:
            cells.append(Text(row.execution_id[:8]))
        cells += [
            status_text(row.status, g),
            Text(duration(row.duration_ms)),
            Text("" if row.operations is None else str(row.operations)),
        ]
        table.add_row(*cells)
    return table


def _more(grid: Table, hidden: int, g: Glyphs) -> None:
    if hidden > 0:
        grid.add_row(Text(f"{g.ellipsis} and {hidden} more", style="dim"))


def alerts_table(state: ViewState, g: Glyphs, limit: int) -> Table:
    grid = Table.grid(padding=(0, 1), expand=True)
    grid.add_column(no_wrap=True)
    grid.add_column(ratio=1, no_wrap=True, overflow=g.overflow)
    grid.add_column(no_wrap=True, style="dim")
    alerts = list(state.alerts.values())
    # Critical first; within a severity, the newest first (sorts are stable).
    alerts.sort(key=lambda a: a.since_ts, reverse=True)
    alerts.sort(key=lambda a: a.severity != "critical")
    for alert in alerts[:limit]:
        style = SEVERITY_STYLE.get(alert.severity, "yellow")
        glyph = g.error if alert.severity == "critical" else g.warning
        message = Text(alert.message)
        if alert.value is not None and alert.threshold is not None:
            message.append(f" ({alert.value:g} vs {alert.threshold:g})", style="dim")
        grid.add_row(Text(f"{glyph} {alert.severity}", style=style), message,
                     Text(f"since {time_of_day(alert.since_ts)}"))
    _more(grid, len(alerts) - limit, g)
    return grid


def flags_text(row: ScenarioRow, g: Glyphs) -> Text:
    """What is wrong with a scenario, worst first."""
    text = Text()
    parts: list[tuple[str, str]] = []
    if row.is_invalid:
        parts.append(("stopped after errors", "red"))
    if row.is_paused:
        parts.append(("paused by Make", "yellow"))
    if row.is_active is False:
        parts.append(("inactive", "yellow"))
    if row.dlq_count:
        parts.append((plural(row.dlq_count, "incomplete run"), "yellow"))
    if row.queue_count:
        parts.append((f"{row.queue_count} queued", "dim"))
    for index, (words, style) in enumerate(parts):
        if index:
            text.append(f" {g.middot} ", style="dim")
        text.append(words, style=style)
    return text


def _scenarios(rows: list[ScenarioRow], g: Glyphs, limit: int) -> Table:
    grid = Table.grid(padding=(0, 2), expand=True)
    grid.add_column(no_wrap=True, overflow=g.overflow, ratio=1)
    grid.add_column(ratio=1, no_wrap=True, overflow=g.overflow)
    for row in rows[:limit]:
        grid.add_row(scenario_label(row.scenario_id, row.name), flags_text(row, g))
    _more(grid, len(rows) - limit, g)
    return grid


def section_title(words: str, count: int | None = None) -> Text:
    text = Text()
    text.append(words, style="bold")
    if count is not None:
        text.append(f" ({count})", style="dim")
    return text


def screen(
    state: ViewState,
    *,
    now: float | None = None,
    width: int = 80,
    height: int | None = 25,
    blueprints: Mapping[int, Blueprint] | None = None,
    ascii_only: bool = False,
) -> RenderableType:
    """The whole live view at stream time `now` (default: the latest event's time).

    `height` is the terminal's; None (a pipe or a file, which have no bottom) shows every row
    the view keeps."""
    g = glyphs(ascii_only)
    now = state.now if now is None else now
    parts: list[RenderableType] = [_header(state, now, g), Text("")]
    tall = height is None or height >= 30
    many = 10_000 if height is None else 0
    running = list(state.running.values())
    parts.append(section_title("Running", len(running) or None))
    if running:
        parts.append(_running(running, now, g, limit=many or (10 if tall else 5)))
    elif state.finished:
        parts.append(Text("nothing running", style="dim"))
    else:
        parts.append(Text(f"waiting for executions{g.ellipsis}", style="dim"))
    if state.finished:
        rows = list(reversed(state.finished))[: many or (8 if tall else 4)]
        parts += [Text(""), section_title("Latest finished"), _finished(rows, g, width)]
    if state.alerts:
        parts += [Text(""), section_title("Open alerts", len(state.alerts)),
                  alerts_table(state, g, limit=many or (6 if tall else 3))]
    notable = [row for row in state.scenarios.values() if row.notable]
    if notable:
        parts += [Text(""), section_title("Needs attention", len(notable)),
                  _scenarios(notable, g, limit=many or (6 if tall else 3))]
    flow = _focus_flow(state, blueprints, height, g)
    if flow is not None:
        parts += [Text(""), *flow]
    return Group(*parts)


def _focus_flow(
    state: ViewState, blueprints: Mapping[int, Blueprint] | None, height: int | None, g: Glyphs
) -> list[RenderableType] | None:
    short = height is not None and height < FLOW_MIN_HEIGHT
    if short or not blueprints or state.focus is None:
        return None
    blueprint = blueprints.get(state.focus)
    if blueprint is None:
        return None
    modules = state.modules.get(state.focus)
    title = section_title("Flow")
    title.append(f" {g.middot} ", style="dim")
    title.append_text(scenario_label(state.focus, state.name_of(state.focus) or blueprint.name))
    if modules is not None:
        title.append(f" {g.middot} run {modules[0][:8]}", style="dim")
    return [title, FlowDiagram(blueprint, modules[1] if modules else None, title="",
                               ascii_only=g.ascii_only)]
