"""`makestream serve-sse`: serve the event stream to many HTTP clients as Server-Sent Events.

Parsing builds a `ServeOptions` (`serve_options`, testable without a server); running it lives in
`makestream.server`, imported only when the command runs. The alert-sink options are `watch`'s
(declared once, in `makestream.sinks.cli`): the one upstream watch evaluates the thresholds for
every client and hands its alerts to the sinks too.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from makestream.cli.common import (
    ApiLimitOpt,
    BudgetShareOpt,
    Connection,
    DemoOpt,
    SpeedOpt,
    command_app,
    open_client,
    run,
)
from makestream.cli.store import KeepOpt, NoStoreOpt, StoreOpt
from makestream.errors import ExitCode, UsageError
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
    from makestream.bus.connect import BusUrl
    from makestream.clock import Clock
    from makestream.engine.watch import WatchOptions
    from makestream.server import Hub, Metrics
    from makestream.server.cluster import ClusterOptions
    from makestream.sinks.base import Sink
    from makestream.sinks.options import SinkOptions
    from makestream.store import StoreChoice

app = command_app()

TOKEN_ENV = "MAKESTREAM_SSE_TOKEN"


@dataclass
class ServeOptions:
    """Everything `serve-sse` was asked for, checked."""

    scenarios: list[int]
    team: int | None
    host: str
    port: int
    token: str | None
    allow_origins: list[str] = field(default_factory=list)
    allow_hosts: list[str] = field(default_factory=list)
    max_clients: int = 10_000
    max_per_address: int = 1000
    idle_stop_s: float | None = 60.0
    heartbeat_s: float = 15.0
    send_timeout_s: float = 10.0
    queue_size: int = 1000
    ring_size: int = 10_000
    interval_s: float = 1.0
    api_limit: int | None = None
    alerts: bool = True
    sinks: SinkOptions | None = None  # --webhook…, --alertmanager…, --alert-label
    store: StoreChoice | None = None  # the history store (--store, --no-store, --keep)
    bus: BusChoice | None = None  # --bus: one replica of several


@dataclass(frozen=True)
class BusChoice:
    """`--bus` and its companions, checked (the password read, never in the URL)."""

    url: BusUrl
    password: str | None = None
    ca_file: Path | None = None
    lease_s: float = 10.0


BUS_ENV = "MAKESTREAM_BUS"


def bus_choice(url: str | None, password_file: Path | None, ca_file: Path | None,
               lease: str) -> BusChoice | None:
    """The `--bus` options as a BusChoice (None without --bus); mistakes are UsageErrors."""
    from makestream.bus.connect import parse_bus_url
    from makestream.timeutil import parse_duration

    if not url:
        if password_file is not None or ca_file is not None:
            raise UsageError("--bus-password-file and --bus-ca go with --bus")
        return None
    parsed = parse_bus_url(url)
    password = (secret_from_file(password_file, "--bus-password-file")
                if password_file is not None else None)
    if ca_file is not None:
        if not parsed.tls:
            raise UsageError("--bus-ca needs a rediss:// URL (TLS)")
        if not ca_file.is_file():
            raise UsageError(f"--bus-ca {ca_file}: not a readable file")
    lease_s = parse_duration(lease, option="--lease")
    if lease_s < 1:
        raise UsageError("--lease must be at least 1s")
    return BusChoice(parsed, password, ca_file, lease_s)


def secret_from_file(path: Path, option: str) -> str:
    """A token or password from the file `option` named, without surrounding blanks: within
    TOKEN_MAX_BYTES, a pipe will do; a missing or empty file is a one-line error."""
    from makestream.files import read_secret

    try:
        text = read_secret(path, option).strip()
    except FileNotFoundError:
        raise UsageError(f"{option} {path}: cannot read (No such file or directory)") from None
    if not text:
        raise UsageError(f"{option} {path}: the file is empty")
    return text


def read_token(path: Path | None, env: Mapping[str, str], name: str = TOKEN_ENV) -> str | None:
    """The server's bearer token, from `path` or the variable `name` (MAKESTREAM_SSE_TOKEN).

    The file is read within TOKEN_MAX_BYTES, and a pipe will do (`<(pass show sse)`); a
    directory or a device that never ends (/dev/zero) is a one-line error.
    """
    if path is not None:
        return secret_from_file(path, "--auth-token-file")
    text = env.get(name, "").strip()
    return text or None


def serve_options(
    *,
    scenarios: list[int],
    team: int | None,
    host: str,
    port: int,
    auth_token_file: Path | None,
    insecure_no_auth: bool,
    allow_origin: list[str],
    max_clients: int,
    max_per_address: int,
    idle_stop: str,
    heartbeat: str,
    send_timeout: str,
    queue: int,
    replay: int,
    interval: str,
    api_limit: int | None,
    alerts: bool,
    allow_host: list[str] | None = None,
    env: Mapping[str, str] = os.environ,
    webhook: list[str] | None = None,
    webhook_format: str | None = None,
    webhook_header: list[str] | None = None,
    webhook_secret_file: Path | None = None,
    alertmanager: list[str] | None = None,
    alertmanager_auth_file: Path | None = None,
    alertmanager_ca: Path | None = None,
    alert_label: list[str] | None = None,
) -> ServeOptions:
    """Turn command-line values into ServeOptions; every mistake is a UsageError (exit 2)."""
    from makestream.server.app import canonical_host
    from makestream.server.runner import is_loopback
    from makestream.sinks.options import sink_options
    from makestream.timeutil import parse_duration

    # First, as watch does: a bad header, secret, label or CA file is exit 2 before anything.
    sinks = sink_options(
        webhooks=webhook or [], webhook_format=webhook_format,
        webhook_headers=webhook_header or [], webhook_secret_file=webhook_secret_file,
        alertmanagers=alertmanager or [], alertmanager_auth_file=alertmanager_auth_file,
        alertmanager_ca=alertmanager_ca, alert_labels=alert_label or [],
    )

    token = read_token(auth_token_file, env)
    if token is None and not insecure_no_auth and not is_loopback(host):
        raise UsageError(
            f"--host {host} is reachable from other machines: set a bearer token with "
            f"--auth-token-file or {TOKEN_ENV}, or pass --insecure-no-auth"
        )
    for origin in allow_origin:
        if origin != "*" and not origin.startswith(("http://", "https://")):
            raise UsageError(f"--allow-origin {origin!r}: expected scheme://host[:port] or *")
    hosts: list[str] = []
    for name in allow_host or []:
        canonical = canonical_host(name)
        if canonical is None:
            raise UsageError(f"--allow-host {name!r}: expected a host name or an address, "
                             "without a port (any port is accepted)")
        hosts.append(canonical)
    idle = parse_duration(idle_stop, option="--idle-stop")
    beat = parse_duration(heartbeat, option="--heartbeat")
    send = parse_duration(send_timeout, option="--send-timeout")
    if beat <= 0 or send <= 0:
        raise UsageError("--heartbeat and --send-timeout must be more than 0s")
    return ServeOptions(
        scenarios=scenarios, team=team, host=host, port=port, token=token,
        allow_origins=[o.rstrip("/") for o in allow_origin], allow_hosts=hosts,
        max_clients=max_clients, max_per_address=max_per_address, idle_stop_s=idle or None,
        heartbeat_s=beat,
        send_timeout_s=send, queue_size=queue, ring_size=replay,
        interval_s=parse_duration(interval, option="--interval"), api_limit=api_limit,
        alerts=alerts, sinks=sinks if sinks else None,
    )


def upstream_options(opts: ServeOptions) -> WatchOptions:
    """The upstream watch: the named scenarios, or else every scenario of the team."""
    from makestream.engine.watch import WatchOptions

    options = WatchOptions(
        scenario_ids=list(opts.scenarios), team_id=None if opts.scenarios else opts.team,
        interval_s=opts.interval_s, api_limit=opts.api_limit,
    )
    if opts.alerts:
        from makestream import config
        from makestream.engine.alerts import AlertEvaluator

        # Read before any request: a broken config file ends here with exit 2.
        options.alerts = AlertEvaluator(config.load().thresholds)
    if opts.store is not None:
        from makestream.cli.store import history_source

        options.history = history_source(opts.store)
    return options


@app.command("serve-sse")
def serve_sse(
    scenarios: list[int] = typer.Argument(
        None, metavar="SCENARIO", help="Scenario ids to watch.", show_default=False
    ),
    team: int | None = typer.Option(
        None, "--team", metavar="ID",
        help="Without SCENARIO: watch every scenario of this team. With SCENARIO: clients may "
        "also ask for any scenario of this team (?scenario=ID starts watching it).",
    ),
    host: str = typer.Option(
        "127.0.0.1", "--host", metavar="HOST",
        help="Address to listen on. Anything but loopback needs a token (or --insecure-no-auth).",
    ),
    port: int = typer.Option(8787, "--port", min=0, max=65535, metavar="PORT", help="TCP port."),
    auth_token_file: Path | None = typer.Option(
        None, "--auth-token-file", metavar="FILE", dir_okay=False,
        help=f"Clients must send this bearer token (Authorization: Bearer, or ?access_token= "
        f"on /v1/events). Default: ${TOKEN_ENV}; without either, no auth.",
    ),
    insecure_no_auth: bool = typer.Option(
        False, "--insecure-no-auth",
        help="Allow a non-loopback --host without a token: anyone who reaches it reads events.",
    ),
    allow_origin: list[str] = typer.Option(
        [], "--allow-origin", metavar="ORIGIN",
        help="Let web pages of this origin read the API (CORS), e.g. https://dash.example.com. "
        "Repeatable; none by default.",
    ),
    allow_host: list[str] = typer.Option(
        [], "--allow-host", metavar="NAME",
        help="Also answer requests whose Host header names NAME (any port), e.g. a reverse "
        "proxy's name. Without a token only localhost, loopback addresses and --host (any "
        "address if it is 0.0.0.0 or ::) are answered, against DNS rebinding; with a token "
        "any name is, unless this is given. Repeatable.",
    ),
    max_clients: int = typer.Option(
        10_000, "--max-clients", min=1, metavar="N", help="Event streams open at once, in all."
    ),
    max_per_address: int = typer.Option(
        1000, "--max-per-address", min=1, metavar="N",
        help="Event streams open at once from one client address.",
    ),
    idle_stop: str = typer.Option(
        "60s", "--idle-stop", metavar="DURATION",
        help="Stop polling Make after this long without clients; the next client resumes the "
        "watch where it stopped. 0: never stop; nor does it with --webhook or --alertmanager.",
    ),
    heartbeat: str = typer.Option(
        "15s", "--heartbeat", metavar="DURATION", help="Send a ': ping' comment this often."
    ),
    send_timeout: str = typer.Option(
        "10s", "--send-timeout", metavar="DURATION",
        help="Drop a client that takes longer than this to accept one write.",
    ),
    queue: int = typer.Option(
        1000, "--client-queue", min=1, metavar="N",
        help="Events held for a slow client before it is dropped with stream.lagged.",
    ),
    replay: int = typer.Option(
        10_000, "--replay-buffer", min=1, metavar="N",
        help="Recent events kept in memory for Last-Event-ID; older positions resume from "
        "Make's logs.",
    ),
    interval: str = typer.Option(
        "1s", "--interval", metavar="DURATION",
        help="Never scan one scenario's logs more often than this.",
    ),
    alerts: bool = typer.Option(
        True, "--alerts/--no-alerts",
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
    store: Path | None = StoreOpt,
    no_store: bool = NoStoreOpt,
    keep: str = KeepOpt,
    demo: bool = DemoOpt,
    make_token_file: Path | None = typer.Option(
        None, "--make-token-file", metavar="FILE", dir_okay=False,
        help="Read Make's API token from this file instead of MAKE_API_TOKEN.",
    ),
    api_limit: int | None = ApiLimitOpt,
    budget_share: float = BudgetShareOpt,
    speed: float | None = SpeedOpt,
    bus: str | None = typer.Option(
        None, "--bus", metavar="URL", envvar=BUS_ENV,
        help="Run as one replica of several sharing this Redis (redis://HOST:PORT/DB, or "
        "rediss:// for TLS): one replica polls Make, every replica serves the same stream, a "
        "client resumes on any of them, and the request budget is shared. See the README's "
        "\"Running several replicas\".",
    ),
    bus_password_file: Path | None = typer.Option(
        None, "--bus-password-file", metavar="FILE", dir_okay=False,
        help="Redis's password (AUTH), read from this file; it never goes in the URL.",
    ),
    bus_ca: Path | None = typer.Option(
        None, "--bus-ca", metavar="FILE", dir_okay=False,
        help="With rediss://: verify Redis's certificate against this CA file instead of the "
        "system's.",
    ),
    lease: str = typer.Option(
        "10s", "--lease", metavar="DURATION",
        help="With --bus: how long the polling replica's lease lasts unrenewed; another "
        "replica takes over within it when that one dies.",
    ),
) -> None:
    """Serve events over HTTP as Server-Sent Events, to any number of clients.

    One watch polls Make and evaluates the thresholds for all clients; its alerts also go to any
    --webhook and --alertmanager. Endpoints: GET /v1/events (the stream; ?scenario=, ?type=,
    resumes from Last-Event-ID or ?cursor=), /v1/state (with the open alerts), /v1/trend (runs
    per scenario and day from the history store), /healthz, /readyz, /metrics, and / (a live
    page). SIGTERM or Ctrl-C ends every stream with
    stream.closed.

    Examples:

      makestream serve-sse --demo

      MAKESTREAM_SSE_TOKEN=secret makestream serve-sse --team 42 --host 0.0.0.0

      curl -N -H 'Authorization: Bearer secret' 'http://HOST:8787/v1/events?type=execution.*'
    """
    conn = Connection(
        demo=demo, token_file=make_token_file, api_limit=api_limit,
        budget_share=budget_share, speed=speed,
    )

    async def main() -> int:
        opts = serve_options(
            scenarios=list(scenarios or []), team=team, host=host, port=port,
            auth_token_file=auth_token_file, insecure_no_auth=insecure_no_auth,
            allow_origin=allow_origin, allow_host=allow_host, max_clients=max_clients,
            max_per_address=max_per_address, idle_stop=idle_stop, heartbeat=heartbeat,
            send_timeout=send_timeout, queue=queue, replay=replay, interval=interval,
            api_limit=api_limit, alerts=alerts, webhook=webhook,
            webhook_format=webhook_format.value, webhook_header=webhook_header,
            webhook_secret_file=webhook_secret_file, alertmanager=alertmanager,
            alertmanager_auth_file=alertmanager_auth_file, alertmanager_ca=alertmanager_ca,
            alert_label=alert_label,
        )
        from makestream.cli.store import choose

        opts.store = choose(store, no_store, keep, demo=demo)
        opts.bus = bus_choice(bus, bus_password_file, bus_ca, lease)
        if opts.bus is not None and opts.scenarios and opts.team is not None:
            raise UsageError("--bus with SCENARIO and --team: a client's ?scenario= cannot add "
                             "a scenario to the watch of another replica; name every scenario, "
                             "or give --team alone")
        if opts.bus is not None and demo:
            raise UsageError("--bus needs one Make for every replica, and each --demo has its "
                             "own: run `makestream sim serve` and point MAKE_API_URL at it")
        if not demo and not opts.scenarios and opts.team is None:
            raise UsageError("name a scenario id or give --team (or try --demo)")
        if not demo and make_token_file is None and not os.environ.get("MAKE_API_TOKEN"):
            raise UsageError("no Make API token: set MAKE_API_TOKEN or pass --make-token-file "
                             "(or try --demo)")
        return await _serve(opts, conn)

    run(main)


def page_url(host: str, port: int) -> str:
    """The live page's address as others reach it (Alertmanager's generatorURL): the bound host,
    or this machine's name when bound to every address."""
    import socket

    if host in ("", "0.0.0.0", "::"):
        host = socket.getfqdn()
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


