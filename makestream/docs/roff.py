"""The man page, written as roff (the `man` macros) from the command tree and the reference tables.

Roff treats some input specially, and help text is full of it: a line starting with `.` or `'`
is a request, a backslash starts an escape, and `-` is a hyphen that some devices print as
U+2010, which breaks copying an option out of the page. So text goes through `escape()` (and
prose through `prose()`, which also sets code in bold), never straight into the page. Non-ASCII
characters become `\\[uXXXX]` escapes, because groff reads its input as Latin-1 unless a
preprocessor converts it.
"""

from __future__ import annotations

import os
import re
import textwrap
from collections.abc import Iterable
from datetime import UTC, date, datetime
from itertools import takewhile

from makestream import __version__
from makestream.docs import reference
from makestream.docs.model import CommandDoc, ParamDoc

# `code` spans in the reference tables and help text.
_CODE_SPAN = re.compile(r"`([^`]+)`")
# An option as it appears in prose: -V, --format, --no-follow (not a dash between words).
_OPTION = re.compile(r"(?<![\w\\-])--?[A-Za-z][A-Za-z0-9-]*")
# A hyphen inside an ordinary word ("one-line"), which may stay a typographic hyphen.
_WORD_HYPHEN = re.compile(r"(?<=[A-Za-z])-(?=[A-Za-z])")


def escape(text: str) -> str:
    """Text for a roff text line or macro argument: literal, with every dash a minus sign.

    For code (commands, options, values), where every `-` must stay the ASCII character.
    """
    out = text.replace("\\", "\\e").replace("-", "\\-")
    return _non_ascii(out)


def _non_ascii(text: str) -> str:
    return "".join(c if ord(c) < 128 else f"\\[u{ord(c):04X}]" for c in text)


def prose(text: str, commands: Iterable[str] = ()) -> str:
    """Running text: `code` and options in bold with ASCII dashes, other hyphens typographic.

    `commands` are command names with dashes in them (`serve-sse`), which are code too.
    """
    names = sorted(set(commands), key=len, reverse=True)
    pieces: list[str] = []
    position = 0
    for match in _CODE_SPAN.finditer(text):
        pieces.append(_prose_words(text[position : match.start()], names))
        pieces.append(f"\\fB{escape(match.group(1))}\\fR")
        position = match.end()
    pieces.append(_prose_words(text[position:], names))
    return "".join(pieces)


def _prose_words(text: str, commands: list[str]) -> str:
    text = text.replace("\\", "\\e")
    # Mark the places that are code with placeholders first, so the hyphen rule below does not
    # reach inside them, then put them back in bold.
    spans: list[str] = []

    def hold(match: re.Match[str]) -> str:
        spans.append(match.group(0))
        return f"\x00{len(spans) - 1}\x00"

    text = _OPTION.sub(hold, text)
    for name in commands:
        text = re.sub(rf"(?<![\w-]){re.escape(name)}(?![\w-])", hold, text)
    text = _WORD_HYPHEN.sub("\x01", text).replace("-", "\\-").replace("\x01", "-")
    text = re.sub("\x00(\\d+)\x00", lambda m: f"\\fB{escape(spans[int(m.group(1))])}\\fR", text)
    return _non_ascii(text)


def _line(text: str) -> str:
    """A text line that roff will not take for a request."""
    text = text.rstrip()
    return "\\&" + text if text.startswith((".", "'")) else text


def _quoted(text: str) -> str:
    """A macro argument in double quotes."""
    return '"' + text.replace('"', "\\(dq") + '"'


