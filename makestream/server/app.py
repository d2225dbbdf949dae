"""The HTTP routes of `makestream serve-sse`, and who may use them.

Routes (GET):

``/v1/events``  the event stream (``text/event-stream``). Query: ``scenario`` and ``type``, each
                repeatable or comma-separated (a type may be a family: ``execution.*``);
                ``cursor`` to resume after an event (the ``Last-Event-ID`` header wins over it).
``/v1/state``   the `makestream state` document for the watched scenarios (``scenario``,
                ``last``), built from what the upstream watch already learned: no request to Make;
                with ``alerts``, the alerts open now (`Hub.open_alerts`).
``/healthz``    200 while the process serves requests.
``/readyz``     200 when the upstream watch has opened, has no fatal error and Make is not
                making it pause (429); 503 otherwise. The JSON body says which.
``/metrics``    Prometheus exposition (see `metrics`).
``/``           the live page (``static/``), which reads ``/v1/events``.

Auth: with a token configured, ``/v1/*`` and ``/metrics`` need ``Authorization: Bearer <token>``.
A browser's EventSource cannot send headers, so ``/v1/events`` also takes ``?access_token=``
(the live page passes on its own ``access_token`` parameter). Tokens are compared in constant
time; a refusal is ``401 {"error":"unauthorized"}`` and nothing more. ``/``, the health checks
and the page's static files are open: they carry no data.

Hosts (DNS rebinding): without a token, a web page whose name the attacker points at 127.0.0.1
would otherwise read everything, as same-origin requests carrying ``Host: <that name>``. So a
request must name this server in its Host header: ``localhost``, a loopback address, the bound
host (any IP address when bound to all of them: a rebinding page always uses a name), or a name
in `allow_hosts` (``--allow-host``), any port; others get ``421``. With a token the check is not
needed: a rebinding page does not have the token (browsers send no credentials of their own to
this server), so it reads nothing but the open routes. `allow_hosts` still restricts the names
when given. The health checks are exempt: probes address a server by whatever name they have,
and these answer nothing a page could use.

Caps: at most `max_clients` streams in all and `max_per_address` from one client address
(the peer address: behind a proxy, every client shares the proxy's). Over the total a client gets
503, over its address's share 429, both with ``Retry-After``. ``?scenario=`` takes at most
FILTER_MAX_IDS ids, each at most MAKE_INT_MAX; a cursor is refused unread past CURSOR_MAX_CHARS
(`makestream.limits`). Errors are one-line JSON objects: ``{"error": "..."}``. No redirects are
made (a Location would carry ``?access_token=``); the request line and headers are never logged.
"""

from __future__ import annotations

import hmac
import ipaddress
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from makestream.engine.cursor import Cursor
from makestream.errors import MakestreamError, NotFoundError, UsageError
from makestream.limits import CURSOR_MAX_CHARS, FILTER_MAX_IDS, MAKE_INT_MAX
from makestream.server.hub import Filter, Forbidden, Hub, Unavailable, valid_type
from makestream.server.metrics import CONTENT_TYPE, Metrics
from makestream.server.sse import RETRY_MS, TIMED_OUT, EventStreamResponse, StreamKeeper

# The page's own files; nothing else is served from the package.
_STATIC = {"app.js": "text/javascript", "style.css": "text/css"}
_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    # The page's address may carry ?access_token=: keep it out of Referer headers.
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


@dataclass
class AppOptions:
    """Policy of the HTTP side; the hub holds everything about events."""

    token: str | None = None  # bearer token; None: no auth (loopback only, or --insecure-no-auth)
    allow_origins: list[str] = field(default_factory=list)  # CORS; none by default
    host: str | None = None  # the address the server is bound to, a name the Host may give
    allow_hosts: list[str] = field(default_factory=list)  # more names (see "Hosts" above)
    max_clients: int = 10_000
    max_per_address: int = 1000
    heartbeat_s: float = 15.0
    send_timeout_s: float = 10.0
    retry_ms: int = RETRY_MS


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json",
                    headers=headers)


def _error(status: int, message: str, retry_after_s: float | None = None) -> Response:
    headers = {"Retry-After": str(max(1, round(retry_after_s)))} if retry_after_s else None
    if status == 401:
        headers = {"WWW-Authenticate": "Bearer"}
    return json_response({"error": message}, status, headers)


def _values(request: Request, name: str) -> list[str]:
    """A repeatable, comma-separable query parameter."""
    return [v.strip() for raw in request.query_params.getlist(name) for v in raw.split(",")
            if v.strip()]


