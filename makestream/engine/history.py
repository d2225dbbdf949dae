"""Recent run durations of one scenario: the basis for expected duration, ETA and look-back.

A `HistorySource` (the history store) can seed them at start-up, before any log is read; a
`RunSource` (the history store again) can hand a resumed watch the runs it still owes.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from makestream.events import ExecutionFinished


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


@dataclass(frozen=True)
class Seed:
    """What a history source knows of a scenario's past runs."""

    durations_ms: list[int]  # oldest first
    last_run_ms: int | None  # when the last one ended, epoch ms


@dataclass(frozen=True)
class Covered:
    """Runs a source holds complete for a scenario: every run Make lists at a log time from the
    asked floor up to `until_ms` (exclusive), as (log time in epoch ms, event), oldest first."""

    until_ms: int
    runs: list[tuple[int, ExecutionFinished]]


class RunSource(Protocol):
    """Somewhere that holds every run of some spans of time (the history store's coverage)."""

    def covered(self, floors: Mapping[int, int]) -> dict[int, Covered]:
        """For scenarios at these floors (epoch ms of log time), the ones whose runs this source
        holds from the floor on, and up to where. Never raises; knows nothing: {}."""
        ...


class HistorySource(Protocol):
    """Somewhere that remembers past runs (the history store), asked before Make's logs."""

    def recent(self, scenario_id: int) -> Seed | None:
        """The scenario's recent runs, or None when this source knows none. Never raises."""
        ...


def seed(
    history: History,
    alerts: AlertLearner | None,
    source: HistorySource | None,
    scenario_id: int,
) -> bool:
    """Fill a scenario's history (and the alert rules' baseline) from `source`; True if it knew
    runs of the scenario, so that no log page needs to be read to learn them."""
    known = source.recent(scenario_id) if source is not None else None
    if known is None or not known.durations_ms:
        return False
    for duration in known.durations_ms:
        history.add(duration)
    if alerts is not None:
        last = known.last_run_ms / 1000 if known.last_run_ms is not None else None
        alerts.learn(scenario_id, known.durations_ms, last_run_at=last)
    return True


class AlertLearner(Protocol):
    def learn(
        self, scenario_id: int, durations_ms: Iterable[int | None] = (), *,
        last_run_at: float | None = None,
    ) -> None: ...
