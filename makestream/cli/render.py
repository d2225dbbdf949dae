"""`makestream render`: show a saved event stream (NDJSON from `watch`) again.

The input may come from anywhere, so it is read within caps and shown cleaned: a line longer than
`makestream.limits.NDJSON_LINE_MAX_BYTES` stops the command with exit 2 naming its number (or is
skipped with --skip-invalid), and is never held whole (see `makestream.render.replay`); every
writer cleans or escapes control characters in what it shows (see `makestream.safetext`).
"""

from __future__ import annotations

import os
import stat
import sys
from dataclasses import dataclass
from enum import StrEnum
from typing import IO, TYPE_CHECKING, Any, TextIO

import typer

from makestream.cli.common import Color, command_app, run
from makestream.errors import UsageError

if TYPE_CHECKING:
    from makestream.render import Writer

app = command_app()


class RenderFormat(StrEnum):
    pretty = "pretty"
    compact = "compact"
    ndjson = "ndjson"


@dataclass
class RenderOptions:
    source: str  # a path, or "-" for stdin
    format: str = "pretty"
    color: str = "auto"
    skip_invalid: bool = False
    replay: bool = False
    speed: float = 1.0


def _is_regular_file(stream: IO[Any]) -> bool:
    try:
        return stat.S_ISREG(os.fstat(stream.fileno()).st_mode)
    except (AttributeError, OSError, ValueError):
        return False


def _open(source: str, stdin: IO[bytes]) -> tuple[IO[bytes], str]:
    if source == "-":
        if stdin.isatty():
            raise UsageError("no input: name a FILE, or pipe events in "
                             "(makestream watch 123 | makestream render)")
        return stdin, "<stdin>"
    try:
        return open(source, "rb"), source
    except OSError as exc:
        raise UsageError(f"{source}: cannot read ({exc.strerror})") from None


def render_stream(options: RenderOptions, stdin: IO[bytes], stdout: TextIO) -> int:
    """Read the events of `options.source` and show them in `options.format` on `stdout`."""
    import time

    from makestream.render.console import isatty, wants_color
    from makestream.render.replay import paced, read_events, reemit

    stream, name = _open(options.source, stdin)
    try:
        if options.format == "ndjson" and not options.replay:
            reemit(stream, stdout.buffer, source=name,
                   skip_invalid=options.skip_invalid, flush_each=isatty(stdout))
            return 0
        writer: Writer
        if options.format == "ndjson":
            from makestream.render.ndjson import NdjsonWriter

            writer = NdjsonWriter(stdout.buffer)
        elif options.format == "compact":
            from makestream.render.compact import CompactWriter

            writer = CompactWriter(stdout, color=wants_color(options.color, stdout))
        else:
            from makestream.render.live import LiveWriter

            # A saved file is shown as its final view; a live pipe or --replay is animated.
            writer = LiveWriter(stdout, color=options.color,
                                animate=options.replay or not _is_regular_file(stream))
        events = read_events(stream, source=name, skip_invalid=options.skip_invalid)
        if options.replay:
            events = paced(events, speed=options.speed, sleep=time.sleep)
        try:
            for event in events:
                writer.write(event)
        except KeyboardInterrupt:
            writer.close()  # leave the summary of what was shown so far
            raise
        writer.close()
        return 0
    finally:
        if stream is not stdin:
            stream.close()


SourceArg = typer.Argument(
    "-", metavar="FILE|-", help="NDJSON written by watch; - (the default) reads stdin."
)
FormatOpt = typer.Option(
    RenderFormat.pretty, "--format", case_sensitive=False,
    help="pretty: the live view's final picture and summary; compact: one line per event; "
    "ndjson: the validated events again.",
)
ColorOpt = typer.Option(Color.auto, "--color", case_sensitive=False,
                        help="Colour in pretty and compact output (NO_COLOR is honoured).")
SkipOpt = typer.Option(
    False, "--skip-invalid", help="Skip lines that are not valid events instead of stopping."
)
ReplayOpt = typer.Option(
    False, "--replay", help="Show events at the pace they were written (gaps over 5s shortened)."
)
ReplaySpeedOpt = typer.Option(
    1.0, "--speed", min=0.001, metavar="FACTOR", help="With --replay: play this many times faster."
)


@app.command()
def render(
    source: str = SourceArg,
    format_: RenderFormat = FormatOpt,
    color: Color = ColorOpt,
    skip_invalid: bool = SkipOpt,
    replay: bool = ReplayOpt,
    speed: float = ReplaySpeedOpt,
) -> None:
    """Show a saved event stream again: the live view, compact lines, or validated NDJSON.

    Examples:

      makestream watch 123 | tee run.ndjson

      makestream render run.ndjson

      makestream render --format compact < run.ndjson
    """
    options = RenderOptions(source=source, format=format_.value, color=color.value,
                            skip_invalid=skip_invalid, replay=replay, speed=speed)

    async def main() -> int:
        return render_stream(options, sys.stdin.buffer, sys.stdout)

    run(main)
