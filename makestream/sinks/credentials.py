"""How a sink gets past a guarded Alertmanager: credentials (`--alertmanager-auth-file`) and the
CA that signed its certificate (`--alertmanager-ca`).

The auth file holds one line, either ``Bearer TOKEN`` (sent as ``Authorization: Bearer TOKEN``:
a reverse proxy's or a gateway's token) or ``user:password`` (HTTP basic auth, which
Alertmanager's own ``--web.config.file`` checks). Like every secret file it is read within
TOKEN_MAX_BYTES and may be a pipe (``<(pass show am)``); no message and no repr quotes it.

The CA file is a PEM bundle, read within CA_BUNDLE_MAX_BYTES; https Alertmanagers are then
trusted only if that bundle vouches for them (the system's CAs no longer count: an internal CA is
the usual reason to give one).
"""

from __future__ import annotations

import base64
import re
import ssl
from pathlib import Path

from makestream.errors import UsageError

AUTH_OPTION = "--alertmanager-auth-file"
CA_OPTION = "--alertmanager-ca"
# RFC 6750's token68: what a bearer token may be made of.
_TOKEN68 = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class Credentials:
    """The ``Authorization`` header value for every request; its repr never shows it."""

    def __init__(self, authorization: str, scheme: str) -> None:
        self.authorization = authorization
        self.scheme = scheme  # "bearer" or "basic", for messages

    def __repr__(self) -> str:
        return f"Credentials({self.scheme})"

    @classmethod
    def from_text(cls, text: str, where: str = AUTH_OPTION) -> Credentials:
        """``Bearer TOKEN`` or ``user:password`` (blank lines and surrounding blanks ignored)."""
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        if not lines:
            raise UsageError(f"{where}: the file is empty")
        if len(lines) > 1:
            raise UsageError(f"{where}: expected one line, 'Bearer TOKEN' or 'user:password'")
        line = lines[0]
        if _CONTROL.search(line):
            raise UsageError(f"{where}: the line holds a control character")
        scheme, _, rest = line.partition(" ")
        if scheme.lower() == "bearer":
            token = rest.strip()
            if not _TOKEN68.fullmatch(token):
                raise UsageError(f"{where}: the bearer token is empty or holds characters a "
                                 "token may not (letters, digits and -._~+/ only)")
            return cls(f"Bearer {token}", "bearer")
        user, colon, password = line.partition(":")
        if not colon:
            raise UsageError(f"{where}: expected 'Bearer TOKEN' or 'user:password'")
        if not user:
            raise UsageError(f"{where}: the user name before ':' is empty")
        # RFC 7617: user and password in UTF-8, joined by the first colon.
        encoded = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        return cls(f"Basic {encoded}", "basic")

    @classmethod
    def from_file(cls, path: Path) -> Credentials:
        from makestream.files import read_secret

        where = f"{AUTH_OPTION} {path}"
        try:
            text = read_secret(path, AUTH_OPTION)
        except FileNotFoundError:
            raise UsageError(f"{where}: no such file") from None
        return cls.from_text(text, where)


def ca_context(path: Path) -> ssl.SSLContext:
    """A TLS context that trusts the certificates of the PEM bundle at `path`, and no others."""
    from makestream.files import read_text_capped
    from makestream.limits import CA_BUNDLE_MAX_BYTES

    where = f"{CA_OPTION} {path}"
    try:
        text = read_text_capped(path, CA_BUNDLE_MAX_BYTES, CA_OPTION, streams=True)
    except FileNotFoundError:
        raise UsageError(f"{where}: no such file") from None
    if "-----BEGIN CERTIFICATE-----" not in text:
        raise UsageError(f"{where}: no PEM certificate in it (-----BEGIN CERTIFICATE-----)")
    try:
        return ssl.create_default_context(cadata=text)
    except (ssl.SSLError, ValueError):
        raise UsageError(f"{where}: not a valid PEM certificate bundle") from None
