"""`makestream sim`: the simulated Make zone, served over TCP for tests, demos and benchmarks."""

from __future__ import annotations

from pathlib import Path

import typer

from makestream.cli.common import command_app, run
from makestream.errors import UsageError
from makestream.limits import SPEED_MAX

app = command_app(
    name="sim",
    help="The simulated Make zone (for trying makestream without an account).",
    no_args_is_help=True,
)


@app.command("serve")
def serve(
    port: int = typer.Option(8900, "--port", min=0, max=65535, metavar="PORT", help="TCP port."),
    host: str = typer.Option("127.0.0.1", "--host", metavar="HOST", help="Address to bind."),
    seed: int = typer.Option(0, "--seed", metavar="N", help="Seed of the simulated world."),
    speed: float = typer.Option(
        1.0, "--speed", min=0.001, max=SPEED_MAX, metavar="FACTOR",
        help="How much faster than real time the zone's clock runs.",
    ),
    fault: list[str] = typer.Option(
        [],
        "--fault",
        metavar="KIND:VALUE",
        help="Inject faults, e.g. 429:0.1, 500:0.05, slow:0.1, drop:0.05, late-logs:5.",
    ),
    world: Path | None = typer.Option(
        None, "--world", dir_okay=False, metavar="FILE",
        help="A world file (TOML or JSON) instead of the demo.",
    ),
    api_limit: int | None = typer.Option(
        None, "--api-limit", min=1, metavar="N", help="The organization's requests per minute."
    ),
    running_in_logs: bool = typer.Option(
        False, "--running-in-logs", help="List runs in flight in /logs with status 0."
    ),
    log_timestamp: str = typer.Option(
        "start", "--log-timestamp", metavar="start|end",
        help="Stamp log entries with the run's start or end.",
    ),
    log_range: str = typer.Option(
        "ms", "--log-range", metavar="ms|s|ignored",
        help="How /logs reads its from and to parameters: milliseconds, seconds, or not at all.",
    ),
) -> None:
    """Serve the simulated Make zone at http://HOST:PORT/api/v2.

    Then: MAKE_API_URL=http://127.0.0.1:8900/api/v2 MAKE_API_TOKEN=<demo token> makestream watch
    """

    async def main() -> int:
        import sys

        from makestream.clock import Clock
        from makestream.sim import DEMO_TOKEN, Faults, SimZone, demo_world, load_world
        from makestream.sim.serve import serve_async

        try:
            faults = Faults.parse(fault)
        except ValueError as exc:
            raise UsageError(f"--fault: {exc}") from None
        spec = load_world(world) if world is not None else demo_world()
        if api_limit is not None:
            spec = spec.with_api_limit(api_limit)
        try:
            clock = Clock.from_env() if speed == 1.0 else Clock(speed)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        if log_timestamp not in ("start", "end"):
            raise UsageError("--log-timestamp: use start or end")
        if log_range not in ("ms", "s", "ignored"):
            raise UsageError("--log-range: use ms, s or ignored")
        zone = SimZone(
            spec, clock=clock, seed=seed, faults=faults, running_in_logs=running_in_logs,
            log_timestamp="start" if log_timestamp == "start" else "end",
            log_range="ms" if log_range == "ms" else "s" if log_range == "s" else "ignored",
        )
        print(
            f"makestream sim: serving http://{host}:{port}/api/v2 "
            f"(token {DEMO_TOKEN}, MAKESTREAM_CLOCK={clock.spec()})",
            file=sys.stderr,
        )
        await serve_async(zone, host, port)
        return 0

    run(main)
