"""`makestream flow`: draw a scenario's module flow, optionally with one execution's results.

The blueprint's names are Make's text: `FlowDiagram` cleans them of control characters, and the
drawing goes out through `Sanitized`, like the live view's.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from makestream.cli.common import (
    ApiLimitOpt,
    BudgetShareOpt,
    Color,
    Connection,
    DemoOpt,
    SpeedOpt,
    TokenFileOpt,
    command_app,
    open_client,
    run,
    say,
)
from makestream.errors import ExitCode

if TYPE_CHECKING:
    from makestream.make.client import MakeClient
    from makestream.make.models import Blueprint
    from makestream.render.flow import ModuleOutcome

app = command_app()

# Module logs cannot be filtered by execution, so each module's most recent page is searched.
MODULE_LOG_PAGE = 100


async def fetch_outcomes(
    client: MakeClient, scenario_id: int, blueprint: Blueprint, execution_id: str
) -> dict[int, ModuleOutcome]:
    """Each module's result in one execution, from its module logs (one request per module)."""
    from makestream.render.flow import ModuleOutcome

    found: dict[int, ModuleOutcome] = {}
    for module in blueprint.walk():
        # Routers and directives are free and need not leave a log; spare the budget.
        if module.module.startswith("builtin:"):
            continue
        page = await client.module_logs(scenario_id, module.id, limit=MODULE_LOG_PAGE)
        for entry in page.items:
            if entry.execution_id == execution_id:
                found[module.id] = ModuleOutcome(entry.status.value, entry.bundles, entry.size)
                break
    return found


ExecutionOpt = typer.Option(
    None, "--execution", metavar="ID",
    help="Show each module's result in this execution (one request per module).",
)
ColorOpt = typer.Option(Color.auto, "--color", case_sensitive=False,
                        help="Colour the results (NO_COLOR is honoured).")


@app.command()
def flow(
    scenario: int = typer.Argument(..., metavar="SCENARIO", help="Scenario id."),
    execution: str | None = ExecutionOpt,
    color: Color = ColorOpt,
    demo: bool = DemoOpt,
    token_file: Path | None = TokenFileOpt,
    api_limit: int | None = ApiLimitOpt,
    budget_share: float = BudgetShareOpt,
    speed: float | None = SpeedOpt,
) -> None:
    """Draw a scenario's module flow: chains, routers with their filters, error handlers.

    Examples:

      makestream flow 123

      makestream flow 123 --execution 8f14e45fceea167a5a36dedd4bea2543
    """
    conn = Connection(
        demo=demo, token_file=token_file, api_limit=api_limit,
        budget_share=budget_share, speed=speed, one_shot=True
    )

    async def main() -> int:
        from makestream.render.console import Sanitized, make_console
        from makestream.render.flow import LABEL_MAX, FlowDiagram
        from makestream.render.text import glyphs
        from makestream.safetext import clean

        async with open_client(conn) as (client, _zone):
            blueprint = await client.blueprint(scenario)
            results = None
            if execution is not None:
                results = await fetch_outcomes(client, scenario, blueprint, execution)
        console = make_console(sys.stdout, color)
        dot = glyphs(not console.encoding.startswith("utf")).middot
        # Cut the name, not the title: the ids after it must stay in sight.
        name = clean(blueprint.name or "Scenario", max_chars=LABEL_MAX)
        title = f"{name} {dot} scenario {scenario}"
        if execution is not None and results:
            title += f" {dot} execution {execution}"
        # No module mentions the run: draw the structure alone rather than "not run" everywhere.
        console.print(Sanitized(FlowDiagram(blueprint, results or None, title=title)))
        if execution is not None and not results:
            say(f"error: execution {execution}: no module logs mention it "
                f"(the last {MODULE_LOG_PAGE} runs of each module were searched)")
            return int(ExitCode.CANNOT_MONITOR)
        return 0

    run(main)