def _sinks(opts: ServeOptions, clock: Clock, hubs: list[Hub], metrics: Metrics,
           generator_url: str) -> list[Sink]:
    """The alert sinks; a failure is a stderr line, a `stream.error` event for the clients and
    a count in makestream_sink_errors_total, and never stops the server."""
    if opts.sinks is None:
        return []
    from makestream.cli.common import say
    from makestream.events import StreamError
    from makestream.sinks.options import build_sinks

    def on_error(message: str) -> None:
        # Every sink's message starts with its kind: "webhook https://…: …", "alertmanager …".
        metrics.sink_errors.labels(message.split(" ", 1)[0]).inc()
        say(f"warning: {message}")
        watch = hubs[0].watch if hubs else None
        if watch is not None and hubs[0].running:
            watch.emit([StreamError(message=message, error_type="sink", fatal=False)])

    return build_sinks(opts.sinks, on_error=on_error, clock=clock, generator_url=generator_url)


async def _serve(opts: ServeOptions, conn: Connection) -> int:
    from contextlib import AsyncExitStack

    import anyio

    from makestream.server import AppOptions, Hub, HubOptions, Metrics, bind, create_app, serve

    watch_options = upstream_options(opts)
    redis = await _connect_bus(opts.bus) if opts.bus is not None else None
    sock = bind(opts.host, opts.port)
    try:
        hubs: list[Hub] = []
        if redis is not None:
            from makestream.bus.ledger import RedisLedger, replica_name
            from makestream.cli.common import say

            me = replica_name()
            conn.ledger = lambda account: RedisLedger(
                redis, account, me=me, speed=conn.clock().speed,
                on_problem=lambda message: say(f"warning: {message}"))
        async with open_client(conn, observer=lambda n: hubs[0].on_notice(n) if hubs else None
                               ) as (client, zone), AsyncExitStack() as stack:
            if zone is not None and not opts.scenarios and opts.team is None:
                watch_options.scenario_ids = [s.id for s in zone.world.scenarios]
            metrics = Metrics()
            sinks = _sinks(opts, client.clock, hubs, metrics,
                           page_url(opts.host, sock.getsockname()[1]))
            # Opened before the hub runs and closed after it: the alerts of its last moments
            # are still delivered (within each sink's grace).
            for sink in sinks:
                await stack.enter_async_context(sink)
            from makestream.cli.store import (
                Recorder,
                run_source,
                start_writer,
                stop_writer,
                zone_of,
            )
            from makestream.store.replay import StoreReplay

            writer = (start_writer(opts.store, client.clock.now, zone=zone_of(client.base_url))
                      if opts.store else None)
            watch_options.runs = run_source(writer)
            stack.push_async_callback(stop_writer, writer)  # after the hub: its last events
            recorder = Recorder(writer)
            stack.callback(recorder.close)  # the coverage of the hub's last watch, before that
            hub = Hub(client, HubOptions(
                watch=watch_options, queue_size=opts.queue_size, ring_size=opts.ring_size,
                idle_stop_s=opts.idle_stop_s, sinks=sinks, recorder=recorder,
                # With --bus the hub replays nothing from it (it vouches only for what its
                # own watch covered), but /v1/trend still reads it.
                stored=StoreReplay(writer.path, writer) if writer is not None else None,
                bus=_cluster_options(opts, redis, client, watch_options, me)
                if redis is not None else None,
            ), metrics)
            hubs.append(hub)
            web = create_app(hub, AppOptions(
                token=opts.token, allow_origins=opts.allow_origins, host=opts.host,
                allow_hosts=opts.allow_hosts, max_clients=opts.max_clients,
                max_per_address=opts.max_per_address, heartbeat_s=opts.heartbeat_s,
                send_timeout_s=opts.send_timeout_s,
            ), metrics)
            stopped_by: int | None = None
            async with anyio.create_task_group() as tg:
                tg.start_soon(hub.run)
                failure = await hub.started()
                if failure is None:
                    address, port = sock.getsockname()[:2]
                    shown = f"[{address}]" if ":" in address else address
                    print(f"makestream serve-sse: listening on http://{shown}:{port}/ "
                          f"(auth {'on' if opts.token else 'off'})", file=sys.stderr, flush=True)
                    stopped_by = await serve(web, hub, sock,
                                             shutdown_timeout_s=opts.send_timeout_s + 5)
                hub.close()
            if failure is not None:
                raise failure
    finally:
        sock.close()
        if redis is not None:
            await redis.aclose()
    return int(ExitCode.INTERRUPTED) if stopped_by == signal.SIGINT else 0


