"""What several commands share: connecting to Make (or the demo), output formats, and the one
place where errors become exit codes."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import typer

from makestream.errors import ExitCode, Interrupted, MakestreamError, UsageError
from makestream.limits import SPEED_MAX

if TYPE_CHECKING:
    from makestream.clock import Clock
    from makestream.make.client import ApiNotice, MakeClient
    from makestream.make.ledger import SharedLedger
    from makestream.sim import SimZone

DEMO_URL = "http://demo.makestream.invalid/api/v2"
# Characters of one error or warning line on stderr. A message may quote Make's answer (and that
# an API's behind it); the stream's own `stream.error` event keeps all of it.
STDERR_LINE_MAX = 2000


class Format(StrEnum):
    auto = "auto"
    ndjson = "ndjson"
    pretty = "pretty"
    compact = "compact"


class Color(StrEnum):
    auto = "auto"
    always = "always"
    never = "never"


def command_app(**settings: Any) -> typer.Typer:
    """The Typer app of one command module (see `makestream.cli.root`), set up as the root is:
    plain help text, and no completion options of its own."""
    return typer.Typer(add_completion=False, rich_markup_mode=None, **settings)


def say(message: str) -> None:
    """Print `makestream: MESSAGE` as one line on stderr (every error, warning and note does).

    Messages can embed Make's text (an error body, a scenario name), so the line is cleaned of
    control characters (`makestream.safetext.clean`) and cut to STDERR_LINE_MAX characters.
    """
    from makestream.safetext import clean

    typer.echo(clean(f"makestream: {message}", max_chars=STDERR_LINE_MAX), err=True)


def die(message: str, code: int) -> NoReturn:
    """Print one line on stderr and exit."""
    say(f"error: {message}")
    raise typer.Exit(code)


def run(main: Callable[[], Coroutine[Any, Any, int]]) -> NoReturn:
    """Run a command's coroutine and exit with its status.

    This is the one place where errors become exit codes: every MakestreamError carries its own;
    a closed stdout ends quietly with 0; Ctrl-C is 130.
    """
    import anyio

    try:
        try:
            code = anyio.run(main)
        except BaseExceptionGroup as group:
            # Task groups wrap what their tasks raise; the first error that means something
            # to the user decides, as if it had been raised alone.
            raise _first_meaningful(group) from None
    except MakestreamError as exc:
        die(exc.message, int(exc.exit_code))
    except BrokenPipeError:
        _quiet_stdout()
        raise typer.Exit(0) from None
    except KeyboardInterrupt:
        raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
    raise typer.Exit(code)


def _first_meaningful(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The error a user should hear about from an exception group (else the group itself)."""
    leaves: list[BaseException] = []

    def flatten(exc: BaseException) -> None:
        if isinstance(exc, BaseExceptionGroup):
            for inner in exc.exceptions:
                flatten(inner)
        else:
            leaves.append(exc)

    flatten(group)
    for kind in (MakestreamError, BrokenPipeError, KeyboardInterrupt):
        for leaf in leaves:
            if isinstance(leaf, kind):
                return leaf
    return group


def _quiet_stdout() -> None:
    # Python flushes stdout again at exit; point it at /dev/null so a closed pipe stays quiet.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except OSError:
        pass


@dataclass
class Connection:
    """Where to find Make (or the demo zone) and how to pace requests."""

    demo: bool = False
    token_file: Path | None = None
    api_limit: int | None = None
    budget_share: float = 0.8
    speed: float | None = None
    seed: int = 0
    # A one-shot command gives up on an unreachable Make within a bounded time (exit 6);
    # a following watch keeps retrying (see makestream.make.client.ONE_SHOT).
    one_shot: bool = False
    # The request budget's ledger for an account ("URL token FINGERPRINT"); default: the file
    # ledger every process of this user on this machine shares (serve-sse --bus: Redis's).
    ledger: Callable[[str], SharedLedger] | None = None

    def clock(self) -> Clock:
        from makestream.clock import Clock

        if self.speed is not None:
            return Clock(self.speed)
        try:
            return Clock.from_env()
        except ValueError as exc:
            raise UsageError(str(exc)) from None


