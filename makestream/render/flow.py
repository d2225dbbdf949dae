"""The module flow of a scenario, drawn as text: chains, routers and their routes, error handlers.

A blueprint's `flow` is a chain of modules; a router carries one chain per route, and a module
with an error handler carries the handler's chain in `onerror`. The diagram keeps each chain at
one indentation and hangs routes and handlers below their module with tree guides, so a
40-module chain stays 40 lines tall instead of drifting right::

    1  google-sheets · watchRows                 ✓ 3 bundles
    2  http · ActionSendData                     ✗ 1 bundle
    └─ on error
       5  slack · CreateMessage                  ✓ 1 bundle
       6  builtin · Ignore
    3  google-sheets · updateRow                 – not run

A filter sits on the link that leads into a module; a route's filter is shown on the route's
line, any other filter on a line of its own before the module. Results (from `module.result`
events or module logs) are optional; without them only the structure is drawn.

Every name in a blueprint (the scenario's, module keys, designer names, filter names) is Make's
text and may hold terminal control sequences; each is cleaned (`makestream.safetext.clean`) by the
function that reads it from the blueprint, before it is laid out.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from makestream.render.text import Glyphs, glyphs, plural, status_style
from makestream.safetext import clean

if TYPE_CHECKING:
    from rich.console import Console, ConsoleOptions, RenderResult
    from rich.text import Text

    from makestream.events import _Event
    from makestream.make.models import Blueprint, BlueprintModule


LABEL_MAX = 200  # characters of a name from the blueprint (cells crop far earlier)


def _label(text: str) -> str:
    return clean(text, max_chars=LABEL_MAX)


@dataclass(frozen=True)
class ModuleOutcome:
    """One module's result in one execution."""

    status: str  # success, warning, error (or another status Make reported)
    bundles: int | None = None
    size: int | None = None
    operations: int | None = None


def outcomes_from(
    events: Iterable[_Event], execution_id: str | None = None
) -> dict[int, ModuleOutcome]:
    """Module outcomes from `module.result` events (of one execution when `execution_id`)."""
    from makestream.events import ModuleResult

    found: dict[int, ModuleOutcome] = {}
    for event in events:
        if isinstance(event, ModuleResult) and (
            execution_id is None or event.execution_id == execution_id
        ):
            found[event.module_id] = ModuleOutcome(event.status, event.bundles, event.size)
    return found


@dataclass(frozen=True)
class _Line:
    guides: str
    kind: str  # module, route, handler, filter
    label: str
    module: BlueprintModule | None = None
    extra: str = ""


def _filter_name(module: BlueprintModule) -> str | None:
    if not module.filter:
        return None
    name = module.filter.get("name")
    return _label(str(name)) if name else "unnamed filter"


def _lines(flow: list[BlueprintModule], prefix: str, g: Glyphs, *, routed: bool) -> Iterator[_Line]:
    for index, module in enumerate(flow):
        # The first module of a route has its filter shown on the route's own line.
        name = _filter_name(module)
        if name and not (routed and index == 0):
            yield _Line(prefix, "filter", f"filter: {name}")
        yield _Line(prefix, "module", "", module)
        branches: list[tuple[str, str, list[BlueprintModule]]] = []
        for number, route in enumerate(module.routes, start=1):
            first = _filter_name(route.flow[0]) if route.flow else None
            detail = f"filter: {first}" if first else "no filter"
            branches.append(("route", f"route {number} {g.middot} {detail}", route.flow))
        if module.onerror:
            branches.append(("handler", "on error", module.onerror))
        for position, (kind, label, chain) in enumerate(branches):
            last = position == len(branches) - 1
            extra = "" if chain else "empty"
            yield _Line(prefix + (g.elbow if last else g.tee), kind, label, extra=extra)
            yield from _lines(chain, prefix + ("   " if last else g.pipe), g,
                              routed=kind == "route")


def module_title(module: BlueprintModule, g: Glyphs) -> str:
    """`http · ActionSendData` for `http:ActionSendData` (custom apps lose their `app#`)."""
    return f"{_label(module.app)} {g.middot} {_label(module.name)}"


