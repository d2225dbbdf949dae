"""The summary the live view leaves in the scrollback when it ends.

Counts of finished runs by status, the last few runs (with their errors), the alerts still open,
and how the stream ended. It is plain enough to read in a log file and short enough not to push
the rest of the session out of sight.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Group
from rich.table import Table
from rich.text import Text

from makestream.render.screen import alerts_table, scenario_label, section_title, status_text
from makestream.render.text import duration, glyphs, plural, status_style, time_of_day
from makestream.render.view import FinishedRow, ViewState

if TYPE_CHECKING:
    from rich.console import RenderableType


def summary(state: ViewState, *, ascii_only: bool = False, last: int = 5) -> RenderableType:
    """What is left in the scrollback when the view ends: counts, last runs, open alerts."""
    g = glyphs(ascii_only)
    finished = sum(state.counts.values())
    head = Text()
    head.append("Summary", style="bold")
    head.append(f" {g.middot} {finished} finished")
    if finished:
        head.append(": ")
        for index, status in enumerate(("success", "warning", "error")):
            if index:
                head.append(", ")
            head.append(f"{state.counts[status]} {status}",
                        style=status_style(status) if state.counts[status] else "dim")
    expected = sum(1 for row in state.running.values() if row.expected)
    if len(state.running) > expected:
        head.append(f" {g.middot} {len(state.running) - expected} still running")
    if expected:
        # Due by the schedule, but Make had not listed them: not known to be running.
        head.append(f" {g.middot} {expected} expected by the schedule")
    parts: list[RenderableType] = [head]
    if state.finished:
        runs = Table.grid(padding=(0, 2), expand=True)
        runs.add_column(no_wrap=True, style="dim")
        runs.add_column(no_wrap=True)
        runs.add_column(no_wrap=True, overflow=g.overflow, ratio=1)
        runs.add_column(no_wrap=True, justify="right")
        recent = {id(row) for row in state.finished}
        # Troubled runs no longer among the recent ones ended before all of those.
        older = [row for row in state.troubled if id(row) not in recent]
        shown = _worth_showing(older + list(state.finished), last)
        for row in shown:
            who = scenario_label(row.scenario_id, row.scenario_name)
            if row.error:
                who.append(f"\n{g.arrow} {row.error}", style="red")
            ops = f" {g.middot} {row.operations} ops" if row.operations is not None else ""
            runs.add_row(Text(f"  {time_of_day(row.ended_ts)}"), status_text(row.status, g),
                         who, Text(f"{duration(row.duration_ms)}{ops}"))
        parts.append(runs)
        # Whole links, on lines of their own: a link cut to the column's width opens nothing.
        for row in shown:
            if row.url and row.status != "success":
                parts.append(Text(f"  {row.url}", style="dim", overflow="fold"))
    if state.alerts:
        parts += [section_title("Open alerts", len(state.alerts)), alerts_table(state, g, limit=20)]
    elif state.alerts_raised:
        parts.append(Text(f"{plural(state.alerts_raised, 'alert')} raised, all resolved",
                          style="dim"))
    trouble = _trouble(state)
    if state.closed is not None or trouble:
        line = Text("")
        if state.closed is not None:
            line.append(f"Stream closed: {state.closed.reason} (exit {state.closed.exit_code})",
                        style="dim" if state.closed.exit_code == 0 else "yellow")
        if trouble:
            line.append(f"{f' {g.middot} ' if line else ''}{trouble}", style="dim")
        parts.append(line)
    return Group(*parts)


def _worth_showing(rows: list[FinishedRow], last: int) -> list[FinishedRow]:
    """The `last` runs to list, failures and warnings first: a summary after 94 runs must not
    hide the 4 errors behind the 5 latest successes. Shown in the order they ended."""
    trouble = [i for i, row in enumerate(rows) if row.status != "success"][-last:]
    room = last - len(trouble)
    taken = set(trouble)
    rest = [i for i in range(len(rows)) if i not in taken][-room:] if room > 0 else []
    return [rows[i] for i in sorted(trouble + rest)]


def _trouble(state: ViewState) -> str:
    h = state.health
    parts = []
    if h.throttles_seen:
        parts.append(f"throttled {plural(h.throttles_seen, 'time')}")
    if h.errors_seen:
        parts.append(plural(h.errors_seen, "stream error"))
    if h.error_fatal and h.error:
        parts.append(f"last: {h.error}")
    return ", ".join(parts)
