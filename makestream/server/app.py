"""The HTTP routes of `makestream serve-sse`, and who may use them.

Routes (GET):

``/v1/events``  the event stream (``text/event-stream``). Query: ``scenario`` and ``type``, each
                repeatable or comma-separated (a type may be a family: ``execution.*``);
                ``cursor`` to resume after an event (the ``Last-Event-ID`` header wins over it).
``/v1/state``   the `makestream state` document for the watched scenarios (``scenario``,
                ``last``), built from what the upstream watch already learned: no request to Make.
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

Caps: at most `max_clients` streams in all and `max_per_address` from one client address
(the peer address: behind a proxy, every client shares the proxy's). Over the total a client gets
503, over its address's share 429, both with ``Retry-After``. Errors are one-line JSON objects:
``{"error": "..."}``.
"""

from __future__ import annotations

import hmac
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


def parse_filter(request: Request) -> Filter:
    """The ``scenario`` and ``type`` parameters; UsageError names the bad value."""
    scenarios: set[int] = set()
    for value in _values(request, "scenario"):
        if not (value.isascii() and value.isdigit()):
            raise UsageError(f"scenario: {value!r} is not a scenario id")
        scenarios.add(int(value))
    types = set(_values(request, "type"))
    for name in sorted(types):
        if not valid_type(name):
            raise UsageError(f"type: {name!r} is not an event type (see `makestream schema`)")
    return Filter(frozenset(scenarios) if scenarios else None,
                  frozenset(types) if types else None)


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
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            given = request.query_params.get("access_token", "") if query else ""
        # Constant time, so that response times do not tell how much of a guess was right.
        return bool(given) and hmac.compare_digest(given.strip().encode(), self._token)

    def _refuse(self, status: int, message: str, reason: str,
                retry_after_s: float | None = None) -> Response:
        self.metrics.rejected.labels(reason).inc()
        return _error(status, message, retry_after_s)

    async def events(self, request: Request) -> Response:
        if not self.authorized(request, query=True):
            return self._refuse(401, "unauthorized", "unauthorized")
        try:
            filter_ = parse_filter(request)
            after = (request.headers.get("last-event-id", "").strip()
                     or request.query_params.get("cursor", "").strip() or None)
            if after is not None:
                Cursor.decode(after)
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

    async def state(self, request: Request) -> Response:
        if not self.authorized(request):
            return self._refuse(401, "unauthorized", "unauthorized")
        try:
            filter_ = parse_filter(request)
            last = request.query_params.get("last", "10")
            if not (last.isascii() and last.isdigit()) or not 1 <= int(last) <= 50:
                raise UsageError(f"last: {last!r} is not a number from 1 to 50")
            if filter_.scenarios is not None:
                await self.hub.check_scenarios(filter_.scenarios)
        except UsageError as exc:
            return _error(400, exc.message)
        except Forbidden as exc:
            return _error(403, str(exc))
        except MakestreamError as exc:
            return _error(502, exc.message)
        return json_response(self.hub.state_document(filter_.scenarios, int(last)))

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
    if options.allow_origins:  # outermost, so that it covers the event streams too
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
            Route("/healthz", routes.healthz),
            Route("/readyz", routes.readyz),
            Route("/metrics", routes.prometheus),
        ],
        middleware=middleware,
    )
    app.state.keeper = routes.keeper
    return app
