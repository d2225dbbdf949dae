"""The root `makestream` command: its options, and the table of commands under it.

The commands are listed in `COMMANDS` with their one-line help, so that `makestream --help` and
shell completion of a command name import none of them; a command's module is imported (and its
Typer app turned into a Click command) only when that command is run, completed or documented.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from difflib import get_close_matches
from typing import Any

import typer
import typer.main
from typer import _click
from typer._click.exceptions import UsageError
from typer._click.shell_completion import CompletionItem
from typer._click.utils import make_default_short_help
from typer.core import TyperArgument, TyperGroup, TyperOption

from makestream.cli import VERSION_TEXT


@dataclass(frozen=True)
class Entry:
    """A command as `--help` and completion list it, and the module that defines it."""

    module: str  # under makestream.cli; it defines `app`, a typer.Typer
    summary: str  # the first paragraph of the command's help (tests hold them equal)
    group: bool = False  # it has subcommands, even if only one (`sim serve`)

    def load(self) -> _click.Command:
        sub: typer.Typer = importlib.import_module(f"makestream.cli.{self.module}").app
        return typer.main.get_group(sub) if self.group else typer.main.get_command(sub)


# Every command, in the order `makestream --help` lists them; a new command needs its line here.
COMMANDS = {
    "flow": Entry(
        "flow", "Draw a scenario's module flow: chains, routers with their filters, error handlers."
    ),
    "history": Entry(
        "history",
        "List, sum up, plot and export the executions watch and serve-sse have stored "
        "(no request to Make).",
        group=True,
    ),
    "mcp": Entry(
        "mcp",
        "Serve the engine to AI assistants over the Model Context Protocol (stdio by default).",
    ),
    "render": Entry(
        "render",
        "Show a saved event stream again: the live view, compact lines, or validated NDJSON.",
    ),
    "schema": Entry(
        "schema", "Print the JSON Schema of the events that watch, render and serve-sse use."
    ),
    "serve-sse": Entry(
        "serve", "Serve events over HTTP as Server-Sent Events, to any number of clients."
    ),
    "state": Entry(
        "state",
        "Print flags, recent executions, success rate and p50/p95 durations as one JSON document.",
    ),
    "watch": Entry(
        "watch",
        "Stream events about scenario executions: NDJSON on a pipe, a live view on a terminal.",
    ),
    "sim": Entry(
        "sim", "The simulated Make zone (for trying makestream without an account).", group=True
    ),
    "thresholds": Entry(
        "thresholds",
        "Show the alert thresholds in effect (without a command), change them in the config "
        "file, check the file, and try the rules on a scenario's recent runs.",
        group=True,
    ),
}


class LazyGroup(TyperGroup):
    """A group whose commands come from `COMMANDS`, each built the first time it is asked for."""

    def __init__(self, **settings: Any) -> None:
        super().__init__(**settings)
        self._built: dict[str, _click.Command] = {}

    def list_commands(self, ctx: _click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: _click.Context, cmd_name: str) -> _click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return super().get_command(ctx, cmd_name)
        if cmd_name not in self._built:
            self._built[cmd_name] = entry.load()
        return self._built[cmd_name]

    def resolve_command(
        self, ctx: _click.Context, args: list[str]
    ) -> tuple[str | None, _click.Command | None, list[str]]:
        try:
            return super().resolve_command(ctx, args)
        except UsageError as exc:
            # Typer suggests a close name for a mistyped one from `self.commands`, which is
            # empty here: the same suggestion, from the table.
            matches = get_close_matches(args[0], list(COMMANDS)) if args else []
            if matches and self.suggest_commands:
                suggestions = ", ".join(repr(m) for m in matches)
                exc.message = f"{exc.message.rstrip('.')}. Did you mean {suggestions}?"
            raise

    def get_params(self, ctx: _click.Context) -> list[_click.Parameter]:
        params = super().get_params(ctx)
        for param in params:
            # Typer checks an option's value with a pydantic validator, built on first use,
            # unless the value is a bool; importing pydantic alone takes longer than the rest of
            # shell completion. The flags Click and Typer add (--help, --install-completion,
            # --show-completion) default to None: False means the same and skips that.
            if isinstance(param, TyperOption) and param.is_flag and param.default is None:
                param.default = False
        return params

    def format_commands(self, ctx: _click.Context, formatter: _click.HelpFormatter) -> None:
        # As TyperGroup lays the list out, from the table instead of the commands themselves.
        limit = formatter.width - 6 - max(len(name) for name in COMMANDS)
        rows = [(name, make_default_short_help(e.summary, limit)) for name, e in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def shell_complete(self, ctx: _click.Context, incomplete: str) -> list[CompletionItem]:
        # Command names with their short help from the table; then, as TyperGroup does, the
        # group's own options (Command.shell_complete, which TyperGroup's version extends).
        items = [
            CompletionItem(name, help=make_default_short_help(entry.summary))
            for name, entry in COMMANDS.items()
            if name.startswith(incomplete)
        ]
        items.extend(super(TyperGroup, self).shell_complete(ctx, incomplete))
        return items


class _Argument(TyperArgument):
    """Typer's argument, shown the way Unix usage lines show arguments.

    Typer prints an argument's Python type beside its name (`SCENARIO <list[int]>`) and wraps a
    required one in braces (`{SCENARIO}`); an argument whose metavar says what it takes needs
    neither.
    """

    def display_type(self, ctx: _click.Context) -> str:
        return "" if self.metavar else super().display_type(ctx)

    def _usage_display_name(self) -> str:
        name = super()._usage_display_name()
        if self.required and name.startswith("{"):
            name = name[1:].replace("}", "", 1)
        return name


# Typer builds its arguments from this name; there is no per-app setting for the class.
typer.main.TyperArgument = _Argument  # type: ignore[attr-defined]


app = typer.Typer(
    name="makestream",
    cls=LazyGroup,
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
        typer.echo(VERSION_TEXT)
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
