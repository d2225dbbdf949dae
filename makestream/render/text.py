"""Small text helpers shared by every human renderer: durations, clock times, status glyphs.

Glyphs come in two sets, because a console whose encoding is not UTF-8 (a Windows code page, an
old `LANG=C` setup) would show `?` for ✓ and ━. Styles are semantic and foreground-only (green,
yellow, red, dim, bold) so that the output reads the same on light and dark backgrounds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal


def duration(ms: int | None) -> str:
    """`850ms`, `12.3s`, `3m05s`; `?` when unknown. (The compact format's duration.)"""
    if ms is None:
        return "?"
    if ms < 1000:
        return f"{ms}ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f}s"
    return f"{ms // 60_000}m{(ms % 60_000) // 1000:02d}s"


def clock_span(ms: int | None) -> str:
    """A stopwatch reading, `0:07`, `12:30`, `1:02:03`; `-:--` when unknown."""
    if ms is None:
        return "-:--"
    seconds = max(0, ms) // 1000
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{minutes}:{secs:02d}"


def parse_ts(ts: str | None) -> float | None:
    """Epoch seconds of an RFC 3339 time stamp, or None when absent or malformed."""
    if not ts:
        return None
    try:
        return datetime.fromisoformat(ts).timestamp()
    except ValueError:
        return None


def time_of_day(ts: str | None) -> str:
    """`HH:MM:SS` of an RFC 3339 UTC time stamp (the events' own zone), or blank."""
    return ts[11:19] if ts and len(ts) >= 19 else ""


def plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


@dataclass(frozen=True)
class Glyphs:
    """The symbols one console can show."""

    success: str
    warning: str
    error: str
    skipped: str
    dot: str
    arrow: str
    bar_done: str
    bar_todo: str
    tee: str
    elbow: str
    pipe: str
    middot: str
    ellipsis: str
    # How rich shortens a cell that does not fit: "…" is not ASCII, so ASCII consoles crop.
    overflow: Literal["ellipsis", "crop"]
    ascii_only: bool

    def status(self, status: str) -> str:
        return {"success": self.success, "warning": self.warning, "error": self.error}.get(
            status, self.skipped
        )


UNICODE = Glyphs(
    success="✓", warning="⚠", error="✗", skipped="–", dot="●", arrow="→",
    bar_done="━", bar_todo="─", tee="├─ ", elbow="└─ ", pipe="│  ", middot="·", ellipsis="…",
    overflow="ellipsis", ascii_only=False,
)
ASCII = Glyphs(
    success="ok", warning="!!", error="xx", skipped="-", dot="*", arrow="->",
    bar_done="=", bar_todo="-", tee="|- ", elbow="`- ", pipe="|  ", middot="-", ellipsis="...",
    overflow="crop", ascii_only=True,
)


def glyphs(ascii_only: bool) -> Glyphs:
    return ASCII if ascii_only else UNICODE


# Statuses as Make reports them, mapped to one semantic colour each.
STATUS_STYLE = {
    "success": "green",
    "warning": "yellow",
    "error": "red",
    "running": "",
    "unknown": "dim",
}
SEVERITY_STYLE = {"critical": "bold red", "warning": "yellow"}


def status_style(status: str) -> str:
    return STATUS_STYLE.get(status, "dim")
