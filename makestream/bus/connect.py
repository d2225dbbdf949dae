"""The `--bus` URL and a Redis client for it.

Accepted: ``redis://[USER@]HOST[:PORT][/DB]`` and ``rediss://…`` (TLS, verified against the
system's CAs or a CA file, host name checked). A password never sits in the URL, where it would
show in process listings and logs: the caller reads it from a file and passes it to `client`.
Every command has a deadline and is not retried by the library, so a Redis that stops answering
is an error the caller handles within seconds, not a hang.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from makestream.errors import UsageError

DEFAULT_PORT = 6379
COMMAND_TIMEOUT_S = 5.0
CONNECT_TIMEOUT_S = 3.0


@dataclass(frozen=True)
class BusUrl:
    """A parsed `--bus` URL (never with a password)."""

    tls: bool
    host: str
    port: int
    db: int
    username: str | None = None

    def __str__(self) -> str:
        scheme = "rediss" if self.tls else "redis"
        user = f"{self.username}@" if self.username else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{user}{host}:{self.port}/{self.db}"


def parse_bus_url(text: str) -> BusUrl:
    """`text` as a `BusUrl`, or a UsageError that says what is wrong with it."""
    try:
        parts = urlsplit(text.strip())
    except ValueError as exc:
        raise UsageError(f"--bus: {exc}") from None
    # The URL is quoted in errors: never with a password (or a query that may hold one) in it.
    shown = text.strip().split("?", 1)[0].split("#", 1)[0]
    if parts.password is not None:
        shown = shown.replace(f":{parts.password}@", ":****@", 1)
    where = f"--bus {shown!r}"
    try:
        port = parts.port
    except ValueError as exc:
        raise UsageError(f"{where}: {exc}") from None
    if parts.scheme not in ("redis", "rediss"):
        raise UsageError(f"{where}: expected redis://HOST:PORT/DB or rediss://HOST:PORT/DB")
    if not parts.hostname:
        raise UsageError(f"{where}: no host")
    if parts.password is not None:
        raise UsageError(f"{where}: a password does not belong in the URL (it would show in "
                         "process listings); give it in a file")
    if parts.query or parts.fragment:
        raise UsageError(f"{where}: takes no query or fragment")
    path = parts.path.strip("/")
    if path and not (path.isascii() and path.isdigit() and len(path) <= 5):
        raise UsageError(f"{where}: the database must be a number (/0 to /15 usually)")
    return BusUrl(
        tls=parts.scheme == "rediss",
        host=parts.hostname,
        port=port or DEFAULT_PORT,
        db=int(path or 0),
        username=parts.username or None,
    )


def client(url: BusUrl, *, password: str | None = None, ca_file: Path | None = None) -> Any:
    """A `redis.asyncio.Redis` for `url` (bytes in, bytes out), with bounded timeouts."""
    from redis.asyncio import Redis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    options: dict[str, Any] = {
        # The library would retry a timed-out command for about a minute; the callers have
        # their own plans for a Redis that does not answer.
        "retry": Retry(NoBackoff(), 0),
        "host": url.host,
        "port": url.port,
        "db": url.db,
        "username": url.username,
        "password": password,
        "socket_timeout": COMMAND_TIMEOUT_S,
        "socket_connect_timeout": CONNECT_TIMEOUT_S,
        "decode_responses": False,
    }
    if url.tls:
        options["ssl"] = True
        options["ssl_check_hostname"] = True
        if ca_file is not None:
            options["ssl_ca_certs"] = str(ca_file)
    return Redis(**options)
