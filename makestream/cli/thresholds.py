"""`makestream thresholds`: show, change, check and try out the alert thresholds.

    makestream thresholds [--scenario ID] [--format table|json]
    makestream thresholds set KEY VALUE [--scenario ID] [--severity warning|critical]
    makestream thresholds unset KEY [--scenario ID]
    makestream thresholds reset [--scenario ID]
    makestream thresholds check [FILE]
    makestream thresholds test SCENARIO [--last N] [--demo] [--token-file FILE]

The file is `$MAKESTREAM_CONFIG`, else `$XDG_CONFIG_HOME/makestream/config.toml`; its format is
described in `makestream.config`, the rules in `makestream.engine.rules`.

`test` prints alert messages that quote Make's scenario names: its table lines are cleaned of
control characters (`makestream.safetext.clean`), its JSON lines escape them; notes on stderr
go through `say` like every error line.
"""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from makestream.cli.common import (
    ApiLimitOpt,
    BudgetShareOpt,
    Connection,
    DemoOpt,
    SpeedOpt,
    TokenFileOpt,
    command_app,
    die,
    open_client,
    run,
    say,
)
from makestream.cli.store import StoreReadOpt

if TYPE_CHECKING:
    from makestream.engine.alerts import AlertEvent
    from makestream.engine.rules import EffectiveThresholds, Threshold

app = command_app(
    name="thresholds",
    help="Show the alert thresholds in effect (without a command), change them in the config "
    "file, check the file, and try the rules on a scenario's recent runs.",
    invoke_without_command=True,
    no_args_is_help=False,
)


class OutputFormat(StrEnum):
    auto = "auto"
    table = "table"
    json = "json"


class SeverityChoice(StrEnum):
    warning = "warning"
    critical = "critical"


ScenarioOpt = typer.Option(
    None, "--scenario", min=1, metavar="ID", help="A scenario's own thresholds."
)
FormatOpt = typer.Option(
    OutputFormat.auto, "--format", help="table on a terminal, json otherwise, unless given."
)
SeverityOpt = typer.Option(None, "--severity", help="The alert severity.")
CheckFileArg = typer.Argument(
    None, dir_okay=False, metavar="FILE", help="The file to check (default: the config file)."
)


def _table_wanted(fmt: OutputFormat) -> bool:
    return fmt is OutputFormat.table or (fmt is OutputFormat.auto and sys.stdout.isatty())


def _note(message: str) -> None:
    say(message)


def _where(scenario: int | None) -> str:
    return f"scenario {scenario}" if scenario is not None else "every scenario"


# --- show ---------------------------------------------------------------------------------------


def _value_text(threshold: Threshold) -> str:
    from makestream.engine.rules import RULES

    spec = RULES[threshold.key]
    if not spec.has_value:
        return "-"
    if threshold.value is None:
        return "(none)"
    value = f"{threshold.value:g}"
    return {"s": f"{value} s", "x": f"{value}x", "ratio": value, "": value}.get(
        spec.unit, f"{value} {spec.unit}"
    )


def _describe(thresholds: EffectiveThresholds, scenario: int | None) -> dict[str, Any]:
    from makestream.engine.rules import RULES

    rules: dict[str, Any] = {}
    for key, t in thresholds.for_scenario(scenario).items():
        rules[key] = {
            "enabled": t.active,
            "value": t.value,
            "unit": RULES[key].unit or None,
            "severity": t.severity,
            "source": t.source,
            "params": dict(t.params),
            "summary": RULES[key].summary,
        }
    return {"scenario_id": scenario, "renotify_s": thresholds.renotify_s, "thresholds": rules}


