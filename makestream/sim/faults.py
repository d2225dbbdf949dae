"""Fault injection for the simulated zone: the ways Make (and what sits in front of it) misbehaves.

Per-request faults are drawn independently for every request from the zone's seeded RNG, with one
uniform draw per request, so at most one of them hits a request and their rates add up:

    429               429, plain-text body, no Retry-After (as a spent organization limit looks)
    429-retry-after   429 with `Retry-After: N` (N = `retry_after`, default 5)
    500 / 502 / 503   5xx with Make's JSON error body;  5xx spreads its rate over the three
    slow              the answer waits `slow_seconds` of clock time (default 5) before it is made
    drop              the connection breaks before a complete response (a transport error)
    malformed         200 with the JSON body cut short
    cdn403            403 with a Cloudflare HTML page ("error code: 1010")

Time faults:

    late-logs:S       a run's log entry appears S clock seconds after the run ended
    revoke-after:S    every token stops working S clock seconds after the zone started

CLI spelling: `KIND:VALUE`, plus an optional `:SECONDS` for `slow` and `429-retry-after`
(`slow:0.1:8`). `Faults` is mutable: tests switch faults on and off while a zone runs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import httpx

# Per-request fault kinds, in the order a uniform draw is matched against their rates.
REQUEST_KINDS = ("429", "429-retry-after", "500", "502", "503", "slow", "drop", "malformed",
                 "cdn403")
# Kinds a client should retry; `Faults.chaos` spreads its rate over these.
TRANSIENT_KINDS = ("429", "429-retry-after", "500", "502", "503", "slow", "drop", "malformed")

_ATTR = {kind: "rate_" + kind.replace("-", "_") for kind in REQUEST_KINDS}


class DroppedConnection(httpx.RemoteProtocolError):
    """Raised inside the app to break a connection.

    In process, httpx.ASGITransport re-raises it, so the client sees an httpx.TransportError. Over
    uvicorn the response has already started, so uvicorn closes the socket mid-body and the client
    sees a RemoteProtocolError of its own.
    """

    def __init__(self) -> None:
        super().__init__("simulated dropped connection: server closed the connection mid-response")


@dataclass
class Faults:
    """Which faults the zone injects, and how often. All zero: a well-behaved Make."""

    rate_429: float = 0.0
    rate_429_retry_after: float = 0.0
    retry_after: int = 5
    rate_500: float = 0.0
    rate_502: float = 0.0
    rate_503: float = 0.0
    rate_slow: float = 0.0
    slow_seconds: float = 5.0
    rate_drop: float = 0.0
    rate_malformed: float = 0.0
    rate_cdn403: float = 0.0
    late_logs: float = 0.0
    revoke_after: float | None = None

    @classmethod
    def parse(cls, specs: Iterable[str]) -> Faults:
        """Build from CLI specs such as `["500:0.05", "slow:0.1:8", "late-logs:5"]`."""
        faults = cls()
        for spec in specs:
            faults._apply(spec)
        faults.check()
        return faults

    @classmethod
    def chaos(cls, rate: float) -> Faults:
        """`rate` of all requests faulted, spread evenly over the transient kinds."""
        if not 0 <= rate <= 1:
            raise ValueError(f"chaos rate {rate} must be between 0 and 1")
        faults = cls(slow_seconds=2.0, retry_after=2)
        for kind in TRANSIENT_KINDS:
            setattr(faults, _ATTR[kind], rate / len(TRANSIENT_KINDS))
        return faults

    def rate(self, kind: str) -> float:
        """The probability of one per-request fault kind."""
        value: float = getattr(self, _ATTR[kind])
        return value

    def total_rate(self) -> float:
        return sum(self.rate(kind) for kind in REQUEST_KINDS)

    def pick(self, draw: float) -> str | None:
        """The fault kind a uniform draw in [0, 1) selects, or None for a clean request."""
        edge = 0.0
        for kind in REQUEST_KINDS:
            edge += self.rate(kind)
            if draw < edge:
                return kind
        return None

    def check(self) -> None:
        """ValueError unless every value is in range."""
        for kind in REQUEST_KINDS:
            if not 0 <= self.rate(kind) <= 1:
                raise ValueError(f"fault {kind}: probability {self.rate(kind)} is not in [0, 1]")
        total = self.total_rate()
        if total > 1 + 1e-9:
            raise ValueError(f"fault probabilities add up to {total:g}; they must not exceed 1")
        if self.late_logs < 0 or self.slow_seconds < 0 or self.retry_after < 0:
            raise ValueError("fault durations must not be negative")
        if self.revoke_after is not None and self.revoke_after < 0:
            raise ValueError("revoke-after must not be negative")

    def describe(self) -> list[str]:
        """The CLI specs that rebuild these faults (only the ones switched on)."""
        out: list[str] = []
        for kind in REQUEST_KINDS:
            if self.rate(kind):
                extra = {"slow": f":{self.slow_seconds:g}",
                         "429-retry-after": f":{self.retry_after}"}.get(kind, "")
                out.append(f"{kind}:{self.rate(kind):g}{extra}")
        if self.late_logs:
            out.append(f"late-logs:{self.late_logs:g}")
        if self.revoke_after is not None:
            out.append(f"revoke-after:{self.revoke_after:g}")
        return out

    def _apply(self, spec: str) -> None:
        kind, _, rest = spec.strip().partition(":")
        kind = kind.lower()
        known = [*REQUEST_KINDS, "5xx", "late-logs", "revoke-after"]
        if kind not in known:
            raise ValueError(f"fault {spec!r}: unknown kind {kind!r}; known: {', '.join(known)}")
        parts = rest.split(":") if rest else []
        takes_extra = kind in ("slow", "429-retry-after")
        if not parts or len(parts) > (2 if takes_extra else 1):
            example = {"late-logs": "late-logs:5", "revoke-after": "revoke-after:120",
                       "slow": "slow:0.1 or slow:0.1:8"}.get(kind, f"{kind}:0.1")
            raise ValueError(f"fault {spec!r}: expected e.g. {example}")
        try:
            values = [float(part) for part in parts]
        except ValueError:
            raise ValueError(f"fault {spec!r}: {rest!r} is not a number") from None
        value = values[0]
        if kind == "late-logs":
            self.late_logs = value
        elif kind == "revoke-after":
            self.revoke_after = value
        else:
            if not 0 <= value <= 1:
                raise ValueError(f"fault {spec!r}: probability must be between 0 and 1")
            if kind == "5xx":
                for code in ("500", "502", "503"):
                    setattr(self, _ATTR[code], value / 3)
            else:
                setattr(self, _ATTR[kind], value)
            if len(values) == 2:
                if kind == "slow":
                    self.slow_seconds = values[1]
                else:
                    self.retry_after = round(values[1])
        self.check()

