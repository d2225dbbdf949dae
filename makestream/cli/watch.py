"""`makestream watch`: stream events about scenarios and their executions."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from makestream.cli.common import (
    ApiLimitOpt,
    BudgetShareOpt,
    Color,
    Connection,
    DemoOpt,
    Format,
    SpeedOpt,
    TokenFileOpt,
    command_app,
    interrupt_on_signals,
    open_client,
    run,
    say,
)
from makestream.cli.store import KeepOpt, NoStoreOpt, StoreOpt
from makestream.errors import MakestreamError, UsageError
from makestream.sinks.cli import (
    AlertLabelOpt,
    AlertmanagerAuthFileOpt,
    AlertmanagerCaOpt,
    AlertmanagerOpt,
    WebhookFormat,
    WebhookFormatOpt,
    WebhookHeaderOpt,
    WebhookOpt,
    WebhookSecretFileOpt,
)

if TYPE_CHECKING:
    from makestream.cli.store import Recorder
    from makestream.engine.watch import WatchOptions
    from makestream.sinks.options import SinkOptions

app = command_app()


class Severity(StrEnum):
    warning = "warning"
    critical = "critical"


class MonitorFailed(MakestreamError):
    """A fatal error already reported in the stream; `run()` prints it once on stderr."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.exit_code = code  # type: ignore[assignment]


def parse_data(text: str | None) -> dict[str, Any] | None:
    """`--data` as JSON text or `@file`; must be a JSON object.

    The file may be a pipe (`--data @<(jq ...)`, `@/dev/stdin`) but not a directory; it is read
    within DATA_MAX_BYTES, and the JSON may nest at most JSON_MAX_DEPTH levels.
    """
    from makestream.files import read_text_capped
    from makestream.limits import DATA_MAX_BYTES, JSON_MAX_DEPTH
    from makestream.make.payloads import depth_over

    if text is None:
        return None
    source = "--data"
    if text.startswith("@"):
        path = Path(text[1:])
        source = f"--data file {path}"
        try:
            text = read_text_capped(path, DATA_MAX_BYTES, "--data file", streams=True)
        except FileNotFoundError:
            raise UsageError(f"{source}: cannot read (No such file or directory)") from None
    elif len(text) > DATA_MAX_BYTES:
        raise UsageError(f"--data: longer than {DATA_MAX_BYTES} characters, the limit")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"{source}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None
    except (RecursionError, ValueError):
        # Nesting past the interpreter's limit, or an integer with thousands of digits.
        raise UsageError(
            f"{source}: invalid JSON: nested too deeply or a number too long"
        ) from None
    if not isinstance(value, dict):
        raise UsageError(f'{source}: must be a JSON object such as \'{{"name": "Ann"}}\'')
    if depth_over(value, JSON_MAX_DEPTH):
        raise UsageError(f"{source}: nested deeper than {JSON_MAX_DEPTH} levels, the limit")
    return value


def _cursor_target(path: Path) -> Path:
    """What --cursor-file really names: a symlink is followed, so the link survives writes."""
    return Path(os.path.realpath(path))


def read_cursor_file(path: Path) -> str | None:
    """The cursor saved in `path`, or None when the file does not exist yet.

    Only a regular file (or a symlink to one) is read, within CURSOR_FILE_MAX_BYTES; a device,
    directory or FIFO is refused before it is opened, and left alone.
    """
    from makestream.files import decode_text, read_capped
    from makestream.limits import CURSOR_FILE_MAX_BYTES

    what = "--cursor-file"
    try:
        data = read_capped(path, CURSOR_FILE_MAX_BYTES, what)
    except FileNotFoundError:
        target = _cursor_target(path)
        directory = target.parent
        if not directory.is_dir() or not os.access(directory, os.W_OK):
            raise UsageError(
                f"--cursor-file {path}: its folder does not exist or is not writable"
            ) from None
        return None
    try:
        text = decode_text(data, path, what).strip()
    except UsageError:
        raise UsageError(f"--cursor-file {path}: not a cursor (not UTF-8 text)") from None
    return text or None