def _print_table(thresholds: EffectiveThresholds, scenario: int | None) -> None:
    from makestream.safetext import clean

    rows = [("RULE", "ON", "VALUE", "SEVERITY", "SOURCE", "PARAMETERS")]
    for key, t in thresholds.for_scenario(scenario).items():
        params = " ".join(f"{n}={v:g}" for n, v in t.params.items())
        rows.append(
            (key, "on" if t.active else "off", _value_text(t), t.severity, t.source, params)
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        # The config is the user's own file, but a value in it can still hold a control character.
        typer.echo(clean("  ".join([*cells, row[-1]]).rstrip()))


@app.callback()
def show(
    ctx: typer.Context,
    scenario: int | None = ScenarioOpt,
    fmt: OutputFormat = FormatOpt,
) -> None:
    """Show the thresholds in effect (for one scenario with --scenario)."""
    if ctx.invoked_subcommand is not None:
        if scenario is not None or fmt is not OutputFormat.auto:
            die(
                f"--scenario and --format go after the subcommand: makestream thresholds "
                f"{ctx.invoked_subcommand} ... --scenario ID",
                2,
            )
        return

    async def main() -> int:
        from makestream.config import load
        from makestream.render.ndjson import dumps

        config = load()
        if _table_wanted(fmt):
            origin = (
                str(config.path)
                if config.exists
                else f"built-in defaults ({config.path} does not exist)"
            )
            typer.echo(f"Thresholds for {_where(scenario)}, from {origin}")
            _print_table(config.thresholds, scenario)
            return 0
        document = {
            "config": str(config.path),
            "exists": config.exists,
            **_describe(config.thresholds, scenario),
        }
        sys.stdout.buffer.write(dumps(document, indent=True) + b"\n")
        sys.stdout.flush()
        return 0

    run(main)


# --- edit ---------------------------------------------------------------------------------------


@app.command("set")
def set_(
    key: str = typer.Argument(
        ...,
        metavar="KEY",
        help="A rule (e.g. duration_max_s) or RULE.PARAM (e.g. error_rate.window_runs).",
    ),
    value: str = typer.Argument(
        ...,
        metavar="VALUE",
        help="A number, a duration for keys in seconds (10m), or on/off.",
    ),
    scenario: int | None = ScenarioOpt,
    severity: SeverityChoice | None = SeverityOpt,
) -> None:
    """Set a threshold in the config file (comments and order are kept)."""

    async def main() -> int:
        from makestream.config import default_path, set_threshold

        path = default_path()
        set_threshold(
            path,
            key,
            value,
            scenario=scenario,
            severity=severity.value if severity is not None else None,
        )
        extra = f" ({severity.value})" if severity is not None else ""
        _note(f"{key} = {value}{extra} for {_where(scenario)} in {path}")
        return 0

    run(main)


@app.command()
def unset(
    key: str = typer.Argument(..., metavar="KEY", help="A rule or RULE.PARAM."),
    scenario: int | None = ScenarioOpt,
) -> None:
    """Remove a threshold from the config file, so the default (or the general one) applies."""

    async def main() -> int:
        from makestream.config import default_path, unset_threshold

        path = default_path()
        if unset_threshold(path, key, scenario=scenario):
            _note(f"{key} removed for {_where(scenario)} in {path}")
        else:
            _note(f"{key} was not set for {_where(scenario)} in {path}")
        return 0

    run(main)


@app.command()
def reset(
    scenario: int | None = ScenarioOpt,
    yes: bool = typer.Option(
        False, "--yes", "-y", help="Without --scenario: do not ask before removing every setting."
    ),
) -> None:
    """Remove one scenario's thresholds, or (without --scenario) every threshold setting."""

    async def main() -> int:
        import sys

        from makestream.config import default_path, reset_thresholds
        from makestream.errors import UsageError

        path = default_path()
        if scenario is None and not yes and path.exists():
            # Everything goes: ask on a terminal, and refuse to guess in a script.
            if not sys.stdin.isatty():
                raise UsageError(
                    f"this removes every threshold setting in {path}: add --yes to confirm "
                    "(or --scenario ID for one scenario's)"
                )
            if not typer.confirm(f"Remove every threshold setting in {path}?", default=False):
                _note("nothing changed")
                return 0
        done = reset_thresholds(path, scenario=scenario)
        what = f"scenario {scenario}'s thresholds" if scenario is not None else "all thresholds"
        _note(f"{what} reset in {path}" if done else f"nothing to reset in {path}")
        return 0

    run(main)


@app.command()
def check(
    file: Path | None = CheckFileArg,
) -> None:
    """Validate a config file: exit 0 when valid, 2 (with the line at fault) when not."""

    async def main() -> int:
        from makestream.config import default_path, parse, read_text
        from makestream.errors import ConfigError

        path = file if file is not None else default_path()
        text = read_text(path)
        if text is None:
            if file is not None:
                raise ConfigError(f"{path}: no such file")
            _note(f"no config file at {path}: the built-in defaults apply")
            return 0
        parse(text, str(path))
        _note(f"{path}: valid")
        return 0

    run(main)


# --- test ---------------------------------------------------------------------------------------


def _print_alerts(alerts: list[AlertEvent], table: bool) -> None:
    from makestream.render.ndjson import encode
    from makestream.safetext import clean

    out = sys.stdout
    if table:
        rows = [("WHEN", "EVENT", "SEVERITY", "ALERT", "MESSAGE")]
        rows += [
            (
                clean(alert.ts),
                "resolved" if alert.type == "alert.resolved" else "raised",
                clean(alert.severity),
                clean(alert.alert_id),
                clean(alert.message),
            )
            for alert in alerts
        ]
        if alerts:
            widths = [max(len(row[i]) for row in rows) for i in range(4)]
            for row in rows:
                cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
                out.write("  ".join([*cells, row[-1]]).rstrip() + "\n")
    else:
        # Numbered as one stream of its own; a replay has no position to resume from.
        for seq, alert in enumerate(alerts, 1):
            out.buffer.write(encode(alert.model_copy(update={"seq": seq})))
    out.flush()


def _test_from_store(
    thresholds: EffectiveThresholds, scenario: int, last: int, store: Path | None, table: bool
) -> int:
    """`thresholds test --from-store`: the stored runs, oldest first, through the rules."""
    import time

    from makestream.engine.alerts import replay
    from makestream.errors import UsageError
    from makestream.make.models import ExecutionLog, Scenario
    from makestream.store import open_read, query, resolve

    path = resolve(store, False).path
    if path is None:
        raise UsageError("no history store: MAKESTREAM_STORE is off (name one with --store)")
    conn = open_read(path)
    rows: list[dict[str, Any]] = []
    name = None
    if conn is not None:
        try:
            rows = query.executions(conn, query.Selection(scenario_ids=[scenario]), limit=last)
            name = query.names(conn).get(scenario)
        finally:
            conn.close()
    entries = [
        ExecutionLog.model_validate({
            "id": r["execution_id"], "scenarioId": scenario,
            # As Make would list them: at their end, which is when the rules saw them live.
            "timestamp": r["ended_ms"] / 1000, "duration": r["duration_ms"],
            "operations": r["operations"] or 0, "centicredits": r["centicredits"],
            "transfer": r["transfer_bytes"] or 0, "status": r["status"],
        })
        for r in rows
    ]
    info = Scenario.model_validate({"id": scenario, "name": name or ""})
    alerts = replay(thresholds, info, entries, now=time.time())
    _print_alerts(alerts, table)
    raised = sum(1 for a in alerts if a.type == "alert.raised")
    _note(
        f"{raised} alert{'s' * (raised != 1)} would have been raised over the last {len(rows)} "
        f"stored runs of scenario {scenario} (history store {path})"
    )
    return 0


@app.command()
def test(
    scenario: int = typer.Argument(..., min=1, metavar="SCENARIO", help="The scenario id."),
    last: int = typer.Option(
        50, "--last", min=1, max=1000, metavar="N", help="Recent executions to replay."
    ),
    fmt: OutputFormat = FormatOpt,
    from_store: bool = typer.Option(
        False, "--from-store",
        help="Replay the runs kept in the history store instead: no request to Make (and no "
        "present state to judge).",
    ),
    store: Path | None = StoreReadOpt,
    demo: bool = DemoOpt,
    token_file: Path | None = TokenFileOpt,
    api_limit: int | None = ApiLimitOpt,
    budget_share: float = BudgetShareOpt,
    speed: float | None = SpeedOpt,
) -> None:
    """Replay a scenario's recent executions through the rules and show what would have fired.

    Runs are taken oldest first at the time of their log entry; then the scenario's present
    state (flags, webhook queue, schedule, runs still going) is judged as of now. With
    --from-store, the runs come from the history store (see makestream history) and only they
    are judged.
    """
    conn = Connection(
        demo=demo, token_file=token_file, api_limit=api_limit,
        budget_share=budget_share, speed=speed, one_shot=True
    )

    async def main() -> int:
        from makestream.config import load
        from makestream.engine.alerts import replay

        thresholds = load().thresholds  # a bad config fails before any request is spent
        if from_store:
            return _test_from_store(thresholds, scenario, last, store, _table_wanted(fmt))
        async with open_client(conn) as (client, _zone):
            info = await client.scenario(scenario)
            entries = await client.recent_logs(scenario, last)
            queue = None
            if info.hook_id is not None:
                queue = await client.queue_depth(scenario)
            alerts = replay(
                thresholds,
                info,
                entries[:last],
                now=client.clock.now(),
                queue_count=queue,
                budget=client.budget.snapshot(),
            )
        _print_alerts(alerts, _table_wanted(fmt))
        raised = sum(1 for a in alerts if a.type == "alert.raised")
        runs = sum(1 for e in entries[:last] if e.status.terminal)
        _note(
            f"{raised} alert{'s' * (raised != 1)} would have been raised over the last {runs} "
            f"runs of scenario {scenario}"
        )
        return 0

    run(main)
