"""Builders for Make blueprint JSON, so the built-in worlds read like the scenarios they describe.

The output has the shape of Make's `GET /scenarios/{id}/blueprint` (see make-api.md §2.3): module
nodes with `id`, `module`, `version`, `parameters`, `mapper`, `metadata.designer`, optional
`filter`, `routes` and `onerror`, and blueprint-level `metadata.scenario` settings.
"""

from __future__ import annotations

from typing import Any

from makestream.sim.blueprint import Node


def module(
    module_id: int,
    key: str,
    *,
    version: int = 1,
    mapper: dict[str, Any] | None = None,
    parameters: dict[str, Any] | None = None,
    filter_name: str | None = None,
    routes: list[list[Node]] | None = None,
    onerror: list[Node] | None = None,
    listener: bool = False,
) -> Node:
    """One module node. `filter_name` puts a filter on the link leading into the module."""
    node: Node = {
        "id": module_id,
        "module": key,
        "version": version,
        "parameters": parameters or {},
        "mapper": mapper,
        "metadata": {"designer": {"x": 300 * (module_id - 1), "y": 0}},
    }
    if filter_name is not None:
        field = filter_name.lower().replace(" ", "_")
        node["filter"] = {
            "name": filter_name,
            "conditions": [[{"a": f"{{{{1.{field}}}}}", "o": "exist"}]],
        }
    if routes is not None:
        node["routes"] = [{"flow": flow} for flow in routes]
    if onerror is not None:
        node["onerror"] = onerror
    if listener:
        node["listener"] = True
    return node


def blueprint(
    name: str,
    flow: list[Node],
    *,
    max_errors: int = 3,
    dlq: bool = False,
    sequential: bool = False,
    instant: bool = False,
) -> dict[str, Any]:
    """A whole blueprint with Make's default scenario settings."""
    return {
        "name": name,
        "flow": flow,
        "metadata": {
            "instant": instant,
            "version": 1,
            "scenario": {
                "roundtrips": 1,
                "maxErrors": max_errors,
                "autoCommit": True,
                "autoCommitTriggerLast": True,
                "sequential": sequential,
                "slots": None,
                "confidential": False,
                "dataloss": False,
                "dlq": dlq,
                "freshVariables": False,
            },
            "designer": {"orphans": []},
            "zone": "eu1.make.com",
            "notes": [],
        },
    }