class ManPage:
    """Builds the page from the command tree; `render()` returns the roff source."""

    def __init__(self, root: CommandDoc, date: str) -> None:
        self.root = root
        self.date = date
        self.commands = [c for c in root.walk() if c.path]
        self.dashed = {part for c in self.commands for part in c.path if "-" in part}
        self.out: list[str] = []

    def render(self) -> str:
        self._header()
        self._name_and_synopsis()
        self._description()
        self._options(self.root, heading="OPTIONS")
        self.out.append(".SH COMMANDS")
        for command in self.commands:
            self._command(command)
        self._events()
        self._mcp_tools()
        self._exit_status()
        self._environment()
        self._limits()
        self._files()
        self._examples()
        self._see_also()
        return "\n".join(self.out) + "\n"

    # -- pieces ----------------------------------------------------------------------------------

    def _p(self, text: str) -> str:
        return prose(text, self.dashed)

    def _pp(self) -> None:
        # A heading already starts a paragraph; another .PP there is an empty one to mandoc.
        if not self.out[-1].startswith((".SH", ".SS")):
            self.out.append(".PP")

    def _text(self, roff_text: str) -> None:
        """Filled text, wrapped to short input lines (a line break is a space to roff)."""
        for line in textwrap.wrap(roff_text, width=78, break_long_words=False,
                                  break_on_hyphens=False):
            self.out.append(_line(line))

    def _paragraphs(self, text: str) -> None:
        """Help text: blank-line separated paragraphs; indented ones are examples, kept as is."""
        code: list[str] = []
        for block in re.split(r"\n\s*\n", text.strip()):
            lines = block.split("\n")
            if block.startswith("\b") or all(line.startswith((" ", "\t")) for line in lines):
                # Examples separated by blank lines read as one block with blank lines.
                if code:
                    code.append("")
                code += textwrap.dedent(block.lstrip("\b").strip("\n")).split("\n")
                continue
            self._code(code)
            code = []
            self._pp()
            self._text(self._p(" ".join(line.strip() for line in lines)))
        self._code(code)

    def _code(self, lines: list[str]) -> None:
        if not lines:
            return
        self._pp()
        self.out += [".RS 4", ".EX"]
        self.out.extend(_line(escape(line)) for line in lines)
        self.out += [".EE", ".RE"]

    def _header(self) -> None:
        self.out += [
            ".\\\" Generated from the command definitions by: python -m makestream.docs",
            ".\\\" Do not edit; edit the help texts or makestream/docs/reference.py instead.",
            f'.TH MAKESTREAM 1 "{self.date}" "makestream {__version__}" "User Commands"',
            # No hyphenation: an option split at a line end cannot be copied. The groff macros
            # restore hyphenation from HY after every .EE, so HY is zeroed as well.
            ".nr HY 0",
            ".nh",
            ".ad l",
        ]

    def _name_and_synopsis(self) -> None:
        summary = self.root.summary.rstrip(".")
        summary = summary[:1].lower() + summary[1:]
        self.out += [".SH NAME", f"makestream \\- {self._p(summary)}", ".SH SYNOPSIS"]
        # A group that only dispatches (`sim`) has no synopsis of its own: its commands do.
        lines = [self.root.usage(), *(c.usage() for c in self.commands if not c.is_group or
                                       c.runs_without_subcommand or c.own_options)]
        for i, usage in enumerate(lines):
            if i:
                self.out.append(".br")
            self.out.append(_line(_usage(usage)))

    def _description(self) -> None:
        self.out.append(".SH DESCRIPTION")
        self._paragraphs(self.root.help)
        self._paragraphs(reference.DESCRIPTION_EXTRA)

    def _options(self, command: CommandDoc, heading: str | None = None) -> None:
        params = command.options if command is self.root else command.own_options
        params = (*command.arguments, *params)
        if not params:
            return
        if heading:
            self.out.append(f".SH {heading}")
        for param in params:
            self._param(param)

    def _param(self, param: ParamDoc) -> None:
        if param.kind == "argument":
            tag = f"\\fI{escape(param.label)}\\fR"
        else:
            names = sorted(param.opts, key=len)
            tag = ", ".join(f"\\fB{escape(n)}\\fR" for n in names)
            if param.secondary_opts:
                tag += ", " + ", ".join(f"\\fB{escape(n)}\\fR" for n in param.secondary_opts)
            if param.metavar:
                tag += f" \\fI{escape(param.metavar)}\\fR"
        self.out += [".TP", _line(tag)]
        notes: list[str] = []
        if param.choices:
            notes.append("Choices: " + ", ".join(f"`{c}`" for c in param.choices) + ".")
        if param.default is not None:
            notes.append(f"Default: `{param.default}`.")
        if param.range:
            notes.append(f"Range: {param.range}.")
        if param.repeatable and param.kind == "option" and "Repeatable" not in param.help:
            notes.append("Repeatable.")
        if param.required and param.kind == "option":
            notes.append("Required.")
        body = " ".join(filter(None, [" ".join(param.help.split()), *notes]))
        self._text(self._p(body))

    def _command(self, command: CommandDoc) -> None:
        self.out.append(f".SS {_quoted(escape(command.name))}")
        self.out.append(_line(_usage(command.usage())))
        self._paragraphs(command.help)
        self._options(command)
        if command.subcommands:
            self._pp()
            names = ", ".join(f"`{sub.path[-1]}`" for sub in command.subcommands)
            self._text(self._p(f"Commands: {names}; see below."))

    def _events(self) -> None:
        common, events = reference.event_reference()
        self.out.append(".SH EVENTS")
        self._paragraphs(reference.EVENT_FORMAT)
        self._pp()
        self._text(self._p("Common fields: " + ", ".join(f"`{f.name}`" for f in common) + "."))
        for event in events:
            self.out += [".TP", f"\\fB{escape(event.type)}\\fR"]
            fields = ", ".join(f"`{f.name}`" for f in event.fields)
            self._text(self._p(f"{event.summary} Fields: {fields}." if fields else event.summary))

    def _mcp_tools(self) -> None:
        self.out.append(".SH \"MCP TOOLS\"")
        self._paragraphs(reference.MCP_NOTE)
        for tool in reference.mcp_tools():
            args = ", ".join(f.name for f in tool.arguments)
            self.out += [".TP", f"\\fB{escape(tool.name)}\\fR({escape(args)})"]
            self._text(self._p(tool.summary))
            self._text(self._p("Returns: " + ", ".join(f"`{f.name}`" for f in tool.returns)
                               + "."))

    def _exit_status(self) -> None:
        self.out.append(".SH \"EXIT STATUS\"")
        for code, text in reference.EXIT_STATUS.items():
            self.out += [".TP", f"\\fB{int(code)}\\fR"]
            self._text(self._p(text))
        self._pp()
        self._text(self._p(reference.EXIT_STATUS_NOTE))

    def _environment(self) -> None:
        self.out.append(".SH ENVIRONMENT")
        for var in reference.ENVIRONMENT:
            self.out += [".TP", f"\\fB{escape(var.name)}\\fR"]
            self._text(self._p(var.text))

    def _limits(self) -> None:
        self.out.append(".SH LIMITS")
        for limit in reference.LIMITS:
            self.out += [".TP", self._p(limit.what)]
            self._text(self._p(f"{limit.value}. Beyond it: {limit.past_it}."))
        self._pp()
        self._text(self._p(reference.LIMITS_NOTE))

    def _files(self) -> None:
        self.out.append(".SH FILES")
        for name, text in reference.FILES:
            self.out += [".TP", f"\\fI{escape(name)}\\fR"]
            self._text(self._p(text))

    def _examples(self) -> None:
        self.out.append(".SH EXAMPLES")
        for text, command in reference.EXAMPLES:
            self._pp()
            self._text(self._p(text))
            self._code(command.split("\n"))

    def _see_also(self) -> None:
        self.out.append(".SH \"SEE ALSO\"")
        refs = [f"\\fB{escape(name)}\\fR({section})" for name, section in reference.SEE_ALSO]
        self.out.append(",\n".join(refs))


