"""Deciding on colour (`--color auto|always|never`, `NO_COLOR`) and building rich consoles.

One rule for every human format: `always` and `never` win; `auto` means colour only on a
terminal, and not when `NO_COLOR` is set to anything non-empty or `TERM=dumb`. The console is told
explicitly whether it writes to a terminal, so that environment variables rich reads on its own
(FORCE_COLOR, TTY_COMPATIBLE) cannot switch on cursor movement over a pipe.

Text from Make is cleaned where the view model and the flow diagram take it in
(`makestream.safetext`); `Sanitized` is the last line of defence where rich writes: it drops any
control or formatting character still left in the text it lays out, so that a field someone
forgets to clean shows less, never more. rich's own styles and cursor movements are not text and
pass through.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console, ConsoleOptions, RenderableType, RenderResult

CHOICES = ("auto", "always", "never")


def color_choice(value: Any) -> str:
    """The `--color` value as a string (accepts the CLI's enum or a plain string)."""
    name = str(getattr(value, "value", value) or "auto")
    if name not in CHOICES:
        raise ValueError(f"colour must be one of {', '.join(CHOICES)}, not {name!r}")
    return name


def isatty(stream: IO[Any]) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed file
        return False


def wants_color(color: Any, stream: IO[Any], env: Mapping[str, str] | None = None) -> bool:
    """Whether to colour output written to `stream`."""
    choice = color_choice(color)
    if choice != "auto":
        return choice == "always"
    env = os.environ if env is None else env
    if env.get("NO_COLOR") or env.get("TERM") == "dumb":
        return False
    return isatty(stream)


def make_console(
    stream: IO[str],
    color: Any = "auto",
    *,
    env: Mapping[str, str] | None = None,
    width: int | None = None,
    height: int | None = None,
) -> Console:
    """A console for `stream` that follows the colour rule and never interprets markup."""
    from rich.console import Console

    colored = wants_color(color, stream, env)
    return Console(
        file=stream,
        force_terminal=isatty(stream),
        # Basic ANSI colours are all the view uses; they follow the terminal's own palette.
        color_system="standard" if colored else None,
        no_color=False if colored else None,
        markup=False,
        emoji=False,
        highlight=False,
        width=width,
        height=height,
    )


class Sanitized:
    """A renderable drawn as `renderable` is, without the unsafe characters of its text."""

    def __init__(self, renderable: RenderableType) -> None:
        self.renderable = renderable

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        from rich.segment import Segment

        from makestream.safetext import is_clean, strip_unsafe

        for segment in console.render(self.renderable, options):
            # Control segments are rich's own (cursor movement); styles are not in the text.
            if segment.control or is_clean(segment.text, multiline=True):
                yield segment
            else:
                # rich gives these characters no width, so dropping them keeps the layout.
                yield Segment(strip_unsafe(segment.text), segment.style)
