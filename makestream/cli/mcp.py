"""`makestream mcp`: the engine as a Model Context Protocol server, for AI assistants.

Parsing builds `McpOptions` (`mcp_options`, testable without a server); the server itself lives
in `makestream.mcp`, imported only when the command runs.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from makestream.cli.common import (
    ApiLimitOpt,
    BudgetShareOpt,
    Connection,
    DemoOpt,
    SpeedOpt,
    TokenFileOpt,
    command_app,
    run,
)
from makestream.cli.store import KeepOpt, NoStoreOpt, StoreOpt
from makestream.errors import UsageError
from makestream.limits import MCP_MONITOR_IDLE_S

if TYPE_CHECKING:
    from makestream.store.paths import StoreChoice

app = command_app()

TOKEN_ENV = "MAKESTREAM_MCP_TOKEN"


@dataclass
class McpOptions:
    """Where `makestream mcp` serves, checked."""

    host: str | None = None  # None: stdio
    port: int = 0
    token: str | None = None
    allow_hosts: list[str] = field(default_factory=list)
    monitor_idle_s: float = MCP_MONITOR_IDLE_S  # 0: never stop an unread monitor
    store: StoreChoice | None = None  # the history store monitors and follows keep


def parse_address(text: str) -> tuple[str, int]:
    """`HOST:PORT` (`[::1]:8788` for IPv6) for --http."""
    host, colon, port = text.strip().rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not colon or not host or not (port.isascii() and port.isdigit()) or len(port) > 5 \
            or int(port) > 65535:
        raise UsageError(f"--http {text!r}: expected HOST:PORT, e.g. 127.0.0.1:8788")
    return host, int(port)


def mcp_options(*, http: str | None, auth_token_file: Path | None, allow_host: list[str],
                env: dict[str, str] | None = None, monitor_idle: str | None = None) -> McpOptions:
    """Turn command-line values into McpOptions; every mistake is a UsageError (exit 2)."""
    from makestream.cli.serve import read_token
    from makestream.server.app import canonical_host
    from makestream.server.runner import is_loopback
    from makestream.timeutil import parse_duration

    idle = MCP_MONITOR_IDLE_S if monitor_idle is None \
        else parse_duration(monitor_idle, option="--monitor-idle")
    environ = dict(os.environ) if env is None else env
    if http is None:
        if auth_token_file is not None or allow_host:
            raise UsageError("--auth-token-file and --allow-host go with --http")
        return McpOptions(monitor_idle_s=idle)
    host, port = parse_address(http)
    token = read_token(auth_token_file, environ, TOKEN_ENV)
    if token is None and not is_loopback(host):
        raise UsageError(f"--http {host} is reachable from other machines: set a bearer token "
                         f"with --auth-token-file or {TOKEN_ENV}")
    hosts: list[str] = []
    for name in allow_host:
        canonical = canonical_host(name)
        if canonical is None:
            raise UsageError(f"--allow-host {name!r}: expected a host name or an address, "
                             "without a port (any port is accepted)")
        hosts.append(canonical)
    return McpOptions(host=host, port=port, token=token, allow_hosts=hosts, monitor_idle_s=idle)


@app.command("mcp")
def mcp(
    http: str | None = typer.Option(
        None, "--http", metavar="HOST:PORT",
        help="Serve Streamable HTTP at http://HOST:PORT/mcp instead of stdio. Anything but "
        "loopback needs a token.",
    ),
    auth_token_file: Path | None = typer.Option(
        None, "--auth-token-file", metavar="FILE", dir_okay=False,
        help=f"With --http: clients must send this bearer token (Authorization: Bearer). "
        f"Default: ${TOKEN_ENV}; without either, no auth (loopback only), and the tools that "
        "start runs or write the config file refuse.",
    ),
    allow_host: list[str] = typer.Option(
        [], "--allow-host", metavar="NAME",
        help="With --http: also answer requests whose Host header names NAME (any port), as "
        "serve-sse does. Repeatable.",
    ),
    monitor_idle: str = typer.Option(
        "30m", "--monitor-idle", metavar="DURATION",
        help="Stop a monitor nobody has read (get_execution_state, its resource) for this "
        "long. 0: never.",
    ),
    store: Path | None = StoreOpt,
    no_store: bool = NoStoreOpt,
    keep: str | None = KeepOpt,
    demo: bool = DemoOpt,
    token_file: Path | None = TokenFileOpt,
    api_limit: int | None = ApiLimitOpt,
    budget_share: float = BudgetShareOpt,
    speed: float | None = SpeedOpt,
) -> None:
    """Serve the engine to AI assistants over the Model Context Protocol (stdio by default).

    Tools: stream_live_execution, start_monitoring, get_execution_state, stop_monitoring,
    get_scenario_state, get_module_flow, list_alerts, set_alert_thresholds; resource
    makestream://monitors/{id}/state with update notifications. One Make client and one
    request budget serve every call and monitor; an idle server makes no request to Make.

    Examples:

      makestream mcp --demo

      MAKE_API_TOKEN=... makestream mcp

      MAKESTREAM_MCP_TOKEN=secret makestream mcp --http 0.0.0.0:8788
    """
    conn = Connection(
        demo=demo, token_file=token_file, api_limit=api_limit, budget_share=budget_share,
        speed=speed,
    )

    async def main() -> int:
        from makestream import config

        # Checked before anything is served: a bad option or a missing Make token is exit 2
        # (open_client refuses to start without a token).
        from makestream.cli import store as stored

        opts = mcp_options(http=http, auth_token_file=auth_token_file, allow_host=allow_host,
                           monitor_idle=monitor_idle)
        opts.store = stored.choose(store, no_store, keep, demo=demo)
        return await _serve(opts, conn, config.default_path())

    run(main)


async def _serve(opts: McpOptions, conn: Connection, config_path: Path) -> int:
    from makestream.mcp.server import build_server
    from makestream.mcp.service import open_service

    if opts.host is None:
        async with open_service(conn, config_path=config_path,
                                monitor_idle_s=opts.monitor_idle_s, store=opts.store) as service:
            await build_server(service).run_stdio_async()
        return 0
    from makestream.mcp.http import NO_TOKEN_REFUSAL, HttpOptions, address_of, serve_http
    from makestream.server.runner import bind

    sock = bind(opts.host, opts.port)
    try:
        async with open_service(conn, config_path=config_path,
                                monitor_idle_s=opts.monitor_idle_s, store=opts.store) as service:
            if opts.token is None:
                # Loopback, but any local user may connect: no runs, no config writes.
                service.side_effects_refused = NO_TOKEN_REFUSAL
            print(f"makestream mcp: listening on {address_of(sock)} "
                  f"(auth {'on' if opts.token else 'off'})", file=sys.stderr, flush=True)
            await serve_http(build_server(service), HttpOptions(
                opts.host, opts.port, opts.token, opts.allow_hosts), sock)
    finally:
        sock.close()
    return 0
