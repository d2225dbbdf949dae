"""Where Make's API lives and how to authenticate to it: zones, base URLs and the token.

The token is the one secret makestream handles. `Token` keeps it out of every repr, str and
f-string; only `Token.header()` (for the Authorization header) and `Token.reveal()` (for
redacting messages) ever hand it out.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from makestream.errors import UsageError

# The documented public zones (make-api.md §1). A private or White Label instance, or the
# simulator, is reached through MAKE_API_URL instead.
ZONES: tuple[str, ...] = (
    "eu1.make.com",
    "eu2.make.com",
    "us1.make.com",
    "us2.make.com",
    "eu1.make.celonis.com",
    "us1.make.celonis.com",
)

TOKEN_ENV = "MAKE_API_TOKEN"
API_URL_ENV = "MAKE_API_URL"

_UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$", re.I)


# A zone host as Make names them (make-api.md §1): a region and a number under make.com, a
# host under make.celonis.com, or a private instance under make.cloud (the SDK's mock
# organization is in local.make.cloud). Zones Make reports (`organization.zone`) must match it
# to become the host of run links.
ZONE_HOST = re.compile(
    r"[a-z]{2}[0-9]{1,2}\.make\.com"
    r"|[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.make\.(?:celonis\.com|cloud)"
)
ZONE_ENV = "MAKE_ZONE"
# A DNS name: dot-separated labels of letters, digits, hyphens (and underscores, seen in
# internal names); an IPv4 address matches it too.
_HOSTNAME = re.compile(r"(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
                       r"(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?")
_ZONE_PATHS = ("", "/", "/api/v2", "/api/v2/")


def _printable(value: str, variable: str) -> str:
    """The value without surrounding spaces; a UsageError if whitespace or control characters
    remain (a newline, a tab), which would otherwise be dropped or rewritten silently."""
    text = value.strip(" ")
    if any(ch.isspace() or not ch.isprintable() for ch in text):
        raise UsageError(f"{variable} contains whitespace or control characters: {text!r}")
    return text


def check_api_url(api_url: str) -> str:
    """MAKE_API_URL, checked: http(s), a valid host, port 1-65535, no user info, query or
    fragment. The URL without a trailing slash; a one-line UsageError naming what is wrong."""
    url = _printable(api_url, API_URL_ENV).rstrip("/")
    example = "such as https://eu1.make.com/api/v2"

    def bad(why: str) -> UsageError:
        return UsageError(f"{API_URL_ENV} {why}: {url!r} (expected a URL {example})")

    try:
        parts = urlsplit(url)
        port = parts.port  # ValueError for a port out of 0-65535 or not a number
    except ValueError:
        raise bad("is not a valid URL (check the host, brackets and port)") from None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(
            f"{API_URL_ENV} must be an http(s) URL {example}, not {url!r}"
        )
    if "@" in parts.netloc:
        # httpx would send the user info as Basic auth instead of the token.
        raise bad("must not contain a user name or password")
    if parts.query or parts.fragment or url.endswith(("?", "#")):
        raise bad("must not have a query string or fragment")
    host = parts.hostname or ""
    if (port is not None and not 1 <= port <= 65535) or parts.netloc.endswith(":"):
        raise bad("has an invalid port (use 1-65535)")
    if parts.netloc.startswith("["):
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise bad("has an invalid IPv6 address") from None
    elif not _HOSTNAME.fullmatch(host):
        raise bad("has an invalid host name")
    return url


def base_url_for(zone: str | None = None, api_url: str | None = None) -> str:
    """The API base URL: `api_url` (MAKE_API_URL) as given, else the zone's `/api/v2` URL.

    Both are checked; anything odd is a UsageError (exit 2) naming the variable.
    """
    if api_url is not None and api_url.strip():
        return check_api_url(api_url)
    if zone is None or not zone.strip():
        raise UsageError(
            f"no Make zone given: set {ZONE_ENV} to your zone ({', '.join(ZONES)}; it is the "
            f"host in your browser's address bar on Make), or {API_URL_ENV} for a private instance"
        )
    text = _printable(zone, ZONE_ENV).lower()
    # Accept what people paste: "eu1.make.com", "https://eu1.make.com", ".../api/v2"; refuse
    # anything else (another path, a port, user info) rather than rewrite it to a real zone.
    rest = text.removeprefix("https://")
    host, slash, path = rest.partition("/")
    if host not in ZONES or (slash + path) not in _ZONE_PATHS:
        raise UsageError(
            f"unknown Make zone {text!r}: use one of {', '.join(ZONES)}, "
            f"or set {API_URL_ENV}=https://<host>/api/v2 for a private or White Label instance"
        )
    return f"https://{host}/api/v2"


class Token:
    """A Make API token or OAuth access token that never shows itself."""

    __slots__ = ("_secret",)

    def __init__(self, secret: str) -> None:
        secret = secret.strip()
        if not secret:
            raise UsageError(f"the Make API token is empty: check {TOKEN_ENV} or the token file")
        if not secret.isascii() or any(ch.isspace() or not ch.isprintable() for ch in secret):
            # It would end up in an HTTP header, where such characters are illegal and where
            # the HTTP library's complaint would quote the header, token included.
            raise UsageError(
                "the Make API token contains spaces, control or non-ASCII characters: "
                f"check {TOKEN_ENV} or the token file"
            )
        self._secret = secret

    def __repr__(self) -> str:
        return "Token('****')"

    __str__ = __repr__

    def header(self) -> str:
        """The Authorization value: `Token <t>` for API tokens (UUIDv4), else `Bearer <t>`."""
        scheme = "Token" if _UUID4.match(self._secret) else "Bearer"
        return f"{scheme} {self._secret}"

    def fingerprint(self) -> str:
        """A one-way digest of the token that names it without revealing it."""
        import hashlib

        return hashlib.sha256(self._secret.encode()).hexdigest()[:32]

    def reveal(self) -> str:
        """The secret itself, for redacting it from text that came from elsewhere."""
        return self._secret

    @classmethod
    def from_env_or_file(cls, token_file: Path | None, env: Mapping[str, str]) -> Token | None:
        """The token from `token_file` when one is given, else from MAKE_API_TOKEN, else None.

        An explicit file wins over the environment, as a command-line flag wins over a variable.
        """
        if token_file is not None:
            from makestream.files import read_secret

            try:
                text = read_secret(token_file, "the token file")
            except FileNotFoundError:
                raise UsageError(
                    f"cannot read the token file {token_file}: No such file or directory"
                ) from None
            if not text.strip():
                raise UsageError(f"the token file {token_file} is empty")
            return cls(text)
        value = env.get(TOKEN_ENV, "").strip()
        return cls(value) if value else None
