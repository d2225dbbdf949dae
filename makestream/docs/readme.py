"""The README's generated blocks: commands, exit statuses, environment, limits and events.

The README is written by hand, except between markers like these, which the generator rewrites::

    <!-- BEGIN GENERATED events: python -m makestream.docs rewrites this block -->
    ...
    <!-- END GENERATED events -->

A block the README lacks is an error rather than something to add silently: where each table
goes is an editorial choice.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from makestream.docs import reference
from makestream.docs.model import CommandDoc

BEGIN = "<!-- BEGIN GENERATED {name}: python -m makestream.docs rewrites this block -->"
END = "<!-- END GENERATED {name} -->"


def _cell(text: str) -> str:
    # A pipe ends a table cell even inside a code span, in GitHub's Markdown.
    return text.replace("|", "\\|").replace("\n", " ")


def commands_block(root: CommandDoc) -> str:
    """Every command with the first sentence of its help."""
    rows = ["| command | what it does |", "|---|---|"]
    for command in root.walk():
        if command.path:
            rows.append(f"| `{_cell(command.name)}` | {_cell(command.summary)} |")
    return "\n".join(rows)


def exit_status_block(_root: CommandDoc) -> str:
    """The exit status table (the same as the man page's EXIT STATUS)."""
    rows = ["| status | meaning |", "|---|---|"]
    rows += [f"| {int(code)} | {_cell(text)} |" for code, text in reference.EXIT_STATUS.items()]
    return "\n".join(rows) + "\n\n" + reference.EXIT_STATUS_NOTE


def environment_block(_root: CommandDoc) -> str:
    """The environment variables (the same as the man page's ENVIRONMENT)."""
    rows = ["| variable | meaning |", "|---|---|"]
    rows += [f"| `{var.name}` | {_cell(var.text)} |" for var in reference.ENVIRONMENT]
    return "\n".join(rows)


def limits_block(_root: CommandDoc) -> str:
    """The caps on outside input (the same as the man page's LIMITS)."""
    rows = ["| input | limit | past it |", "|---|---|---|"]
    rows += [f"| {_cell(x.what)} | {_cell(x.value)} | {_cell(x.past_it)} |"
             for x in reference.LIMITS]
    return "\n".join(rows) + "\n\n" + reference.LIMITS_NOTE


def events_block(_root: CommandDoc) -> str:
    """The event reference, from the models and field descriptions in `makestream.events`."""
    common, events = reference.event_reference()
    out = [reference.EVENT_FORMAT, "", "| field | type | meaning |", "|---|---|---|"]
    out += [f"| `{f.name}` | `{_cell(f.type)}` | {_cell(f.description)} |" for f in common]
    for event in events:
        out += ["", f"**`{event.type}`** — {event.summary}", ""]
        if not event.fields:
            out.append("No fields of its own.")
            continue
        out += ["| field | type | meaning |", "|---|---|---|"]
        out += [
            f"| `{f.name}` | `{_cell(f.type)}` | {_cell(f.description)} |" for f in event.fields
        ]
    return "\n".join(out)


def mcp_tools_block(_root: CommandDoc) -> str:
    """The tools of `makestream mcp`, from the server's own schemas."""
    out = [reference.MCP_NOTE]
    for tool in reference.mcp_tools():
        args = ", ".join(f.name for f in tool.arguments)
        out += ["", f"**`{tool.name}({args})`** — {tool.summary}", ""]
        out += ["| argument | type | meaning |", "|---|---|---|"]
        out += [f"| `{f.name}` | `{_cell(f.type)}` | {_cell(f.description)} |"
                for f in tool.arguments]
        out += ["", "Returns: " + ", ".join(f"`{f.name}`" for f in tool.returns) + "."]
    return "\n".join(out)


BLOCKS: dict[str, Callable[[CommandDoc], str]] = {
    "commands": commands_block,
    "exit-status": exit_status_block,
    "environment": environment_block,
    "limits": limits_block,
    "events": events_block,
    "mcp-tools": mcp_tools_block,
}


def rewrite(readme: str, root: CommandDoc) -> str:
    """`readme` with every generated block brought up to date."""
    for name, build in BLOCKS.items():
        begin, end = BEGIN.format(name=name), END.format(name=name)
        found = re.search(re.escape(begin) + r"\n.*?" + re.escape(end), readme, re.DOTALL)
        if found is None:
            raise LookupError(f"README.md lacks the generated block {name!r}: add the lines\n"
                              f"{begin}\n{end}\nwhere the block belongs")
        block = f"{begin}\n{build(root)}\n{end}"
        readme = readme[: found.start()] + block + readme[found.end() :]
    return readme
