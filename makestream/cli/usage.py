"""Usage errors in makestream's words: one line that names the option and what it accepts.

The command-line parser reports a bad value in its own terms (a validation library's sentence,
the parameter's internal name, a usage block). `describe` turns any of its usage errors into the
single line makestream prints for every other error, so that scripts and people see one format.
"""

from __future__ import annotations

from typer._click.core import Parameter
from typer._click.exceptions import BadParameter, MissingParameter, NoSuchOption, UsageError
from typer.core import TyperArgument

from makestream.errors import plain


def param_name(param: Parameter | None) -> str | None:
    """How the user wrote the parameter: its long option, or an argument's metavar."""
    if param is None:
        return None
    if isinstance(param, TyperArgument):
        name = (param.metavar or param.name or "argument").strip("[]. ")
        return name.upper()
    longs = [opt for opt in param.opts if opt.startswith("--")]
    return (longs or list(param.opts) or [param.name or "option"])[0]


def describe(exc: UsageError) -> str:
    """One line for a usage error: what was wrong, and where to read more."""
    ctx = exc.ctx
    command = ctx.command_path if ctx is not None else "makestream"
    hint = f" (see '{command} --help')"
    if isinstance(exc, MissingParameter):
        name = param_name(exc.param)
        return f"{command}: missing {name}{hint}" if name else f"{command}: {exc.message}{hint}"
    if isinstance(exc, BadParameter):
        hint_text = exc.param_hint
        if not isinstance(hint_text, str) and hint_text is not None:
            hint_text = " / ".join(hint_text)
        name = param_name(exc.param) or hint_text
        detail = plain(exc.message)
        return f"{name}: {detail}" if name else detail
    if isinstance(exc, NoSuchOption):
        return f"{command}: {exc.format_message()}{hint}"
    return f"{command}: {exc.format_message()}{hint}"
