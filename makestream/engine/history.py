"""Recent run durations of one scenario: the basis for expected duration, ETA and look-back."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable


class History:
    """The last `size` durations (ms) of a scenario's finished runs."""

    def __init__(self, size: int = 50, durations: Iterable[int] = ()) -> None:
        self._durations: deque[int] = deque(durations, maxlen=size)

    def add(self, duration_ms: int | None) -> None:
        if duration_ms is not None and duration_ms >= 0:
            self._durations.append(duration_ms)

    def __len__(self) -> int:
        return len(self._durations)

    def percentile(self, q: float) -> int | None:
        """The q-th percentile (0-100, nearest rank), or None without history."""
        if not self._durations:
            return None
        ordered = sorted(self._durations)
        rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
        return ordered[rank]

    @property
    def expected_ms(self) -> int | None:
        """What a run is expected to take: the median of recent runs."""
        return self.percentile(50)

    @property
    def longest_ms(self) -> int:
        return max(self._durations, default=0)
