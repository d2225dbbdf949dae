"""Module flow diagrams: routers and their filters, error handlers, long chains, results."""

from __future__ import annotations

import re
from typing import Any

import pytest
from snapshots import assert_snapshot, render_text

from makestream.events import ModuleResult
from makestream.make.models import Blueprint
from makestream.render.flow import FlowDiagram, ModuleOutcome, outcomes_from


def node(module_id: int, key: str, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"id": module_id, "module": key, "version": 1,
                            "metadata": {"designer": {"x": 0, "y": 0}}}
    if "filter_name" in fields:
        body["filter"] = {"name": fields.pop("filter_name"), "conditions": [[]]}
    if "routes" in fields:
        body["routes"] = [{"flow": flow} for flow in fields.pop("routes")]
    return body | fields


ROUTER = Blueprint.model_validate({"name": "Route support emails", "flow": [
    node(1, "email:TriggerNewEmail"),
    node(2, "builtin:BasicRouter", routes=[
        [node(3, "slack:CreateMessage", filter_name="Urgent"),
         node(4, "pagerduty:CreateIncident")],
        [node(5, "google-sheets:addRow", filter_name="Billing")],
        [node(6, "util:SetVariable2"),
         node(7, "app#acme-crm:CreateTicket", filter_name="Has customer")],
        [],
    ]),
]})

HANDLER = Blueprint.model_validate({"name": "Push invoices to accounting", "flow": [
    node(1, "google-sheets:watchRows"),
    node(2, "http:ActionSendData", onerror=[
        node(5, "slack:CreateMessage"),
        node(6, "builtin:Ignore"),
    ]),
    node(3, "google-sheets:updateRow",
         metadata={"designer": {"x": 0, "y": 0, "name": "Mark as sent"}}),
    node(4, "builtin:BasicRouter", routes=[
        [node(7, "gmail:ActionSendEmail", onerror=[node(8, "builtin:Resume")])],
        [node(9, "builtin:Break")],
    ]),
]})

CHAIN = Blueprint.model_validate({"name": "A long chain", "flow": [
    node(i, "json:ParseJSON" if i % 2 else "http:ActionSendData") for i in range(1, 41)
]})

RESULTS = {
    1: ModuleOutcome("success", bundles=3),
    2: ModuleOutcome("error", bundles=1),
    5: ModuleOutcome("success", bundles=1, operations=1),
    3: ModuleOutcome("warning", bundles=0),
    7: ModuleOutcome("running"),
}

CASES = {
    "router": (ROUTER, None),
    "router_results": (ROUTER, {1: ModuleOutcome("success", 1), 3: ModuleOutcome("success", 1),
                                4: ModuleOutcome("warning", 1)}),
    "error_handler": (HANDLER, None),
    "error_handler_results": (HANDLER, RESULTS),
    "chain40": (CHAIN, None),
    "chain40_results": (CHAIN, {i: ModuleOutcome("success", i % 3) for i in range(1, 21)}),
}


@pytest.mark.parametrize("width", [100, 80])
@pytest.mark.parametrize("case", sorted(CASES))
def test_flow_snapshot(case: str, width: int) -> None:
    blueprint, results = CASES[case]
    text = render_text(FlowDiagram(blueprint, results), width=width)
    assert_snapshot(f"flow_{case}_{width}", text)


def test_ascii_fallback_uses_no_characters_beyond_ascii() -> None:
    text = render_text(FlowDiagram(HANDLER, RESULTS, ascii_only=True), width=80)
    assert text.isascii()
    assert_snapshot("flow_error_handler_results_ascii", text)


def test_a_console_that_cannot_encode_utf8_gets_the_ascii_diagram() -> None:
    import io

    from rich.console import Console

    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="ascii")
    Console(file=stream, width=80, color_system=None).print(FlowDiagram(ROUTER))
    stream.flush()
    assert "|- route 1 - filter: Urgent" in raw.getvalue().decode("ascii")


def test_module_labels_split_app_and_name() -> None:
    text = render_text(FlowDiagram(ROUTER), width=100)
    assert "1  email · TriggerNewEmail" in text
    assert "acme-crm · CreateTicket" in text  # custom apps lose their app# prefix


def test_a_narrow_console_shortens_lines_instead_of_wrapping_them() -> None:
    lines = render_text(FlowDiagram(HANDLER, RESULTS, title=""), width=30).splitlines()
    assert all(len(line) <= 30 for line in lines)
    ids = [re.match(r"[^0-9a-z]*(\d+)  ", line) for line in lines[:13]]
    assert [m.group(1) for m in ids if m] == list("125634789")  # then the footer, which wraps
    assert lines[13].startswith("9 modules")


def test_results_from_module_result_events_of_one_execution() -> None:
    events = [ModuleResult(execution_id="a", module_id=1, status="success", bundles=2),
              ModuleResult(execution_id="b", module_id=1, status="error", bundles=1),
              ModuleResult(execution_id="a", module_id=2, status="warning")]
    assert outcomes_from(events, "a") == {1: ModuleOutcome("success", 2),
                                          2: ModuleOutcome("warning")}
    assert outcomes_from(events)[1] == ModuleOutcome("error", 1)


def test_an_empty_blueprint_says_so() -> None:
    text = render_text(FlowDiagram(Blueprint(name="Empty")), width=80)
    assert "no modules" in text