@asynccontextmanager
async def open_client(
    conn: Connection, observer: Callable[[ApiNotice], None] | None = None
) -> AsyncIterator[tuple[MakeClient, SimZone | None]]:
    """A client for Make, or for the in-process simulated zone with --demo."""
    from makestream.make.budget import Budget
    from makestream.make.client import (
        ONE_SHOT,
        ONE_SHOT_TIMEOUT_S,
        MakeClient,
        RetryPolicy,
        Token,
        base_url_for,
    )

    if observer is None:
        # A one-shot command has no stream to carry a non-fatal problem: say it on stderr
        # (the client says each once; `state` or `history` would otherwise show a run's figures
        # silently short).
        def observer(notice: ApiNotice) -> None:
            if notice.kind == "payload" and notice.error:
                say(f"warning: {notice.error}")

    clock = conn.clock()
    budget = Budget(conn.api_limit or 60, clock=clock, share=conn.budget_share)
    retry = ONE_SHOT if conn.one_shot else RetryPolicy()
    timeout = ONE_SHOT_TIMEOUT_S if conn.one_shot else 30.0
    if conn.demo:
        import httpx

        from makestream.sim import DEMO_TOKEN, SimZone, demo_world

        # The demo behaves as a real account may: runs appear in the logs once they end (the
        # conservative variant of make-api.md), on wall-clock time unless --speed says otherwise.
        # Live progress comes the honest way: runs the watch started or follows, and scheduled
        # runs announced as expected once their nextExec passes.
        zone = SimZone(demo_world(), clock=clock, seed=conn.seed)
        transport = httpx.ASGITransport(app=zone.app)
        async with MakeClient(
            DEMO_URL,
            Token(DEMO_TOKEN),
            budget=budget,
            clock=clock,
            transport=transport,
            observer=observer,
            retry=retry,
        ) as client:
            yield client, zone
        return
    env = os.environ
    base_url = base_url_for(zone=env.get("MAKE_ZONE"), api_url=env.get("MAKE_API_URL"))
    token = Token.from_env_or_file(conn.token_file, env)
    if token is None:
        raise UsageError("no API token: set MAKE_API_TOKEN or pass --token-file (or try --demo)")
    # Every process of this user that talks to the same account draws on one budget. The demo's
    # zone lives inside its process, so a demo has nobody to share with.
    from makestream.make.ledger import Ledger, ledger_dir

    if conn.ledger is not None:
        budget.share_with(conn.ledger(f"{base_url} token {token.fingerprint()}"))
    else:
        budget.share_with(
            Ledger.open(
                ledger_dir(), base_url, f"token {token.fingerprint()}", speed=clock.speed,
                on_problem=lambda message: say(f"warning: {message}"),
            )
        )
    try:
        async with MakeClient(
            base_url, token, budget=budget, clock=clock, observer=observer, retry=retry,
            timeout=timeout,
        ) as client:
            yield client, None
    finally:
        if budget.ledger is not None:
            await budget.ledger.leave()


def default_zone_missing() -> bool:
    env = os.environ
    return not env.get("MAKE_API_URL") and not env.get("MAKE_ZONE")


def interrupt_on_signals(
    stop: Callable[[Interrupted], None],
) -> Callable[[], Coroutine[Any, Any, None]]:
    """A task that turns SIGINT/SIGTERM into `stop(Interrupted)` (exit 130/143)."""

    async def watcher() -> None:
        import anyio

        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for signum in signals:
                code = ExitCode.TERMINATED if signum == signal.SIGTERM else ExitCode.INTERRUPTED
                stop(Interrupted("interrupted", code=code))
                return

    return watcher


# Options shared by commands that talk to Make.
DemoOpt = typer.Option(
    False, "--demo", help="Use the built-in simulated Make zone (no account, no network)."
)
TokenFileOpt = typer.Option(
    None,
    "--token-file",
    metavar="FILE",
    help="Read the API token from this file instead of MAKE_API_TOKEN.",
    dir_okay=False,
)
ApiLimitOpt = typer.Option(
    None,
    "--api-limit",
    min=1,
    metavar="N",
    help="The organization's requests per minute, when the token cannot read it (default 60). "
    "makestream uses at most --budget-share of it.",
)
BudgetShareOpt = typer.Option(
    0.8,
    "--budget-share",
    min=0.01,
    max=1.0,
    metavar="FRACTION",
    envvar="MAKESTREAM_BUDGET_SHARE",
    help="makestream's share of the organization's request limit, for all its processes on "
    "this machine together (they share one budget).",
)
SpeedOpt = typer.Option(
    None, "--speed", min=0.001, max=SPEED_MAX, metavar="FACTOR",
    help="Run the clock FACTOR times faster than real time, to see a simulated zone's hours in "
    "minutes (with --demo; a real account runs at its own pace). Default: real time.",
)
