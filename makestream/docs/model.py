"""The command tree as plain data: every visible command and option, read from the Typer app.

The man page, the README's command list and the docs tests all read this one description, so
they cannot disagree with each other or with `--help`. Typer (0.26 and later) vendors its own
Click, so the walk goes through `typer.main.get_command(app)` and the vendored classes rather
than through Click-based documentation tools, which cannot see a Typer app.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Literal

import typer
import typer.main
from typer import _click
from typer.core import TyperGroup

# Commands in the order a reader meets them: the everyday command first, the simulator last.
# Commands missing from this list follow in the order the app registers them, so a new command
# is documented without anyone touching this list.
PREFERRED_ORDER = (
    "watch",
    "serve-sse",
    "state",
    "thresholds",
    "render",
    "flow",
    "schema",
    "sim",
)

# What Typer calls a value's type, and the word a man page uses for it.
_TYPE_WORDS = {
    "int": "INTEGER",
    "float": "NUMBER",
    "str": "TEXT",
    "file": "FILE",
    "directory": "DIRECTORY",
    "path": "PATH",
    "bool": "BOOLEAN",
}


@dataclass(frozen=True)
class ParamDoc:
    """One option or argument, as a reader of the documentation needs it."""

    kind: Literal["option", "argument"]
    name: str
    opts: tuple[str, ...]
    secondary_opts: tuple[str, ...]
    metavar: str | None  # None for flags
    help: str
    default: str | None  # as the user would type it; None when there is nothing to show
    choices: tuple[str, ...]
    range: str | None
    required: bool
    repeatable: bool

    @property
    def label(self) -> str:
        """`-V, --version` / `--follow / --no-follow` / `SCENARIO`."""
        if self.kind == "argument":
            return self.metavar or self.name.upper()
        names = ", ".join(sorted(self.opts, key=len))
        if self.secondary_opts:
            names += " / " + ", ".join(self.secondary_opts)
        return names


@dataclass(frozen=True)
class CommandDoc:
    """One command (or group of commands) and everything below it."""

    path: tuple[str, ...]  # () for the root, ("thresholds", "set") for a subcommand
    help: str
    params: tuple[ParamDoc, ...]
    subcommands: tuple[CommandDoc, ...] = field(default=())
    is_group: bool = False
    runs_without_subcommand: bool = False

    @property
    def name(self) -> str:
        """The full command line that invokes it, e.g. `makestream thresholds set`."""
        return " ".join(("makestream", *self.path))

    @property
    def summary(self) -> str:
        """The first sentence of the help, as `--help` lists it."""
        first = self.help.split("\n\n", 1)[0]
        return " ".join(first.split())

    @property
    def options(self) -> tuple[ParamDoc, ...]:
        """Its options, --help included."""
        return tuple(p for p in self.params if p.kind == "option")

    @property
    def own_options(self) -> tuple[ParamDoc, ...]:
        """Its options except --help, which every command has."""
        return tuple(p for p in self.options if p.name != "help")

    @property
    def arguments(self) -> tuple[ParamDoc, ...]:
        return tuple(p for p in self.params if p.kind == "argument")

    def usage(self) -> str:
        """A synopsis line: `makestream watch [OPTIONS] [SCENARIO]...`."""
        pieces = [self.name]
        if self.own_options:
            pieces.append("[OPTIONS]")
        pieces.extend(_argument_usage(a) for a in self.arguments)
        if self.is_group:
            pieces.append("[COMMAND]" if self.runs_without_subcommand else "COMMAND")
        return " ".join(pieces)

    def walk(self) -> Iterator[CommandDoc]:
        """This command and every command below it, depth first."""
        yield self
        for sub in self.subcommands:
            yield from sub.walk()


def collect(app: typer.Typer) -> CommandDoc:
    """Describe the whole command tree of `app`, leaving out hidden commands and options."""
    root = typer.main.get_command(app)
    return _describe(root, (), _context(root, "makestream", None))


def _context(command: _click.Command, name: str, parent: _click.Context | None) -> _click.Context:
    # The command's own context settings hold its help option names (-h, --help).
    return _click.Context(command, info_name=name, parent=parent, **command.context_settings)


def _describe(command: _click.Command, path: tuple[str, ...], ctx: _click.Context) -> CommandDoc:
    params = tuple(
        _param(p, ctx) for p in command.params if not getattr(p, "hidden", False)
    )
    # Click adds --help itself rather than as a declared parameter.
    help_option = command.get_help_option(ctx)
    if help_option is not None:
        params = (*params, _param(help_option, ctx))
    subcommands: list[CommandDoc] = []
    if isinstance(command, TyperGroup):
        for name in _ordered(command.list_commands(ctx)):
            sub = command.get_command(ctx, name)
            if sub is None or sub.hidden:
                continue
            subcommands.append(_describe(sub, (*path, name), _context(sub, name, ctx)))
    return CommandDoc(
        path=path,
        help=inspect.cleandoc(command.help or ""),
        params=params,
        subcommands=tuple(subcommands),
        is_group=isinstance(command, TyperGroup),
        runs_without_subcommand=bool(getattr(command, "invoke_without_command", False)),
    )


def _ordered(names: list[str]) -> list[str]:
    rank = {name: i for i, name in enumerate(PREFERRED_ORDER)}
    return sorted(names, key=lambda n: (rank.get(n, len(rank)), names.index(n)))


def _param(param: _click.Parameter, ctx: _click.Context) -> ParamDoc:
    kind: Literal["option", "argument"] = (
        "argument" if param.param_type_name == "argument" else "option"
    )
    is_flag = bool(getattr(param, "is_flag", False))
    descriptor = getattr(param, "type_descriptor", None)
    choices = _choices(descriptor)
    metavar: str | None
    if is_flag:
        metavar = None
    elif param.metavar is not None:
        metavar = param.metavar
    elif choices:
        metavar = "{" + "|".join(choices) + "}"
    else:
        metavar = _type_word(descriptor)
    return ParamDoc(
        kind=kind,
        name=param.name or "",
        opts=tuple(param.opts) if kind == "option" else (),
        secondary_opts=tuple(param.secondary_opts),
        metavar=metavar,
        help=inspect.cleandoc(getattr(param, "help", None) or ""),
        default=_default(param, ctx),
        choices=choices,
        range=_range(getattr(param, "min", None), getattr(param, "max", None)),
        required=param.required,
        repeatable=param.multiple or param.nargs == -1,
    )


def _choices(descriptor: Any) -> tuple[str, ...]:
    if descriptor is None or not descriptor.is_choice:
        return ()
    return tuple(str(c.value) if isinstance(c, Enum) else str(c) for c in descriptor.choices)


def _type_word(descriptor: Any) -> str:
    if descriptor is None:
        return "VALUE"
    if descriptor.is_path:
        return _TYPE_WORDS.get(str(descriptor.path_type), "PATH")
    annotation = descriptor.annotation
    # list[int] for repeatable options and variadic arguments: name the element.
    args = getattr(annotation, "__args__", None)
    if args and getattr(annotation, "__origin__", None) is list:
        annotation = args[0]
    name = getattr(annotation, "__name__", str(annotation))
    return _TYPE_WORDS.get(name, name.upper())


def _default(param: _click.Parameter, ctx: _click.Context) -> str | None:
    """The default as a user would type it, or None when showing one would say nothing."""
    shown = getattr(param, "show_default", True)
    if shown is False or param.required:
        return None
    if isinstance(shown, str):
        return shown
    value = param.get_default(ctx, call=False)
    if callable(value) or value is None or value == [] or value == ():
        return None
    secondary = tuple(param.secondary_opts)
    if getattr(param, "is_flag", False):
        # A flag pair (--follow/--no-follow) defaults to one of its spellings; a lone flag is
        # off unless given, which needs no saying.
        if secondary:
            return param.opts[0] if value else secondary[0]
        return None
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _range(low: float | None, high: float | None) -> str | None:
    if low is None and high is None:
        return None
    if high is None:
        return f"at least {low:g}"
    if low is None:
        return f"at most {high:g}"
    return f"{low:g} to {high:g}"


def _argument_usage(arg: ParamDoc) -> str:
    text = arg.metavar or arg.name.upper()
    # Authors often bracket a metavar themselves ("[SCENARIO]..."); do not bracket it twice.
    if not arg.required and not text.startswith("["):
        text = f"[{text}]"
    if arg.repeatable and not text.endswith("..."):
        text += "..."
    return text
