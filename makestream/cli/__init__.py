"""The `makestream` command line: parse options, build the pipeline, map errors to exit codes.

Each command lives in its own module and only parses and wires; the work is done by the library
(`makestream.engine`, `makestream.make`, `makestream.render`). Heavy modules are imported inside
the commands so that `makestream --version` and shell completion start fast.
"""

from __future__ import annotations

import typer

from makestream import __version__

app = typer.Typer(
    name="makestream",
    help=(
        "Watch Make.com scenario executions in real time.\n\n"
        "Events go to stdout as NDJSON when it is a pipe, to a live view on a terminal, "
        "and over HTTP as Server-Sent Events with serve-sse. Try: makestream watch --demo"
    ),
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"makestream {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False,
        "--version",
        "-V",
        callback=_version,
        is_eager=True,
        help="Print the version and exit.",
    ),
) -> None:
    """Watch Make.com scenario executions in real time."""


# Registering the commands; each module adds its own to `app`.
from makestream.cli import flow as _flow  # noqa: E402,F401
from makestream.cli import render as _render  # noqa: E402,F401
from makestream.cli import schema as _schema  # noqa: E402,F401
from makestream.cli import serve as _serve  # noqa: E402,F401
from makestream.cli import sim as _sim  # noqa: E402,F401
from makestream.cli import state as _state  # noqa: E402,F401
from makestream.cli import thresholds as _thresholds  # noqa: E402,F401
from makestream.cli import watch as _watch  # noqa: E402,F401


def main() -> None:
    """Console-script entry point."""
    app(prog_name="makestream")
