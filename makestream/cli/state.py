"""`makestream state`: one JSON document about scenarios, for scripts and dashboards.

Names and error messages in it are Make's text, kept as they came; the document is written with
`makestream.render.ndjson.dumps`, whose JSON escapes every control and invisible formatting
character, so it is safe to print on a terminal and still parses to Make's own words.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from makestream.cli.common import (
    ApiLimitOpt,
    BudgetShareOpt,
    Connection,
    DemoOpt,
    SpeedOpt,
    TokenFileOpt,
    command_app,
    open_client,
    run,
)
from makestream.errors import ExitCode, UsageError

app = command_app()


@app.command()
def state(
    scenarios: list[int] = typer.Argument(
        None, metavar="SCENARIO", help="Scenario ids.", show_default=False
    ),
    team: int | None = typer.Option(
        None, "--team", metavar="ID", help="Every scenario of this team."
    ),
    last: int = typer.Option(
        10, "--last", min=1, max=200, metavar="N", help="Recent executions to list."
    ),
    exit_status: bool = typer.Option(
        False,
        "--exit-status",
        help="Exit with the code of the latest execution: 0 success, 3 warning, 1 error.",
    ),
    demo: bool = DemoOpt,
    token_file: Path | None = TokenFileOpt,
    api_limit: int | None = ApiLimitOpt,
    budget_share: float = BudgetShareOpt,
    speed: float | None = SpeedOpt,
) -> None:
    """Print flags, recent executions, success rate and p50/p95 durations as one JSON document."""
    conn = Connection(
        demo=demo, token_file=token_file, api_limit=api_limit,
        budget_share=budget_share, speed=speed, one_shot=True
    )

    async def main() -> int:
        from makestream.engine.state import fetch_state, latest_outcome
        from makestream.render.ndjson import dumps

        async with open_client(conn) as (client, zone):
            team_id = team
            ids = list(scenarios or [])
            if zone is not None and not ids and team_id is None:
                ids = [s.id for s in zone.world.scenarios]  # as watch --demo does
            if not ids and team_id is None:
                raise UsageError("name a scenario id or give --team")
            document = await fetch_state(client, scenario_ids=ids, team_id=team_id, last=last)
        sys.stdout.buffer.write(dumps(document, indent=True) + b"\n")
        sys.stdout.flush()
        if not exit_status:
            return 0
        outcome = latest_outcome(document)
        return {"warning": ExitCode.EXECUTION_WARNING, "error": ExitCode.EXECUTION_ERROR}.get(
            outcome or "", ExitCode.OK
        )

    run(main)
