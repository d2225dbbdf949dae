"""Time as makestream sees it: an injectable clock that can run faster than real time.

Everything that waits or reads the time — the request budget, the poller, the simulator — takes a
`Clock`. Production uses `Clock()` (speed 1, wall time). Tests, demos and benchmarks share one
`Clock(speed=N)` between the simulated Make zone and the engine, so a simulated minute passes in
60/N real seconds for both sides and every rate (requests per minute, run durations) stays
consistent.

Two processes (``makestream sim serve`` and a ``watch`` against it) agree on a fast clock through
the same *anchor*: clock time is ``anchor + (wall - anchor) * speed``. ``MAKESTREAM_CLOCK`` set to
``SPEED@ANCHOR`` (e.g. ``20@1790000000``) gives both the same clock; it exists for tests and
benchmarks and has no effect on a real Make zone other than making makestream's own timing wrong.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping

import anyio

from makestream.limits import SPEED_MAX

ENV = "MAKESTREAM_CLOCK"


class Clock:
    """Epoch time that advances `speed` times faster than real time from `anchor` on."""

    def __init__(self, speed: float = 1.0, *, anchor: float | None = None) -> None:
        if not (speed > 0 and math.isfinite(speed)):
            raise ValueError("clock speed must be a positive finite number")
        self.speed = speed
        self.anchor = time.time() if anchor is None else anchor

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Clock:
        """The clock `MAKESTREAM_CLOCK` describes, or real time."""
        spec = env.get(ENV, "").strip()
        if not spec:
            return cls()
        speed, _, anchor = spec.partition("@")
        try:
            clock = cls(float(speed), anchor=float(anchor) if anchor else None)
        except ValueError:
            raise ValueError(f"{ENV}={spec!r}: expected SPEED or SPEED@EPOCH_SECONDS") from None
        if clock.speed > SPEED_MAX or not math.isfinite(clock.anchor):
            raise ValueError(f"{ENV}={spec!r}: the speed may be at most {SPEED_MAX:g}, the "
                             "epoch finite")
        return clock

    def spec(self) -> str:
        """The `MAKESTREAM_CLOCK` value that reproduces this clock in another process."""
        return f"{self.speed:g}@{self.anchor:.3f}"

    def now(self) -> float:
        """Seconds since the Unix epoch, in clock time."""
        return self.anchor + (time.time() - self.anchor) * self.speed

    def now_ms(self) -> int:
        """Milliseconds since the Unix epoch, in clock time (Make's unit for `from`/`to`)."""
        return int(self.now() * 1000)

    def monotonic(self) -> float:
        """A monotonic reading in clock seconds, for measuring intervals."""
        return time.monotonic() * self.speed

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds` of clock time."""
        await anyio.sleep(max(0.0, seconds) / self.speed)

    def real(self, seconds: float) -> float:
        """Convert clock seconds into real seconds (for timeouts handed to libraries)."""
        return seconds / self.speed