def write_cursor_file(path: Path, cursor: str) -> None:
    """Replace the file atomically: a crash leaves the old cursor or the new, never half.

    A symlink is written through (its target is replaced, the link stays), the target's
    permissions are kept (a new file is 0600), and anything but a regular file is refused.
    """
    import stat

    from makestream.files import kind_of

    target = _cursor_target(path)
    try:
        mode: int | None = os.stat(target).st_mode
    except FileNotFoundError:
        mode = None
    except OSError as exc:
        raise UsageError(f"--cursor-file {path}: cannot write ({exc.strerror})") from None
    if mode is not None and not stat.S_ISREG(mode):
        raise UsageError(f"--cursor-file {path}: not a regular file ({kind_of(mode)})")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise UsageError(f"--cursor-file {path}: cannot write ({exc.strerror})") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(cursor + "\n")
        if mode is not None:
            os.chmod(tmp, stat.S_IMODE(mode))
        os.replace(tmp, target)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise UsageError(f"--cursor-file {path}: cannot write ({exc.strerror})") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def watch_options(
    *,
    scenarios: list[int],
    team: int | None,
    include: list[str],
    exclude: list[str],
    execution: str | None,
    run_: bool,
    data: str | None,
    since: str | None,
    follow: bool,
    count: int | None,
    timeout: str | None,
    exit_status: bool,
    resume: str | None,
    cursor_file: Path | None,
    interval: str,
    api_limit: int | None,
    modules: bool,
    now: float,
) -> WatchOptions:
    """Turn command-line values into WatchOptions; every mistake is a UsageError (exit 2)."""
    from makestream.engine.cursor import Cursor
    from makestream.engine.watch import WatchOptions
    from makestream.timeutil import parse_duration, parse_since

    if run_ and execution:
        raise UsageError("--run and --execution cannot be used together")
    if (run_ or execution) and len(scenarios) != 1:
        raise UsageError("--run and --execution need exactly one SCENARIO")
    if data is not None and not run_:
        raise UsageError("--data goes with --run")
    if resume and cursor_file:
        raise UsageError("--resume and --cursor-file cannot be used together")
    if (include or exclude) and team is None:
        raise UsageError("--include and --exclude filter the scenarios of --team")
    position = resume
    if cursor_file is not None:
        position = read_cursor_file(cursor_file)
    cursor = None
    if position:
        try:
            cursor = Cursor.decode(position)
        except UsageError as exc:
            where = f"--cursor-file {cursor_file}" if cursor_file else "--resume"
            raise UsageError(f"{where}: {exc.message}") from None
    return WatchOptions(
        scenario_ids=scenarios,
        team_id=team,
        include=include,
        exclude=exclude,
        execution_id=execution,
        run=run_,
        run_data=parse_data(data),
        since_ms=int(parse_since(since, now=now) * 1000) if since else None,
        follow=follow,
        count=count,
        timeout_s=parse_duration(timeout, option="--timeout") if timeout else None,
        resume=cursor,
        interval_s=parse_duration(interval, option="--interval"),
        api_limit=api_limit,
        modules=modules,
        exit_status=exit_status,
    )