def _usage(usage: str) -> str:
    """A synopsis line: the command words bold, placeholders italic, brackets roman."""
    words = usage.split(" ")
    command = list(takewhile(lambda w: re.fullmatch(r"[a-z][a-z0-9-]*", w) is not None, words))
    rest = words[len(command) :]
    bold = f"\\fB{escape(' '.join(command))}\\fR"
    return " ".join([bold, *(_placeholder(w) for w in rest)])


def _placeholder(word: str) -> str:
    return re.sub(
        r"[A-Za-z][A-Za-z0-9_|-]*",
        lambda m: f"\\fI{escape(m.group(0))}\\fR",
        word,
    )


_TH_DATE = re.compile(r'^\.TH MAKESTREAM 1 "([^"]*)"', re.MULTILINE)


def render(root: CommandDoc, previous: str | None = None, today: date | None = None) -> str:
    """The complete man page for `root` (the tree `makestream.docs.model.collect` returns).

    The page's date is when its text last changed: the `previous` page's date while nothing
    else differs, else `today`. So regenerating an unchanged page changes nothing, and the
    drift check stays independent of the calendar.
    """
    kept = _TH_DATE.search(previous or "")
    if kept is not None:
        page = ManPage(root, kept.group(1)).render()
        if page == previous:
            return page
    return ManPage(root, (today or build_date()).isoformat()).render()


def build_date() -> date:
    """Today, or the date SOURCE_DATE_EPOCH names (reproducible builds pin it that way)."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if epoch:
        try:
            return datetime.fromtimestamp(int(epoch), UTC).date()
        except (ValueError, OverflowError, OSError):
            raise ValueError(
                f"SOURCE_DATE_EPOCH={epoch!r}: expected seconds since 1970 as a whole number"
            ) from None
    return date.today()
