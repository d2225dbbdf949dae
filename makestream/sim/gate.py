"""What every request passes before it reaches a route: counting, faults, auth, the rate limit.

In order:

1. the request is counted (`request_count`, `requests_per_minute`), whatever happens next;
2. one seeded draw decides an injected fault. CDN 403s, 5xx, injected 429s and dropped connections
   answer here, as the infrastructure in front of Make would, without touching auth or the limit;
   `slow` waits and carries on; `malformed` carries on and cuts the JSON body short at the end;
3. `Authorization: Token <uuid>` or `Bearer <token>` must name a live token, else 401 IM102;
4. every request except `POST /scenarios/{id}/run` (exempt, per make-api.md §2.7) spends one
   request of the organization's per-minute limit (`apiLimit`), counted in fixed windows aligned
   to clock minutes (Make does not say which kind of window it uses); past it, a plain-text 429
   as Make sends it, without Retry-After unless the zone was made with `limit_retry_after=True`;
5. the zone is advanced to now, so the route sees everything that has happened.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from makestream.sim.faults import DroppedConnection
from makestream.sim.payloads import error_body

if TYPE_CHECKING:
    from makestream.sim.zone import SimZone

LIMIT_MESSAGE = "Requests limit for organization exceeded, please try again later."
_RUN_PATH = re.compile(r"^/api/v2/scenarios/\d+/run$")
_SERVER_ERRORS = {
    "500": ("Internal Server Error", "An unexpected error occurred. Please try again later."),
    "502": ("Bad Gateway", "The upstream service did not answer properly."),
    "503": ("Service Unavailable", "The service is temporarily unavailable."),
}
_CDN_PAGE = (
    "<!DOCTYPE html>\n<html><head><title>Access denied | {zone} used Cloudflare to restrict "
    "access</title></head>\n<body><div id=\"cf-wrapper\"><h1>Access denied</h1>\n"
    "<p>error code: 1010</p>\n<p>The owner of this website ({zone}) has banned your access "
    "based on your browser's signature.</p></div></body></html>\n"
)


class ZoneGate:
    """Pure ASGI middleware in front of the zone's routes (see the module docstring)."""

    def __init__(self, app: ASGIApp, zone: SimZone) -> None:
        self.app = app
        self.zone = zone

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        zone = self.zone
        zone.count_request(zone.clock.now_ms())
        faults = zone.faults
        # Draw for every request, faulted or not, so a run's fault pattern depends only on the
        # seed and the order of requests, not on when faults were switched on.
        kind = faults.pick(zone.fault_rng.random())
        early = self._injected(kind)
        if early is not None:
            await early(scope, receive, send)
            return
        if kind == "drop":
            await _drop(send)
        if kind == "slow":
            await zone.clock.sleep(faults.slow_seconds)

        now = zone.clock.now_ms()
        token = _token(scope)
        if token is None or not zone.token_valid(token, now):
            await JSONResponse(
                error_body("Invalid credentials.", "Unauthorized", "IM102"), status_code=401
            )(scope, receive, send)
            return
        exempt = scope["method"] == "POST" and _RUN_PATH.match(scope["path"]) is not None
        if not exempt and not zone.take_limit(now):
            headers = {}
            if zone.limit_retry_after:
                headers["Retry-After"] = str(max(1, 60 - (now // 1000) % 60))
            await PlainTextResponse(LIMIT_MESSAGE, status_code=429, headers=headers)(
                scope, receive, send)
            return
        zone.advance()
        await self.app(scope, receive, _truncating(send) if kind == "malformed" else send)

    def _injected(self, kind: str | None) -> Response | None:
        if kind == "429":
            return PlainTextResponse(LIMIT_MESSAGE, status_code=429)
        if kind == "429-retry-after":
            return PlainTextResponse(LIMIT_MESSAGE, status_code=429,
                                     headers={"Retry-After": str(self.zone.faults.retry_after)})
        if kind in _SERVER_ERRORS:
            message, detail = _SERVER_ERRORS[kind]
            return JSONResponse(error_body(detail, message, f"SC{kind}"), status_code=int(kind))
        if kind == "cdn403":
            zone_host = self.zone.world.organization.zone
            return HTMLResponse(_CDN_PAGE.format(zone=zone_host), status_code=403)
        return None


def _token(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            header: str = value.decode("latin-1")
            scheme, _, token = header.strip().partition(" ")
            if scheme.lower() in ("token", "bearer") and token.strip():
                return token.strip()
            return None
    return None


async def _drop(send: Send) -> None:
    """Start a response, send part of it, then break the connection."""
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"512")]})
    await send({"type": "http.response.body", "body": b'{"scenarioLogs":[{"imtId":"',
                "more_body": True})
    raise DroppedConnection()


def _truncating(send: Send) -> Send:
    """Wrap `send` so a 200 JSON answer goes out cut in half (with a matching length)."""
    held: Message | None = None

    async def wrapped(message: Message) -> None:
        nonlocal held
        if message["type"] == "http.response.start":
            held = message
            return
        if message["type"] == "http.response.body" and held is not None:
            start, held = held, None
            headers = list(start.get("headers", []))
            body: bytes = message.get("body", b"")
            is_json = any(k == b"content-type" and v.startswith(b"application/json")
                          for k, v in headers)
            if start["status"] == 200 and is_json and not message.get("more_body"):
                body = body[: max(1, len(body) // 2)]
                headers = [(k, v) for k, v in headers if k != b"content-length"]
                headers.append((b"content-length", str(len(body)).encode()))
                start = {**start, "headers": headers}
                message = {**message, "body": body}
            await send(start)
        await send(message)

    return wrapped