def _shown(value: str) -> str:
    """A client's value, quoted for an error message, and cut short if long."""
    return repr(value if len(value) <= 40 else value[:40] + "...")


_ID_MAX_DIGITS = 19


def parse_id(value: str, name: str) -> int:
    """A scenario id as a client writes it: ASCII digits only, 1 to MAKE_INT_MAX (never int()
    of an unbounded string: that is slow, and an error past 4300 digits)."""
    if not (value.isascii() and value.isdigit() and len(value) <= _ID_MAX_DIGITS) \
            or not 0 < int(value) <= MAKE_INT_MAX:
        raise UsageError(f"{name}: {_shown(value)} is not a scenario id")
    return int(value)


def parse_filter(request: Request) -> Filter:
    """The ``scenario`` and ``type`` parameters; UsageError names the bad value."""
    values = _values(request, "scenario")
    if len(values) > FILTER_MAX_IDS:
        raise UsageError(f"scenario: {len(values)} ids, more than the {FILTER_MAX_IDS} one "
                         "request may name")
    scenarios = {parse_id(value, "scenario") for value in values}
    types = set(_values(request, "type"))
    for name in sorted(types):
        if not valid_type(name):
            raise UsageError(f"type: {_shown(name)} is not an event type (see `makestream schema`)")
    return Filter(frozenset(scenarios) if scenarios else None,
                  frozenset(types) if types else None)


def cursor_text(request: Request) -> str | None:
    """The position to resume after: ``Last-Event-ID``, else ``?cursor=``; checked, so that a
    bad one is a UsageError (400) here, whatever is wrong with it."""
    raw = request.headers.get("last-event-id", "")
    if not raw.strip():
        raw = request.query_params.get("cursor", "")
    # Refused before anything else is done with it (even stripping it).
    if len(raw) > CURSOR_MAX_CHARS:
        raise UsageError(f"invalid cursor: longer than {CURSOR_MAX_CHARS} characters, the limit")
    text = raw.strip()
    if not text:
        return None
    try:
        Cursor.decode(text)
    except UsageError:
        raise
    except Exception:  # decode promises a UsageError; a 500 would be worse than this message
        raise UsageError("invalid cursor: it is damaged") from None
    return text


# A Host header: a name or IPv4 address, or an IPv6 address in brackets; then maybe a port.
_HOST = re.compile(r"(?P<host>[a-z0-9._~-]+|\[[0-9a-f:.%a-z]+\])(?::(?P<port>[0-9]{1,5}))?",
                   re.IGNORECASE)
_ANY_ADDRESS = frozenset({"0.0.0.0", "[::]"})
_UNCHECKED_PATHS = frozenset({"/healthz", "/readyz"})


def split_host(value: str) -> tuple[str, str | None] | None:
    """A Host header's host, canonical (lower case, no final dot, addresses in their short
    form, IPv6 in brackets), and its port; None if it is not a host."""
    match = _HOST.fullmatch(value.strip())
    if match is None:
        return None
    host, port = match["host"].lower(), match["port"]
    if host.startswith("["):
        try:
            return f"[{ipaddress.IPv6Address(host[1:-1]).compressed}]", port
        except ValueError:
            return None
    host = host.rstrip(".")
    try:
        return str(ipaddress.IPv4Address(host)), port
    except ValueError:
        pass
    return (host, port) if host else None


def canonical_host(name: str) -> str | None:
    """A host name or address as given to --allow-host or --host (IPv6 with or without
    brackets), canonical as `split_host` makes a Host header's; None if it is not one."""
    name = name.strip()
    if ":" in name and not name.startswith("["):
        name = f"[{name}]"
    parsed = split_host(name)
    return parsed[0] if parsed is not None and parsed[1] is None else None


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class _KnownHosts:
    """Middleware that answers 421 to a request whose Host header does not name this server
    (see "Hosts" in the module docstring)."""

    def __init__(self, app: ASGIApp, names: frozenset[str], any_address: bool,
                 refused: Callable[[], None]) -> None:
        self.app = app
        self.names = names
        self.any_address = any_address
        self.refused = refused

    def allows(self, header: str | None) -> bool:
        parsed = split_host(header) if header is not None else None
        if parsed is None:
            return False
        host = parsed[0]
        return host in self.names or _is_loopback(host) or (self.any_address
                                                            and _is_address(host))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] not in _UNCHECKED_PATHS:
            header = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"host"),
                          None)
            if not self.allows(header):
                self.refused()
                response = _error(421, "misdirected request: the Host header does not name "
                                  "this server (serve-sse --allow-host adds a name)")
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def known_hosts(host: str | None, allow_hosts: list[str],
                refused: Callable[[], None] = lambda: None) -> Middleware:
    """The Host check (see "Hosts" above) as Starlette middleware, for a server bound to
    `host` that also answers the names in `allow_hosts`; `makestream mcp --http` uses it too."""
    bound = canonical_host(host) if host else None
    names = {canonical_host(name) for name in [*allow_hosts, bound or ""]}
    return Middleware(
        _KnownHosts, names=frozenset(n for n in names if n and n not in _ANY_ADDRESS),
        any_address=bound in _ANY_ADDRESS, refused=refused,
    )


