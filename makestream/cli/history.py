"""`makestream history`: what the history store remembers, for people and scripts.

    makestream history [SCENARIO...] [--team ID] [--since 7d] [--status error] [--format F]
    makestream history stats [SCENARIO...] [--by day|hour]
    makestream history plot SCENARIO [--metric duration|errors|operations]
    makestream history export [SCENARIO...] [--type T]
    makestream history prune [--keep 90d]

`history` without a command lists executions (as `history list`). Nothing here sends a request
to Make. Names come from Make and are untrusted: table lines go through `safetext.clean`, JSON
through the event encoder, CSV cells that a spreadsheet would run as a formula are quoted with a
leading apostrophe. A store that cannot be read is exit 2 with one line; no store yet is an empty
answer.
"""

from __future__ import annotations

import csv
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer
from typer import _click
from typer.core import TyperGroup

from makestream.cli.common import command_app, run, say
from makestream.cli.store import StoreReadOpt
from makestream.errors import UsageError


class _DefaultList(TyperGroup):
    """`history 123 --since 1d` is `history list 123 --since 1d`: arguments that name no
    subcommand go to `list`."""

    def parse_args(self, ctx: _click.Context, args: list[str]) -> list[str]:
        helping = any(a in ("-h", "--help") for a in args[:1])
        if not helping and (not args or args[0] not in self.commands):
            args = ["list", *args]
        return super().parse_args(ctx, args)


app = command_app(
    name="history",
    cls=_DefaultList,
    help="List, sum up, plot and export the executions watch and serve-sse have stored "
    "(no request to Make).\n\n"
    "Without a command, lists executions: makestream history 123 --since 1d --status error. "
    "The store is $MAKESTREAM_STORE, else $XDG_DATA_HOME/makestream/history.db, unless "
    "--store names one.",
    no_args_is_help=False,
)


class TableFormat(StrEnum):
    auto = "auto"
    table = "table"
    ndjson = "ndjson"
    csv = "csv"


class By(StrEnum):
    day = "day"
    hour = "hour"


class Metric(StrEnum):
    duration = "duration"
    errors = "errors"
    operations = "operations"


class Status(StrEnum):
    success = "success"
    warning = "warning"
    error = "error"


ScenariosArg = typer.Argument(
    None, metavar="SCENARIO", help="Scenario ids (default: all stored).", show_default=False
)
TeamOpt = typer.Option(
    None, "--team", metavar="ID", help="Only the scenarios of this team (as watch saw them)."
)
SinceOpt = typer.Option(
    "7d", "--since", metavar="DURATION|TIME", help="From then on (30d, or 2026-11-26T10:00:00Z)."
)
FormatOpt = typer.Option(
    TableFormat.auto, "--format", "-o", case_sensitive=False,
    help="auto: table on a terminal, ndjson otherwise.",
)
StatusOpt = typer.Option(
    [], "--status", case_sensitive=False, metavar="STATUS",
    help="Only runs with this status (repeatable): success, warning, error.",
)

_BY_S = {By.day: 86400, By.hour: 3600}


@contextmanager
def _store(path: Path | None) -> Iterator[tuple[Path, sqlite3.Connection | None]]:
    """The store to read (None when there is no file yet); failures are exit 2 with one line."""
    from makestream.store import open_read, resolve
    from makestream.store.schema import StoreError, describe

    chosen = resolve(path, False).path
    if chosen is None:
        raise UsageError("no history store: MAKESTREAM_STORE is off (name one with --store)")
    conn = open_read(chosen)
    try:
        yield chosen, conn
    except sqlite3.Error as exc:
        raise StoreError(describe(exc, chosen)) from None
    finally:
        if conn is not None:
            conn.close()


def _since_ms(since: str) -> int:
    import time

    from makestream.timeutil import parse_since

    return int(parse_since(since, now=time.time()) * 1000)


def _selection(
    scenarios: list[int] | None, team: int | None, since: str,
    statuses: tuple[Status, ...] | list[Status] = (),
) -> Any:
    from makestream.store.query import Selection

    return Selection(
        scenario_ids=tuple(scenarios or ()), team_id=team, since_ms=_since_ms(since),
        statuses=tuple(s.value for s in statuses),
    )