def _designer_name(module: BlueprintModule) -> str | None:
    metadata = module.metadata if isinstance(module.metadata, dict) else {}
    designer = metadata.get("designer")
    name = designer.get("name") if isinstance(designer, dict) else None
    return _label(str(name)) if name else None


def _result(module: BlueprintModule, outcome: ModuleOutcome | None, g: Glyphs) -> Text:
    from rich.text import Text

    if outcome is None:
        # Built-in modules (routers, directives) cost nothing and need not leave a log.
        if module.module.startswith("builtin:"):
            return Text("")
        return Text(f"{g.skipped} not run", style="dim")
    text = Text()
    text.append(g.status(outcome.status), style=status_style(outcome.status))
    if outcome.status not in ("success", "warning", "error"):
        text.append(f" {_label(outcome.status)}")
    if outcome.bundles is not None:
        text.append(f" {plural(outcome.bundles, 'bundle')}")
    if outcome.operations is not None:
        text.append(f" {g.middot} {plural(outcome.operations, 'op')}", style="dim")
    return text


class FlowDiagram:
    """A rich renderable of a blueprint's module flow, with optional per-module results."""

    def __init__(
        self,
        blueprint: Blueprint,
        results: Mapping[int, ModuleOutcome] | None = None,
        *,
        title: str | None = None,
        ascii_only: bool | None = None,
    ) -> None:
        self.blueprint = blueprint
        self.results = dict(results) if results is not None else None
        self.title = title
        self.ascii_only = ascii_only

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        from rich.table import Table
        from rich.text import Text

        g = glyphs(options.ascii_only if self.ascii_only is None else self.ascii_only)
        # A caller's title quotes the blueprint's name too, so it is cleaned here as well.
        title = (clean(self.title) if self.title is not None
                 else _label(self.blueprint.name or "(unnamed)"))
        if title:
            yield Text(title, style="bold")
        # Ids are right-aligned to one width so that module names line up within a chain.
        id_width = max((len(str(m.id)) for m in self.blueprint.walk()), default=1)
        grid = Table.grid(padding=(0, 2))
        grid.add_column(no_wrap=True, overflow=g.overflow)
        grid.add_column(no_wrap=True, overflow=g.overflow)
        for line in _lines(self.blueprint.flow, "", g, routed=False):
            grid.add_row(*self._row(line, g, id_width))
        if not self.blueprint.flow:
            grid.add_row(Text("no modules", style="dim"), Text(""))
        yield grid
        yield Text(self._footer(g), style="dim")

    def _row(self, line: _Line, g: Glyphs, id_width: int) -> tuple[Text, Text]:
        from rich.text import Text

        # Text(x, style=s) would style everything appended later too; append each part instead.
        text = Text()
        text.append(line.guides, style="dim")
        if line.module is None:
            style = "yellow" if line.kind == "handler" else "dim" if line.kind == "filter" else ""
            text.append(line.label, style=style)
            if line.extra:
                text.append(f" ({line.extra})", style="dim")
            return text, Text("")
        module = line.module
        text.append(f"{module.id:>{id_width}}  ", style="dim")
        text.append(module_title(module, g))
        designer = _designer_name(module)
        if designer:
            text.append(f"  {designer}", style="dim italic")
        if self.results is None:
            return text, Text("")
        return text, _result(module, self.results.get(module.id), g)

    def _footer(self, g: Glyphs) -> str:
        modules = list(self.blueprint.walk())
        parts = [plural(len(modules), "module")]
        routers = sum(1 for m in modules if m.routes)
        handlers = sum(1 for m in modules if m.onerror)
        if routers:
            parts.append(plural(routers, "router"))
        if handlers:
            parts.append(plural(handlers, "error handler"))
        if self.results is not None:
            ran = [self.results[m.id] for m in modules if m.id in self.results]
            by_status = {s: sum(1 for r in ran if r.status == s) for s in ("warning", "error")}
            note = f"{len(ran)} ran"
            note += "".join(f", {n} {s}" for s, n in by_status.items() if n)
            parts.append(note)
        return f" {g.middot} ".join(parts)
