"""`makestream mcp --http`: the MCP server over Streamable HTTP, with serve-sse's rules.

The endpoint is ``/mcp``. Without a token only loopback may be bound, and requests must name
this server in their Host header (`makestream.server.app.known_hosts`, against DNS rebinding);
with a token every request needs ``Authorization: Bearer`` (`bearer_matches`), and the Host
check applies when names are given with --allow-host. The SDK's own rebinding check is off:
serve-sse's is the one makestream documents. Served by uvicorn with serve-sse's limits on
request heads and idle connections (`makestream.server.runner.server_config`).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field

import uvicorn
from mcp.server.transport_security import TransportSecuritySettings
from starlette.types import ASGIApp, Receive, Scope, Send

from makestream.mcp.server import MakestreamMCP
from makestream.server.app import bearer_matches, json_response, known_hosts
from makestream.server.runner import server_config

PATH = "/mcp"
SHUTDOWN_S = 5.0  # open streams get this long to end at shutdown


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


def address_of(sock: socket.socket) -> str:
    address, port = sock.getsockname()[:2]
    shown = f"[{address}]" if ":" in address else address
    return f"http://{shown}:{port}{PATH}"


async def serve_http(server: MakestreamMCP, opts: HttpOptions, sock: socket.socket) -> None:
    """Serve on `sock` (bound by the caller, so that a taken port is a usage error) until a
    signal stops uvicorn."""
    app = server.streamable_http_app(
        streamable_http_path=PATH, host=opts.host,
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )
    if opts.token is not None:
        app.add_middleware(_Bearer, token=opts.token)
    if opts.token is None or opts.allow_hosts:  # added last: outermost, as in serve-sse
        check = known_hosts(opts.host, opts.allow_hosts)
        app.add_middleware(check.cls, *check.args, **check.kwargs)
    config: uvicorn.Config = server_config(app, shutdown_timeout_s=SHUTDOWN_S)
    async with server.session_manager.run():
        await uvicorn.Server(config).serve(sockets=[sock])
