"""Every error makestream raises, and the exit code each one maps to.

The tree::

    MakestreamError                  exit 6 unless a subclass says otherwise
    ├── UsageError                   exit 2  bad flag, argument or value
    │   └── ConfigError              exit 2  bad config or thresholds file
    ├── MonitorError                 exit 6  cannot monitor
    │   ├── ApiError                 an HTTP error answer from Make (status, code, detail)
    │   │   ├── AuthError            401, or a 403 with Make's JSON error body
    │   │   ├── CdnBlockedError      403 with a non-JSON body: a CDN in front of Make refused us
    │   │   ├── NotFoundError        404
    │   │   ├── RateLimitError       429 (transient)
    │   │   └── ServerError          5xx, 424 (transient)
    │   ├── TransportError           timeout, refused or dropped connection (transient)
    │   └── PayloadError             a 2xx answer we cannot parse (transient)
    ├── TimeoutReached               exit 5  --timeout passed first
    └── Interrupted                  exit 130 (SIGINT) or 143 (SIGTERM)

`transient` says whether retrying the same request later may succeed; the client retries those,
and the engine turns a transient error that outlives its retries into a `stream.error` event
instead of ending the stream. Messages are one line and never contain the API token; `plain`
puts the validation library's sentences (option values, config entries) in makestream's words.
"""

from __future__ import annotations

import re
from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit statuses, as documented in the README and the man page."""

    OK = 0
    EXECUTION_ERROR = 1
    USAGE = 2
    EXECUTION_WARNING = 3
    ALERT = 4
    TIMEOUT = 5
    CANNOT_MONITOR = 6
    INTERRUPTED = 130
    TERMINATED = 143


# With several outcomes the worst wins; this is the order of "worse" from DESIGN.md:
# 6 > 1 > 5 > 4 > 3 > 0. Interruptions end everything and rank above all.
_SEVERITY = {
    ExitCode.OK: 0,
    ExitCode.EXECUTION_WARNING: 1,
    ExitCode.ALERT: 2,
    ExitCode.TIMEOUT: 3,
    ExitCode.EXECUTION_ERROR: 4,
    ExitCode.CANNOT_MONITOR: 5,
    ExitCode.USAGE: 6,
    ExitCode.INTERRUPTED: 7,
    ExitCode.TERMINATED: 8,
}


def worst(*codes: ExitCode) -> ExitCode:
    """Return the code that ranks worst (see DESIGN.md); OK for no codes."""
    return max(codes, key=_SEVERITY.__getitem__, default=ExitCode.OK)


class MakestreamError(Exception):
    """Base of every error makestream raises on purpose."""

    exit_code: ExitCode = ExitCode.CANNOT_MONITOR
    transient: bool = False
    tries: int = 1  # how many times the request that failed was sent (the client sets it)

    def __init__(self, message: str) -> None:
        # Keep messages to one line: they are printed as `makestream: error: <message>`.
        super().__init__(" ".join(message.split()))

    @property
    def message(self) -> str:
        return str(self)


class UsageError(MakestreamError):
    """A flag, argument or value the user gave is wrong."""

    exit_code = ExitCode.USAGE


class ConfigError(UsageError):
    """A configuration or thresholds file is invalid."""


class MonitorError(MakestreamError):
    """makestream cannot monitor: Make refused, is unreachable, or answered nonsense."""


class ApiError(MonitorError):
    """Make answered with an HTTP error status."""

    def __init__(
        self,
        message: str,
        *,
        status: int,
        code: str | None = None,
        detail: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.detail = detail
        self.retry_after = retry_after


class AuthError(ApiError):
    """The token is missing, invalid, revoked, or lacks a scope."""


class CdnBlockedError(ApiError):
    """A 403 whose body is not Make's JSON: a CDN in front of Make blocked the request."""


class NotFoundError(ApiError):
    """The scenario, execution or other entity does not exist (or is hidden from this token)."""


class RateLimitError(ApiError):
    """The organization's per-minute request limit is spent."""

    transient = True


class ServerError(ApiError):
    """Make failed on its side (5xx, 424)."""

    transient = True


class TransportError(MonitorError):
    """The request did not get an answer: timeout, refused or dropped connection."""

    transient = True


class PayloadError(MonitorError):
    """Make answered 2xx with a body that is not the documented JSON."""

    transient = True


class TimeoutReached(MakestreamError):
    """`--timeout` passed before the watched executions ended."""

    exit_code = ExitCode.TIMEOUT


class Interrupted(MakestreamError):
    """The process received SIGINT (130) or SIGTERM (143)."""

    exit_code = ExitCode.INTERRUPTED

    def __init__(self, message: str = "interrupted", *, code: ExitCode = ExitCode.INTERRUPTED):
        super().__init__(message)
        self.exit_code = code


# --- wording ------------------------------------------------------------------------------------

# The validation library's sentences for a bad option value, in plain words.
_SENTENCES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"Input should be a valid integer.*"), "expects a whole number"),
    (re.compile(r"Input should be a valid number.*"), "expects a number"),
    (re.compile(r"Input should be a valid boolean.*"), "expects true or false"),
    (re.compile(r"Input should be greater than or equal to (\S+)"), r"must be at least \1"),
    (re.compile(r"Input should be greater than (\S+)"), r"must be more than \1"),
    (re.compile(r"Input should be less than or equal to (\S+)"), r"must be at most \1"),
    (re.compile(r"Input should be less than (\S+)"), r"must be less than \1"),
    (re.compile(r"Input should be a valid path.*"), "expects a file path"),
)
_NOT_ONE_OF = re.compile(r"'(?P<value>[^']*)' is not one of (?P<choices>.+?)\.?$")


def plain(message: str) -> str:
    """The validation library's wording of a bad value, in plain words."""
    text = message.strip()
    text = text.removeprefix("Value error, ")
    choice = _NOT_ONE_OF.match(text)
    if choice:
        choices = ", ".join(c.strip().strip("'") for c in choice["choices"].split(","))
        return f"{choice['value']!r} is not one of: {choices}"
    for pattern, words in _SENTENCES:
        if pattern.fullmatch(text):
            return pattern.sub(words, text)
    return text.replace("Input should be", "must be")
