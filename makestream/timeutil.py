"""Parsing of the durations and points in time that users type (`--timeout 10m`, `--since`)."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime

from makestream.errors import UsageError

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")


def parse_duration(text: str, *, option: str = "duration") -> float:
    """Seconds in `90`, `90s`, `10m`, `1h30m`, `2d`, `250ms`. A bare number is seconds."""
    raw = text.strip().lower()
    try:
        value = float(raw)
    except ValueError:
        pos, value = 0, 0.0
        for match in _PART.finditer(raw):
            if match.start() != pos:
                break
            value += float(match.group(1)) * _UNITS[match.group(2)]
            pos = match.end()
        if pos != len(raw) or not raw:
            raise UsageError(
                f"{option}: {text!r} is not a duration (try 30s, 10m, 1h30m)"
            ) from None
    if not math.isfinite(value):
        raise UsageError(f"{option}: {text!r} is not a finite duration")
    if value < 0:
        raise UsageError(f"{option}: {text!r} must not be negative")
    if value > 366 * 86400:
        raise UsageError(f"{option}: {text!r} is more than a year")
    return value


def parse_since(text: str, *, now: float, option: str = "--since") -> float:
    """Epoch seconds for `--since`: a duration ago (`1h`) or an RFC 3339 / ISO 8601 time."""
    try:
        return now - parse_duration(text, option=option)
    except UsageError:
        pass
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"{option}: {text!r} is neither a duration (1h) nor a time (2026-11-26T10:00:00Z)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if moment.timestamp() > now + 60:
        raise UsageError(f"{option}: {text!r} is in the future")
    return moment.timestamp()


def epoch_ms(text: str | None) -> int | None:
    """Milliseconds since the epoch of an RFC 3339 time (as events carry them), or None when
    absent or unreadable."""
    if not text:
        return None
    try:
        return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        return None