def _wants_table(fmt: TableFormat) -> bool:
    return fmt is TableFormat.table or (fmt is TableFormat.auto and sys.stdout.isatty())


def _when(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _seconds(ms: int | None) -> str:
    return "-" if ms is None else f"{ms / 1000:.1f}s"


def _print_table(rows: list[list[str]], right: set[int]) -> None:
    """Aligned columns; every cell cleaned of control characters first."""
    from makestream.safetext import clean

    cells = [[clean(c, max_chars=80) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(cells[0]))]
    out = sys.stdout
    for row in cells:
        parts = [c.rjust(w) if i in right else c.ljust(w)
                 for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        out.write("  ".join(parts).rstrip() + "\n")
    out.flush()


def _csv_cell(value: Any) -> Any:
    # A spreadsheet runs a cell starting with = + - @ as a formula; names come from Make.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _write_csv(header: list[str], rows: list[list[Any]]) -> None:
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([_csv_cell(v) for v in row])
    sys.stdout.flush()


def _write_json_lines(objects: Iterator[dict[str, Any]]) -> None:
    from makestream.safetext import json_dumps

    out = sys.stdout.buffer
    for obj in objects:
        out.write(json_dumps(obj) + b"\n")
    sys.stdout.flush()


# -- list ----------------------------------------------------------------------------------------


@app.command("list")
def list_(
    scenarios: list[int] = ScenariosArg,
    team: int | None = TeamOpt,
    since: str = SinceOpt,
    status: list[Status] = StatusOpt,
    last: int | None = typer.Option(
        None, "--last", "-n", min=1, metavar="N", help="Only the newest N runs."
    ),
    fmt: TableFormat = FormatOpt,
    store: Path | None = StoreReadOpt,
) -> None:
    """List stored executions, oldest first (the default command of history).

    ndjson gives the execution.finished events as the stream carried them (renumbered, with
    no cursor); csv one row per run.

    Examples:

      makestream history 123 --since 1d --status error

      makestream history --team 7 -o csv > runs.csv
    """

    async def main() -> int:
        from makestream.store import query
        from makestream.store.rows import to_event

        sel = _selection(scenarios, team, since, status)
        with _store(store) as (_path, conn):
            rows = query.executions(conn, sel, limit=last) if conn is not None else []
        if _wants_table(fmt):
            table = [["ENDED (UTC)", "SCENARIO", "NAME", "STATUS", "DURATION", "OPS", "CREDITS",
                      "EXECUTION"]]
            for r in rows:
                table.append([
                    _when(r["ended_ms"]), str(r["scenario_id"]), r["scenario_name"] or "",
                    r["status"], _seconds(r["duration_ms"]), _int(r["operations"]),
                    _credits(r["centicredits"]), r["execution_id"],
                ])
            _print_table(table, right={1, 4, 5, 6})
            say(f"{len(rows)} run{'s' * (len(rows) != 1)}")
        elif fmt is TableFormat.csv:
            import orjson

            out = []
            for r in rows:
                body = orjson.loads(r["body"])
                error = body.get("error") or {}
                out.append([
                    body.get("ended_at") or _when(r["ended_ms"]), r["scenario_id"],
                    r["scenario_name"] or "", r["execution_id"], r["status"], r["duration_ms"],
                    r["operations"], r["centicredits"], r["transfer_bytes"],
                    error.get("message") or "", body.get("url") or "",
                ])
            _write_csv(["ended_at", "scenario_id", "scenario_name", "execution_id", "status",
                        "duration_ms", "operations", "centicredits", "transfer_bytes",
                        "error_message", "url"], out)
        else:
            _write_json_lines(to_event(r["body"], n) for n, r in enumerate(rows, 1))
        return 0

    run(main)


def _int(value: int | None) -> str:
    return "-" if value is None else str(value)


def _credits(centicredits: int | None) -> str:
    return "-" if centicredits is None else f"{centicredits / 100:g}"


# -- stats ---------------------------------------------------------------------------------------


@app.command()
def stats(
    scenarios: list[int] = ScenariosArg,
    team: int | None = TeamOpt,
    since: str = SinceOpt,
    by: By | None = typer.Option(
        None, "--by", case_sensitive=False, help="One row per scenario and day or hour (UTC)."
    ),
    fmt: TableFormat = FormatOpt,
    store: Path | None = StoreReadOpt,
) -> None:
    """Per scenario: runs, success/warning/error rates, p50/p95/max duration, operations and
    credits.

    Examples:

      makestream history stats --since 30d

      makestream history stats 123 --by day -o csv
    """

    async def main() -> int:
        from makestream.store import query

        sel = _selection(scenarios, team, since)
        with _store(store) as (_path, conn):
            rows = (query.stats(conn, sel, by_s=_BY_S[by] if by else None)
                    if conn is not None else [])
        header = ["scenario_id", "scenario_name"] + (["bucket"] if by else []) + [
            "runs", "success_rate", "warning_rate", "error_rate", "p50_ms", "p95_ms", "max_ms",
            "operations", "centicredits"]

        def values(s: query.Stats) -> list[Any]:
            bucket = [_when(s.bucket_ms)[: 10 if by is By.day else 13]] if by else []
            return [s.scenario_id, s.scenario_name or "", *bucket, s.runs,
                    round(s.rate("success"), 4), round(s.rate("warning"), 4),
                    round(s.rate("error"), 4), s.p50_ms, s.p95_ms, s.max_ms, s.operations,
                    s.centicredits]

        if _wants_table(fmt):
            table = [["SCENARIO", "NAME"] + (["DAY" if by is By.day else "HOUR"] if by else [])
                     + ["RUNS", "OK", "WARN", "ERR", "P50", "P95", "MAX", "OPS", "CREDITS"]]
            for s in rows:
                bucket = [_when(s.bucket_ms)[: 10 if by is By.day else 13]] if by else []
                table.append([str(s.scenario_id), s.scenario_name or "", *bucket, str(s.runs),
                              _pct(s.rate("success")), _pct(s.rate("warning")),
                              _pct(s.rate("error")), _seconds(s.p50_ms), _seconds(s.p95_ms),
                              _seconds(s.max_ms), str(s.operations), _credits(s.centicredits)])
            first = 3 if by else 2
            _print_table(table, right=set(range(first, len(table[0]))) | {0})
        elif fmt is TableFormat.csv:
            _write_csv(header, [values(s) for s in rows])
        else:
            _write_json_lines(dict(zip(header, values(s), strict=True)) for s in rows)
        return 0

    run(main)


def _pct(rate: float) -> str:
    return f"{rate * 100:.0f}%"


# -- plot ----------------------------------------------------------------------------------------

_HOW = {Metric.duration: ("median", "duration p50 (s)"),
        Metric.errors: ("sum", "errors"),
        Metric.operations: ("sum", "operations")}


@app.command()
def plot(
    scenario: int = typer.Argument(..., min=1, metavar="SCENARIO", help="The scenario id."),
    metric: Metric = typer.Option(
        Metric.duration, "--metric", case_sensitive=False,
        help="duration: median per column; errors, operations: total per column.",
    ),
    since: str = SinceOpt,
    width: int | None = typer.Option(
        None, "--width", min=10, max=1000, metavar="N",
        help="Columns of the chart (default: fit the terminal).",
    ),
    height: int = typer.Option(10, "--height", min=2, max=100, metavar="N", help="Rows."),
    store: Path | None = StoreReadOpt,
) -> None:
    """Draw a scenario's trend in the terminal: one column per stretch of time.

    Example:

      makestream history plot 123 --metric errors --since 30d
    """

    async def main() -> int:
        import shutil
        import time

        from makestream.render.trend import bucket, columns
        from makestream.safetext import clean
        from makestream.store import query

        sel = _selection([scenario], None, since)
        with _store(store) as (_path, conn):
            points = query.series(conn, sel, metric=metric.value) if conn is not None else []
            name = query.names(conn).get(scenario) if conn is not None else None
        end_ms = int(time.time() * 1000)
        start_ms = sel.since_ms
        cols = width or max(10, min(120, shutil.get_terminal_size((80, 24)).columns - 12))
        how, what = _HOW[metric]
        values = bucket(points, start_ms=start_ms, end_ms=end_ms, count=cols, how=how)
        step_s = (end_ms - start_ms) / cols / 1000
        subject = f"'{name}' ({scenario})" if name else f"scenario {scenario}"
        out = [f"{what} of {subject}, since {_when(start_ms)[:16]} UTC, 1 column = "
               f"{_span(step_s)}, {len(points)} run{'s' * (len(points) != 1)}"]
        if not points:
            out.append("(nothing stored for this scenario in that time)")
        else:
            out += columns(values, height=height, left=_when(start_ms)[5:16],
                           right=_when(end_ms)[5:16])
        sys.stdout.write(clean("\n".join(out), multiline=True) + "\n")
        sys.stdout.flush()
        return 0

    run(main)


def _span(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.3g}{unit}"
    return f"{seconds:.3g}s"


# -- export and prune ----------------------------------------------------------------------------


class EventType(StrEnum):
    finished = "execution.finished"
    raised = "alert.raised"
    resolved = "alert.resolved"
    changed = "scenario.changed"


@app.command()
def export(
    scenarios: list[int] = ScenariosArg,
    team: int | None = TeamOpt,
    since: str = typer.Option(
        "90d", "--since", metavar="DURATION|TIME", help="From then on (default: 90d)."
    ),
    types: list[EventType] = typer.Option(
        [], "--type", metavar="TYPE",
        help="Only events of this type (repeatable): execution.finished, alert.raised, "
        "alert.resolved, scenario.changed.",
    ),
    store: Path | None = StoreReadOpt,
) -> None:
    """Print stored events as NDJSON, in the stream's schema (see `makestream schema`).

    Executions, alert transitions and scenario changes, in time order, numbered 1..n; their
    cursor is empty (there is no stream to resume).

    Example:

      makestream history export --since 30d | gzip > history.ndjson.gz
    """

    async def main() -> int:
        from makestream.store import query
        from makestream.store.rows import to_event

        sel = _selection(scenarios, team, since)
        with _store(store) as (_path, conn):
            if conn is not None:
                bodies = query.events(conn, sel, types=[t.value for t in types])
                _write_json_lines(to_event(b, n) for n, b in enumerate(bodies, 1))
        return 0

    run(main)


@app.command()
def prune(
    keep: str = typer.Option(
        "90d", "--keep", metavar="DURATION", help="Delete what is older than this."
    ),
    store: Path | None = typer.Option(
        None, "--store", metavar="PATH", dir_okay=False, show_default=False,
        help="The history store to prune. Default: $MAKESTREAM_STORE, else "
        "$XDG_DATA_HOME/makestream/history.db.",
    ),
) -> None:
    """Delete stored history older than --keep now (watch and serve-sse also do this as they
    run, a little at a time)."""

    async def main() -> int:
        import time

        from makestream.store import open_write, resolve
        from makestream.store.query import counts
        from makestream.store.query import prune as prune_rows
        from makestream.store.schema import StoreError, describe

        choice = resolve(store, False, keep)
        if choice.path is None:
            raise UsageError("no history store: MAKESTREAM_STORE is off (name one with --store)")
        if not choice.path.exists():
            say(f"no history store at {choice.path}: nothing to prune")
            return 0
        conn = open_write(choice.path)
        try:
            gone = prune_rows(conn, cutoff_ms=int((time.time() - choice.keep_s) * 1000))
            left = counts(conn)
        except sqlite3.Error as exc:
            raise StoreError(describe(exc, choice.path)) from None
        finally:
            conn.close()
        say(f"pruned {gone} row{'s' * (gone != 1)} older than {keep}; {left[0]} executions "
            f"and {left[1]} alerts and changes kept")
        return 0

    run(main)