@app.command()
def watch(
    scenarios: list[int] = typer.Argument(
        None, metavar="SCENARIO", help="Scenario ids to watch.", show_default=False
    ),
    team: int | None = typer.Option(
        None, "--team", metavar="ID", help="Watch every scenario of this team."
    ),
    include: list[str] = typer.Option(
        [], "--include", metavar="GLOB",
        help="With --team: only scenarios whose name matches (case-insensitive).",
    ),
    exclude: list[str] = typer.Option(
        [], "--exclude", metavar="GLOB",
        help="With --team: skip scenarios whose name matches (case-insensitive).",
    ),
    execution: str | None = typer.Option(
        None, "--execution", metavar="ID", help="Follow this execution of SCENARIO to its end."
    ),
    run_: bool = typer.Option(False, "--run", help="Run SCENARIO now and follow that run."),
    data: str | None = typer.Option(
        None, "--data", metavar="JSON|@FILE", help="Inputs for --run, as JSON or @file."
    ),
    since: str | None = typer.Option(
        None,
        "--since",
        metavar="DURATION|TIME",
        help="Also report runs that finished since then (1h, or 2026-11-26T10:00:00Z).",
    ),
    follow: bool = typer.Option(
        True,
        "--follow/--no-follow",
        help="Keep watching, or report what is new and exit (--no-follow alone: the last hour).",
    ),
    count: int | None = typer.Option(
        None, "--count", "-n", min=1, metavar="N", help="Exit after N finished executions."
    ),
    timeout: str | None = typer.Option(
        None, "--timeout", metavar="DURATION", help="Give up after this long (exit 5)."
    ),
    exit_status: bool = typer.Option(
        False,
        "--exit-status",
        help="Exit 1 if an execution failed, 3 if one ended with warnings.",
    ),
    resume: str | None = typer.Option(
        None, "--resume", metavar="CURSOR",
        help="Continue after the event with this cursor. Runs the history store holds (seen by "
        "any watch or serve-sse since) come from it; only the rest from Make's logs.",
    ),
    cursor_file: Path | None = typer.Option(
        None,
        "--cursor-file",
        metavar="PATH",
        dir_okay=False,
        help="Resume from the cursor in PATH and keep it up to date (atomic writes).",
    ),
    interval: str = typer.Option(
        "1s",
        "--interval",
        metavar="DURATION",
        help="Never scan one scenario's logs more often than this.",
    ),
    modules: bool = typer.Option(
        False, "--modules", help="After each run, report every module's result (more requests)."
    ),
    snapshot: bool = typer.Option(
        False, "--snapshot",
        help="Start with each scenario's current state (scenario.state events: flags, last run, "
        "success rate, next run); one page of logs per scenario.",
    ),
    fail_on_alert: Severity | None = typer.Option(
        None,
        "--fail-on-alert",
        case_sensitive=False,
        help="Exit 4 as soon as an alert of this severity (or worse) is raised.",
    ),
    alerts: bool = typer.Option(
        True,
        "--alerts/--no-alerts",
        help="Evaluate the thresholds of the config file (see `makestream thresholds`).",
    ),
    webhook: list[str] = WebhookOpt,
    webhook_format: WebhookFormat = WebhookFormatOpt,
    webhook_header: list[str] = WebhookHeaderOpt,
    webhook_secret_file: Path | None = WebhookSecretFileOpt,
    alertmanager: list[str] = AlertmanagerOpt,
    alertmanager_auth_file: Path | None = AlertmanagerAuthFileOpt,
    alertmanager_ca: Path | None = AlertmanagerCaOpt,
    alert_label: list[str] = AlertLabelOpt,
    types: list[str] = typer.Option(
        [], "--type", metavar="GLOB",
        help="Write only events of these types (repeatable): execution.finished, 'alert.*'. "
        "stream.opened and stream.closed are always written.",
    ),
    statuses: list[str] = typer.Option(
        [], "--status", metavar="STATUS",
        help="Write only the finished runs with this status (repeatable): success, warning, "
        "error. Other events are not affected.",
    ),
    progress: bool = typer.Option(
        True, "--progress/--no-progress", help="Write execution.progress events.",
    ),
    format_: Format = typer.Option(
        Format.auto,
        "--format",
        "-o",
        case_sensitive=False,
        help="auto: pretty on a terminal, ndjson otherwise.",
    ),
    color: Color = typer.Option(
        Color.auto,
        "--color",
        case_sensitive=False,
        help="Colour in pretty and compact output (NO_COLOR is honoured).",
    ),
    store: Path | None = StoreOpt,
    no_store: bool = NoStoreOpt,
    keep: str = KeepOpt,
    demo: bool = DemoOpt,
    token_file: Path | None = TokenFileOpt,
    api_limit: int | None = ApiLimitOpt,
    budget_share: float = BudgetShareOpt,
    speed: float | None = SpeedOpt,
) -> None:
    """Stream events about scenario executions: NDJSON on a pipe, a live view on a terminal.

    Examples:

      makestream watch 123 | jq -c 'select(.type=="execution.finished")'

      makestream watch 123 --run --exit-status --timeout 10m

      makestream watch 123 --no-follow --cursor-file state.cur
    """
    conn = Connection(
        demo=demo,
        token_file=token_file,
        api_limit=api_limit,
        budget_share=budget_share,
        speed=speed,
        one_shot=not follow,
    )

    async def main() -> int:
        from makestream.cli import store as stored
        from makestream.engine.watch import Watch
        from makestream.render import output_for, output_is_live

        store_choice = stored.choose(store, no_store, keep, demo=demo)
        clock = conn.clock()
        conn.speed = clock.speed
        options = watch_options(
            scenarios=list(scenarios or []),
            team=team,
            include=include,
            exclude=exclude,
            execution=execution,
            run_=run_,
            data=data,
            since=since,
            follow=follow,
            count=count,
            timeout=timeout,
            exit_status=exit_status,
            resume=resume,
            cursor_file=cursor_file,
            interval=interval,
            api_limit=api_limit,
            modules=modules,
            now=clock.now(),
        )
        options.snapshot = snapshot
        options.cursor_every_event = False  # NDJSON lines carry one only where it moved
        if alerts:
            from makestream import config
            from makestream.engine.alerts import AlertEvaluator

            # Read before any request: a broken config file ends here with exit 2.
            options.alerts = AlertEvaluator(config.load().thresholds)
        options.fail_on_alert = fail_on_alert.value if fail_on_alert is not None else None
        if fail_on_alert is not None and not alerts:
            raise UsageError("--fail-on-alert needs alerts; drop --no-alerts")
        from makestream.sinks.options import sink_options

        # Checked before anything is read from Make: a bad header or secret is exit 2 at once.
        sink_opts = sink_options(
            webhooks=webhook, webhook_format=webhook_format.value, webhook_headers=webhook_header,
            webhook_secret_file=webhook_secret_file, alertmanagers=alertmanager,
            alertmanager_auth_file=alertmanager_auth_file, alertmanager_ca=alertmanager_ca,
            alert_labels=alert_label,
        )
        from makestream.filters import EventFilter

        chosen = EventFilter.from_cli(types, statuses, progress=progress)
        options.history = stored.history_source(store_choice)
        holder: list[Watch] = []
        async with open_client(
            conn, observer=lambda n: holder[0].on_notice(n) if holder else None
        ) as (client, zone):
            if zone is not None and not options.scenario_ids and options.team_id is None:
                options.scenario_ids = [s.id for s in zone.world.scenarios]
            if output_is_live(format_, sys.stdout):
                # The live view draws module flows and a budget gauge: fetch blueprints and
                # report the budget more often than the NDJSON default.
                options.blueprints, options.heartbeat_s = True, 5.0
            live = output_is_live(format_, sys.stdout)
            output = output_for(format_, color, sys.stdout)
            if not chosen.everything:
                output = _Filtered(output, chosen)
            failures: list[str] = []
            sinks = _sinks(sink_opts, client.clock, holder, failures)
            notes: list[str] = []
            writer = stored.start_writer(store_choice, client.clock.now,
                                         zone=stored.zone_of(client.base_url))
            options.runs = stored.run_source(writer)
            recorder = stored.Recorder(writer, notes if live else None)
            try:
                return await _stream(
                    client, options, output, cursor_file, holder, sinks, recorder
                )
            finally:
                recorder.close()
                await stored.stop_writer(recorder.writer)
                recorder.check()
                for note in notes:
                    say(f"warning: {note}")
                if failures:
                    # One line, after the stream: the live view owns the terminal until then.
                    more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
                    say(f"warning: {failures[-1]}{more}")

    run(main)