def bearer_matches(authorization: str, token: bytes) -> bool:
    """Whether an Authorization header carries `token` as a bearer token, compared in constant
    time, so that response times do not tell how much of a guess was right."""
    scheme, _, given = authorization.partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return False
    return hmac.compare_digest(given.strip().encode(), token)


class _Routes:
    def __init__(self, hub: Hub, options: AppOptions, metrics: Metrics) -> None:
        self.hub, self.options, self.metrics = hub, options, metrics
        self._token = options.token.encode() if options.token else None
        self.connections = 0
        self.keeper = StreamKeeper(options.heartbeat_s, options.send_timeout_s)
        self.per_address: Counter[str] = Counter()
        static = resources.files("makestream.server").joinpath("static")
        self._page = static.joinpath("index.html").read_bytes()
        self._static = {name: static.joinpath(name).read_bytes() for name in _STATIC}

    def authorized(self, request: Request, *, query: bool = False) -> bool:
        if self._token is None:
            return True
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() == "bearer" and given.strip():
            return bearer_matches(header, self._token)
        given = request.query_params.get("access_token", "") if query else ""
        return bool(given.strip()) and hmac.compare_digest(given.strip().encode(), self._token)

    def _refuse(self, status: int, message: str, reason: str,
                retry_after_s: float | None = None) -> Response:
        self.metrics.rejected.labels(reason).inc()
        return _error(status, message, retry_after_s)

    async def events(self, request: Request) -> Response:
        if not self.authorized(request, query=True):
            return self._refuse(401, "unauthorized", "unauthorized")
        try:
            filter_ = parse_filter(request)
            after = cursor_text(request)
        except UsageError as exc:
            return self._refuse(400, exc.message, "bad request")
        opts = self.options
        if request.method == "HEAD":
            return Response(media_type="text/event-stream")  # the headers, without a stream
        address = request.client.host if request.client else "unknown"
        if self.connections >= opts.max_clients:
            return self._refuse(503, "too many clients", "max clients", 5)
        if self.per_address[address] >= opts.max_per_address:
            return self._refuse(429, "too many connections from this address",
                                "max per address", 5)
        # Counted before the first await, so that a burst of connections cannot overshoot.
        self.connections += 1
        self.per_address[address] += 1
        release = self._releaser(address)
        try:
            if filter_.scenarios is not None:
                await self.hub.check_scenarios(filter_.scenarios)
            subscription = await self.hub.subscribe(filter_, after)
        except Forbidden as exc:
            release(None)
            return self._refuse(403, str(exc), "forbidden")
        except Unavailable as exc:
            release(None)
            return self._refuse(503, str(exc), "unavailable", exc.retry_after_s or 5)
        except NotFoundError as exc:
            release(None)
            return self._refuse(404, exc.message, "not found")
        except MakestreamError as exc:
            release(None)
            return self._refuse(502, exc.message, "upstream error", 5)
        except BaseException:
            release(None)
            raise

        def closed(outcome: str) -> None:
            subscription.close()
            # A lagging client is often timed out too while its last frames wait: count it once.
            release(None if subscription.lagged else outcome)

        return EventStreamResponse(subscription, keeper=self.keeper, retry_ms=opts.retry_ms,
                                   on_close=closed)

    def _releaser(self, address: str) -> Callable[[str | None], None]:
        done = False

        def release(outcome: str | None) -> None:
            nonlocal done
            if done:
                return
            done = True
            self.connections -= 1
            self.per_address[address] -= 1
            if self.per_address[address] <= 0:
                del self.per_address[address]
            if outcome == TIMED_OUT:
                self.metrics.lagged.inc()  # frozen: dropped for falling behind as well

        return release

    async def _scenarios_and(self, request: Request, name: str, default: int,
                             high: int) -> tuple[Filter, int] | Response:
        """The `?scenario=` filter (checked against what may be watched) and the small number
        `name` (1 to `high`) of a read-only endpoint, or the refusal to answer with."""
        if not self.authorized(request):
            return self._refuse(401, "unauthorized", "unauthorized")
        try:
            filter_ = parse_filter(request)
            text = request.query_params.get(name, str(default))
            if not (text.isascii() and text.isdigit() and len(text) <= 2) \
                    or not 1 <= int(text) <= high:
                raise UsageError(f"{name}: {_shown(text)} is not a number from 1 to {high}")
            if filter_.scenarios is not None:
                await self.hub.check_scenarios(filter_.scenarios)
        except UsageError as exc:
            return _error(400, exc.message)
        except Forbidden as exc:
            return _error(403, str(exc))
        except MakestreamError as exc:
            return _error(502, exc.message)
        return filter_, int(text)

    async def state(self, request: Request) -> Response:
        asked = await self._scenarios_and(request, "last", 10, 50)
        if isinstance(asked, Response):
            return asked
        filter_, last = asked
        return json_response(self.hub.state_document(filter_.scenarios, last))

    async def trend(self, request: Request) -> Response:
        """Runs per scenario and day from the history store, for the live page's trend."""
        asked = await self._scenarios_and(request, "days", 7, 90)
        if isinstance(asked, Response):
            return asked
        filter_, days = asked
        document = await self.hub.trend(filter_.scenarios, days)
        if document is None:
            return _error(404, "no history store (serve-sse runs with --no-store)")
        return json_response(document)

    async def healthz(self, request: Request) -> Response:
        return json_response({"status": "ok"})

    async def readyz(self, request: Request) -> Response:
        ready, body = self.hub.readiness()
        return json_response(body, 200 if ready else 503)

    async def prometheus(self, request: Request) -> Response:
        if not self.authorized(request):
            return self._refuse(401, "unauthorized", "unauthorized")
        return Response(self.metrics.exposition(), media_type=CONTENT_TYPE)

    async def page(self, request: Request) -> Response:
        return Response(self._page, media_type="text/html", headers=_PAGE_HEADERS)

    async def static(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in self._static:
            return _error(404, "not found")
        return Response(self._static[name], media_type=_STATIC[name], headers=_PAGE_HEADERS)


class _EventStreams:
    """Middleware that answers ``GET /v1/events`` itself, ahead of Starlette's routing.

    An event stream lives for hours, and every layer a request passes through (exception
    handling, the router, the route's wrappers) keeps its frames and closures alive as long,
    for every client: at ten thousand clients that is a good part of the server's memory.
    """

    def __init__(self, app: ASGIApp, handler: _Routes) -> None:
        self.app = app
        self.handler = handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/v1/events" \
                and scope["method"] in ("GET", "HEAD"):
            response = await self.handler.events(Request(scope, receive))
            await response(scope, receive, send)
        else:
            await self.app(scope, receive, send)


def create_app(hub: Hub, options: AppOptions, metrics: Metrics) -> Starlette:
    """The Starlette app; `hub.run()` and the app's `StreamKeeper` (``app.state.keeper``) must
    run alongside it (`makestream.server.runner.serve` runs the keeper)."""
    routes = _Routes(hub, options, metrics)
    middleware = []
    if options.token is None or options.allow_hosts:  # outermost: before CORS, before all
        middleware.append(known_hosts(
            options.host, options.allow_hosts,
            refused=lambda: metrics.rejected.labels("unknown host").inc(),
        ))
    if options.allow_origins:  # ahead of the event streams, so that it covers them too
        middleware.append(Middleware(
            CORSMiddleware, allow_origins=options.allow_origins, allow_methods=["GET"],
            allow_headers=["Authorization", "Last-Event-ID", "Cache-Control"], max_age=600,
        ))
    middleware.append(Middleware(_EventStreams, handler=routes))
    app = Starlette(
        routes=[
            Route("/", routes.page),
            Route("/static/{name}", routes.static),
            Route("/v1/events", routes.events),
            Route("/v1/state", routes.state),
            Route("/v1/trend", routes.trend),
            Route("/healthz", routes.healthz),
            Route("/readyz", routes.readyz),
            Route("/metrics", routes.prometheus),
        ],
        middleware=middleware,
    )
    # `/v1/events/?access_token=...` would be redirected with the token in Location.
    app.router.redirect_slashes = False
    app.state.keeper = routes.keeper
    return app