async def _connect_bus(choice: BusChoice) -> Any:
    """A Redis client for `--bus`, checked with a PING: exit 6 with Redis's reason if not."""
    import anyio
    from redis.exceptions import RedisError

    from makestream.bus.connect import CONNECT_TIMEOUT_S, client
    from makestream.errors import MakestreamError

    redis = client(choice.url, password=choice.password, ca_file=choice.ca_file)
    try:
        with anyio.fail_after(CONNECT_TIMEOUT_S * 2):
            await redis.ping()
    except (RedisError, OSError, TimeoutError) as exc:
        await redis.aclose()
        why = str(exc) or "no answer"
        raise MakestreamError(f"--bus {choice.url}: cannot reach Redis ({why})") from None
    return redis


def _cluster_options(opts: ServeOptions, redis: Any, client: Any,
                     watch: WatchOptions, me: str) -> ClusterOptions:
    from makestream.server.cluster import ClusterOptions, set_name

    assert opts.bus is not None
    account = f"{client.base_url} token {client.token_fingerprint}"
    from makestream.cli.common import say

    return ClusterOptions(
        redis=redis, holder=me, lease_s=opts.bus.lease_s, maxlen=opts.ring_size,
        say=lambda message: say(f"bus: {message}"),
        name=set_name(account, watch.scenario_ids, watch.team_id),
    )
