"""Turn what went wrong on the wire into makestream's typed, one-line errors.

Every message names the endpoint as `METHOD /path` (the path relative to the API base, never the
query string or host credentials) and passes through `redact`, so the token cannot leak even if
a server echoed it back.
"""

from __future__ import annotations

import json
import time
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
from pydantic import ValidationError

from makestream.errors import (
    ApiError,
    AuthError,
    CdnBlockedError,
    NotFoundError,
    PayloadError,
    RateLimitError,
    ServerError,
    TransportError,
)
from makestream.limits import JSON_MAX_DEPTH
from makestream.make.payloads import depth_over

_MAX_TEXT = 300


def redact(text: str, secret: str | None) -> str:
    """`text` with every occurrence of `secret` replaced by ****."""
    return text.replace(secret, "****") if secret else text


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 1] + "…"


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date); None if absent."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)


def _json_error_body(response: httpx.Response) -> dict[str, Any] | None:
    """Make's error schema `{detail, message, code, suberrors}`, or None when the body is not it."""
    try:
        body = json.loads(response.content)
    except (ValueError, RecursionError):
        return None
    if not isinstance(body, dict) or depth_over(body, JSON_MAX_DEPTH):
        return None
    return body


def _plain_text(response: httpx.Response) -> str | None:
    # A short plain-text body (Make's 429 is one) says more than the reason phrase; an HTML page
    # (a CDN's or a proxy's) says nothing useful on one line.
    content_type = response.headers.get("content-type", "").lower()
    try:
        text = response.text.strip()
    except (UnicodeDecodeError, LookupError):
        return None
    if not text or "html" in content_type or text.startswith("<"):
        return None
    return text


def _describe(body: dict[str, Any] | None, response: httpx.Response) -> tuple[str, str | None]:
    """(human text, detail) from Make's error body, or from the plain body or reason phrase."""
    if body is not None:
        head = body.get("detail") or body.get("message")
        parts = [str(head)] if head else []
        suberrors = body.get("suberrors")
        if isinstance(suberrors, list):
            for sub in suberrors:
                text = sub.get("message") if isinstance(sub, dict) else sub
                if text:
                    parts.append(str(text))
        parts = [part.strip().rstrip(".").strip() for part in parts if part.strip()]
        if parts:
            detail = str(head) if head else None
            return "; ".join(parts), detail
    text = _plain_text(response)
    if text:
        return text.rstrip("."), text
    return response.reason_phrase or "no reason given", None


def errors_from_response(
    response: httpx.Response,
    *,
    endpoint: str | None = None,
    secret: str | None = None,
    scope: str | None = None,
    now: float | None = None,
) -> ApiError:
    """The typed error for a non-2xx answer from Make.

    `endpoint` is `METHOD /path` (defaults to the request's); `scope` names the API scope the
    endpoint needs, for the 403 hint; `now` (clock epoch seconds) reads HTTP-date Retry-After.
    """
    status = response.status_code
    if endpoint is None:
        endpoint = f"{response.request.method} {response.request.url.path}"
    body = _json_error_body(response)
    code = body.get("code") if body is not None else None
    code = str(code) if code else None
    text, detail = _describe(body, response)
    where = f"({endpoint})"
    head = f"Make API {status}" + (f" {code}" if code else "")

    def build(cls: type[ApiError], message: str, retry_after: float | None = None) -> ApiError:
        return cls(
            redact(message, secret),
            status=status,
            code=code,
            detail=redact(detail, secret) if detail else None,
            retry_after=retry_after,
        )

    if status == 401:
        why = f" ({text})" if body is not None and detail else ""
        # A token belongs to one zone: a valid token sent to another zone is rejected too.
        host = response.request.url.host
        return build(
            AuthError,
            f"{head}: token rejected{why}: check MAKE_API_TOKEN and that the token was made "
            f"for {host} {where}",
        )
    if status == 403:
        if body is None:
            return build(
                CdnBlockedError,
                f"a CDN in front of Make refused the request (HTTP 403, not Make's JSON) {where}",
            )
        need = f"; this needs the {scope} scope" if scope else ""
        return build(
            AuthError, f"{head}: {text}: the token lacks the rights or a scope{need} {where}"
        )
    if status == 404:
        return build(NotFoundError, f"{head}: {text} {where}")
    if status == 429:
        seconds = parse_retry_after(response.headers.get("retry-after"), _now(now))
        return build(RateLimitError, f"{head}: {text} {where}", seconds)
    if status >= 500 or status == 424:
        seconds = parse_retry_after(response.headers.get("retry-after"), _now(now))
        return build(ServerError, f"{head}: {text} {where}", seconds)
    return build(ApiError, f"{head}: {text} {where}")


def _now(now: float | None) -> float:
    return time.time() if now is None else now


def error_from_transport(exc: httpx.RequestError, *, endpoint: str, host: str) -> TransportError:
    """The typed error for a request that got no answer.

    The library's own text is left out on purpose: it can quote headers or URLs.
    """
    if isinstance(exc, httpx.ConnectTimeout):
        reason = "timed out connecting"
    elif isinstance(exc, httpx.TimeoutException):
        reason = "timed out"
    elif isinstance(exc, httpx.ConnectError):
        reason = "could not connect"
    elif isinstance(exc, httpx.RemoteProtocolError):
        reason = "connection dropped"
    elif isinstance(exc, httpx.ReadError | httpx.WriteError):
        reason = "connection broken"
    elif isinstance(exc, httpx.ProxyError):
        reason = "the proxy failed"
    else:
        reason = f"request failed ({type(exc).__name__})"
    return TransportError(f"no answer from {host}: {reason} ({endpoint})")


def invalid_reason(exc: ValidationError) -> str:
    """A model's refusal in one line: the first field at fault and what is wrong with it."""
    first = exc.errors(include_url=False, include_input=False)[0]
    loc = ".".join(str(part) for part in first["loc"]) or "body"
    more = exc.error_count() - 1
    extra = f" (and {more} more)" if more > 0 else ""
    return f"{loc}: {first['msg']}{extra}"


def payload_error(exc: Exception, *, endpoint: str) -> PayloadError:
    """The typed error for a 2xx answer whose body is not JSON or not the documented shape."""
    if isinstance(exc, ValidationError):
        return PayloadError(
            f"Make answered {endpoint} with an unexpected body: {invalid_reason(exc)}"
        )
    if isinstance(exc, json.JSONDecodeError):
        return PayloadError(f"Make answered {endpoint} with a body that is not JSON")
    if isinstance(exc, ValueError):
        return PayloadError(f"Make answered {endpoint} with an unexpected body: {exc}")
    return PayloadError(
        f"Make answered {endpoint} with an unexpected body ({type(exc).__name__})"
    )