def _sinks(
    options: SinkOptions,
    clock: Any,
    holder: list[Any],
    failures: list[str],
) -> list[Any]:
    """Alert sinks; their failures become `stream.error` events (and are kept in `failures`
    for one stderr line at the end), and never stop the stream or change its exit status."""
    if not options:
        return []
    from makestream.events import StreamError
    from makestream.sinks.options import build_sinks

    def on_error(message: str) -> None:
        failures.append(message)
        if holder:  # `emit` does nothing once the stream has ended
            holder[0].emit([StreamError(message=message, error_type="sink", fatal=False)])

    return list(build_sinks(options, on_error=on_error, clock=clock))


async def _stream(
    client: Any,
    options: WatchOptions,
    output: Any,
    cursor_file: Path | None,
    holder: list[Any],
    sinks: list[Any],
    recorder: Recorder | None = None,
) -> int:
    from contextlib import AsyncExitStack

    from makestream.engine.watch import Watch

    watch = Watch(client, options)
    holder.append(watch)
    if hasattr(output, "blueprints"):
        output.blueprints = watch.blueprints  # filled as the watch fetches them
    state = _Ending()
    # The sinks outlive the task group that runs the watch: they are opened before it and closed
    # after it, so the two never unwind out of order, and the sinks still deliver the alerts of
    # the watch's last moments.
    async with AsyncExitStack() as stack:
        for sink in sinks:
            await stack.enter_async_context(sink)
        await _follow(watch, output, cursor_file, sinks, state, recorder)
    if state.broken:
        raise BrokenPipeError  # `run()` ends quietly
    if watch.outcome.error is not None:
        raise MonitorFailed(watch.outcome.error, watch.outcome.exit_code)
    return int(watch.outcome.exit_code)


