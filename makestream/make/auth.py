"""Where Make's API lives and how to authenticate to it: zones, base URLs and the token.

The token is the one secret makestream handles. `Token` keeps it out of every repr, str and
f-string; only `Token.header()` (for the Authorization header) and `Token.reveal()` (for
redacting messages) ever hand it out.
"""

from __future__ import annotations

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


def base_url_for(zone: str | None = None, api_url: str | None = None) -> str:
    """The API base URL: `api_url` (MAKE_API_URL) as given, else the zone's `/api/v2` URL."""
    if api_url is not None and api_url.strip():
        url = api_url.strip().rstrip("/")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise UsageError(
                f"{API_URL_ENV} must be an http(s) URL such as https://eu1.make.com/api/v2, "
                f"not {api_url.strip()!r}"
            )
        return url
    if zone is None or not zone.strip():
        raise UsageError(
            f"no Make zone given: use one of {', '.join(ZONES)}, "
            f"or set {API_URL_ENV} for a private instance"
        )
    text = zone.strip().lower()
    # Accept what people paste: "eu1.make.com", "https://eu1.make.com", ".../api/v2".
    host = urlsplit(text if "://" in text else f"https://{text}").netloc
    if host not in ZONES:
        raise UsageError(
            f"unknown Make zone {zone.strip()!r}: use one of {', '.join(ZONES)}, "
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

    def reveal(self) -> str:
        """The secret itself, for redacting it from text that came from elsewhere."""
        return self._secret

    @classmethod
    def from_env_or_file(cls, token_file: Path | None, env: Mapping[str, str]) -> Token | None:
        """The token from `token_file` when one is given, else from MAKE_API_TOKEN, else None.

        An explicit file wins over the environment, as a command-line flag wins over a variable.
        """
        if token_file is not None:
            try:
                text = token_file.read_text(encoding="utf-8")
            except OSError as exc:
                reason = exc.strerror or type(exc).__name__
                raise UsageError(f"cannot read the token file {token_file}: {reason}") from None
            except UnicodeDecodeError:
                raise UsageError(f"the token file {token_file} is not UTF-8 text") from None
            if not text.strip():
                raise UsageError(f"the token file {token_file} is empty")
            return cls(text)
        value = env.get(TOKEN_ENV, "").strip()
        return cls(value) if value else None
