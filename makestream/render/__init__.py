"""Renderers: the ways events are shown (NDJSON, compact lines, the live terminal view).

Every writer has the same two methods, `write(event)` per event and `close()` once at the end;
`output_for` picks one from `--format` and `--color` and the kind of stdout.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import IO, TYPE_CHECKING, Any, Protocol, TextIO, cast

if TYPE_CHECKING:
    from makestream.events import _Event
    from makestream.make.models import Blueprint


class Writer(Protocol):
    """What the commands feed events to."""

    def write(self, event: _Event) -> None: ...

    def close(self) -> None: ...


def output_is_live(format_: Any, stdout: IO[str]) -> bool:
    """Whether `output_for` would pick the live view."""
    from makestream.render.console import isatty

    name = getattr(format_, "value", format_)
    return name == "pretty" or (name == "auto" and isatty(stdout))


def output_for(
    format_: Any,
    color: Any,
    stdout: IO[str],
    *,
    blueprints: Mapping[int, Blueprint] | None = None,
) -> Writer:
    """The writer for `--format`/`--color` on this stdout (auto: pretty on a terminal).

    `blueprints` (scenario id → blueprint) lets the live view draw the module flow of the
    scenario in focus on tall terminals; it may be filled in while the view runs.
    """
    from makestream.render.console import isatty, wants_color

    name = getattr(format_, "value", format_)
    if name == "auto":
        name = "pretty" if isatty(stdout) else "ndjson"
    if name == "ndjson":
        from makestream.render.ndjson import NdjsonWriter

        return NdjsonWriter(cast(TextIO, stdout).buffer)
    if name == "compact":
        from makestream.render.compact import CompactWriter

        return CompactWriter(stdout, color=wants_color(color, stdout))
    if name == "pretty":
        from makestream.render.live import LiveWriter

        return LiveWriter(stdout, color=color, blueprints=blueprints)
    raise ValueError(f"unknown output format {name!r}")
