"""Usage errors in makestream's words: one line that names the option and what it accepts.

The command-line parser reports a bad value in its own terms (a validation library's sentence,
the parameter's internal name, a usage block). `describe` turns any of its usage errors into the
single line makestream prints for every other error, so that scripts and people see one format.
"""

from __future__ import annotations

import re

from typer._click.core import Parameter
from typer._click.exceptions import BadParameter, MissingParameter, NoSuchOption, UsageError
from typer.core import TyperArgument

# The validation library's sentences for a bad option value, in plain words.
_SENTENCES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"Input should be a valid integer.*"), "expects a whole number"),
    (re.compile(r"Input should be a valid number.*"), "expects a number"),
    (re.compile(r"Input should be a valid boolean.*"), "expects true or false"),
    (re.compile(r"Input should be greater than or equal to (\S+)"), r"must be at least \1"),
    (re.compile(r"Input should be greater than (\S+)"), r"must be more than \1"),
    (re.compile(r"Input should be less than or equal to (\S+)"), r"must be at most \1"),
    (re.compile(r"Input should be less than (\S+)"), r"must be less than \1"),
    (re.compile(r"Input should be a valid path.*"), "expects a file path"),
)
_NOT_ONE_OF = re.compile(r"'(?P<value>[^']*)' is not one of (?P<choices>.+?)\.?$")


def param_name(param: Parameter | None) -> str | None:
    """How the user wrote the parameter: its long option, or an argument's metavar."""
    if param is None:
        return None
    if isinstance(param, TyperArgument):
        name = (param.metavar or param.name or "argument").strip("[]. ")
        return name.upper()
    longs = [opt for opt in param.opts if opt.startswith("--")]
    return (longs or list(param.opts) or [param.name or "option"])[0]


def plain(message: str) -> str:
    """The validation library's wording of a bad value, in plain words."""
    text = message.strip()
    text = text.removeprefix("Value error, ")
    choice = _NOT_ONE_OF.match(text)
    if choice:
        choices = ", ".join(c.strip().strip("'") for c in choice["choices"].split(","))
        return f"{choice['value']!r} is not one of: {choices}"
    for pattern, words in _SENTENCES:
        if pattern.fullmatch(text):
            return pattern.sub(words, text)
    return text


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