class _Filtered:
    """An output that writes only the events a filter keeps (the engine still sees all)."""

    def __init__(self, output: Any, keep: Any) -> None:
        self.output, self.chosen = output, keep

    def write(self, event: Any) -> None:
        if self.chosen.keep(event):
            self.output.write(event)

    def close(self) -> None:
        self.output.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.output, name)

    @property
    def blueprints(self) -> Any:  # the live view draws module flows from them
        return self.output.blueprints

    @blueprints.setter
    def blueprints(self, value: Any) -> None:
        self.output.blueprints = value


class _Ending:
    """What `_follow` learned about how the output ended."""

    broken = False


async def _follow(
    watch: Any, output: Any, cursor_file: Path | None, sinks: list[Any], state: _Ending,
    recorder: Recorder | None = None,
) -> None:
    """Run the watch and write its events until it ends."""
    import anyio

    last_cursor = ""
    async with anyio.create_task_group() as tg:
        tg.start_soon(watch.run)
        tg.start_soon(interrupt_on_signals(lambda exc: watch.stop(exc.message, exc.exit_code)))
        try:
            async for event in watch.events:
                for sink in sinks:
                    sink.offer(event)  # never blocks: a sink keeps its own bounded queue
                if recorder is not None:
                    ticket = recorder.offer(event, watch)
                    if cursor_file is not None and event.type == "execution.finished":
                        # The cursor file must not run ahead of the store: a run it counts as
                        # reported is one a restart never reports again, to either.
                        await recorder.stored(ticket)
                output.write(event)
                position = (event.cursor or "").partition("~")[0]
                if cursor_file is not None and position and position != last_cursor:
                    # Only after the event went out: the file never runs ahead of the output;
                    # and only when the positions changed, not for every seq.
                    write_cursor_file(cursor_file, event.cursor)
                    last_cursor = position
        except BrokenPipeError:
            state.broken = True
            watch.stop("output closed")
        finally:
            watch.events.close()
            tg.cancel_scope.cancel()
            if not state.broken:
                try:
                    output.close()  # also on errors: the live view leaves its summary
                except BrokenPipeError:
                    state.broken = True
