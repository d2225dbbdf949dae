"""`makestream mcp --http`: the MCP server over Streamable HTTP, with serve-sse's rules.

The endpoint is ``/mcp``. Without a token only loopback may be bound, and requests must name
this server in their Host header (`makestream.server.app.known_hosts`, against DNS rebinding);
with a token every request needs ``Authorization: Bearer`` (`bearer_matches`), and the Host
check applies when names are given with --allow-host. The SDK's own rebinding check is off:
serve-sse's is the one makestream documents. Served by uvicorn with serve-sse's limits on
request heads and idle connections (`makestream.server.runner.server_config`); a request body
is read by `_BodyCap` first, at most MCP_HTTP_BODY_MAX_BYTES (413 beyond), since the SDK reads
whole bodies without a cap. Without a token, the tools with side effects refuse to run
(`Service.side_effects_refused`, set by `makestream.cli.mcp`).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field

import uvicorn
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from makestream.limits import MCP_HTTP_BODY_MAX_BYTES
from makestream.mcp.server import MakestreamMCP
from makestream.server.app import bearer_matches, json_response, known_hosts
from makestream.server.runner import server_config

PATH = "/mcp"
SHUTDOWN_S = 5.0  # open streams get this long to end at shutdown
BODY_MAX = MCP_HTTP_BODY_MAX_BYTES
# Without a token, `stream_live_execution(run=true)` and `set_alert_thresholds` say this.
NO_TOKEN_REFUSAL = (
    "this server takes HTTP requests without a token, so any local user could make this call: "
    "it does not start runs or change the config file; restart it with --auth-token-file (or "
    "MAKESTREAM_MCP_TOKEN) to allow them"
)


@dataclass
class HttpOptions:
    host: str
    port: int
    token: str | None = None
    allow_hosts: list[str] = field(default_factory=list)


class _Bearer:
    """Middleware: every request needs the bearer token; 401 with one JSON line otherwise."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            header = next((v.decode("latin-1") for k, v in scope["headers"]
                           if k == b"authorization"), "")
            if not bearer_matches(header, self.token):
                response = json_response({"error": "unauthorized"}, 401,
                                         {"WWW-Authenticate": "Bearer"})
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class _BodyCap:
    """Middleware: a request body of at most `max_bytes`, by its Content-Length and by the bytes
    that arrive (a chunked body has no length); 413 with one JSON line beyond. The body is read
    here and handed on whole, as the SDK would read it anyway."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        length = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            await self._too_large(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._too_large(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        await self.app(scope, replay, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = json_response({"error": f"request body larger than {self.max_bytes} bytes"},
                                 413, {"Connection": "close"})
        await response(scope, receive, send)


def http_app(server: MakestreamMCP, opts: HttpOptions) -> Starlette:
    """The ASGI app of `makestream mcp --http`, with its middleware; run it within
    `server.session_manager.run()`."""
    app = server.streamable_http_app(
        streamable_http_path=PATH, host=opts.host,
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )
    app.add_middleware(_BodyCap, max_bytes=BODY_MAX)  # innermost: after auth and Host
    if opts.token is not None:
        app.add_middleware(_Bearer, token=opts.token)
    if opts.token is None or opts.allow_hosts:  # added last: outermost, as in serve-sse
        check = known_hosts(opts.host, opts.allow_hosts)
        app.add_middleware(check.cls, *check.args, **check.kwargs)
    return app


def address_of(sock: socket.socket) -> str:
    address, port = sock.getsockname()[:2]
    shown = f"[{address}]" if ":" in address else address
    return f"http://{shown}:{port}{PATH}"


async def serve_http(server: MakestreamMCP, opts: HttpOptions, sock: socket.socket) -> None:
    """Serve on `sock` (bound by the caller, so that a taken port is a usage error) until a
    signal stops uvicorn."""
    app = http_app(server, opts)
    config: uvicorn.Config = server_config(app, shutdown_timeout_s=SHUTDOWN_S)
    async with server.session_manager.run():
        await uvicorn.Server(config).serve(sockets=[sock])
