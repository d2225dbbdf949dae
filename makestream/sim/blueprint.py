"""Reading Make blueprints: walking the module tree the way Make's editor lays it out.

A blueprint's `flow` is a list of module nodes. A router (`builtin:BasicRouter`) carries
`routes: [{flow: [...]}]`, a module with an error handler carries `onerror: [...]`, and a module may
carry a `filter` on the link that leads into it. These helpers are shared by world validation,
execution simulation and the JSON payloads.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

Node = dict[str, Any]

# Directives end an error-handling route; they are Make's built-in error handlers.
DIRECTIVES = frozenset(
    {"builtin:Ignore", "builtin:Resume", "builtin:Commit", "builtin:Rollback", "builtin:Break"}
)


def iter_modules(flow: list[Node]) -> Iterator[Node]:
    """Every module node in `flow`, depth first, including routes and error handlers."""
    for node in flow:
        yield node
        for route in node.get("routes") or []:
            yield from iter_modules(route.get("flow") or [])
        yield from iter_modules(node.get("onerror") or [])


def app_name(module: str) -> str:
    """The app part of a module key: `google-sheets:addRow` -> `google-sheets`."""
    return module.split(":", 1)[0]


def used_packages(blueprint: dict[str, Any]) -> list[str]:
    """`usedPackages` as Make reports it: the app of every module, in flow order, with repeats."""
    return [app_name(str(node["module"])) for node in iter_modules(blueprint.get("flow") or [])]


def module_label(node: Node) -> str:
    """The name a person sees for a module: its custom designer name, else its module key."""
    designer = (node.get("metadata") or {}).get("designer") or {}
    name = designer.get("name")
    return str(name) if name else str(node["module"])


def is_builtin(node: Node) -> bool:
    """Built-in modules (routers, directives) cost no operations in Make."""
    return str(node["module"]).startswith("builtin:")


def scenario_settings(blueprint: dict[str, Any]) -> dict[str, Any]:
    """The blueprint's `metadata.scenario` settings (maxErrors, dlq, sequential, ...)."""
    settings = (blueprint.get("metadata") or {}).get("scenario") or {}
    return dict(settings)
