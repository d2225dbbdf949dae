"""The poller: which request to spend next, and when.

Every request comes out of one organization-wide budget, so the poller orders them by value:

1. follow-ups (the figures or error of a run that just ended) go first;
2. running executions are polled through the executions endpoint on a schedule shaped by their
   expected end — sparse early on, dense around the expected end, backing off after it;
3. sweeps (one `GET /scenarios` page describes up to a hundred scenarios) run every few seconds
   and mark scenarios whose counters moved as *hot*;
4. log scans go to the scenario with the highest staleness × heat: a scenario that a sweep
   flagged, whose `nextExec` passed, or whose webhook queue grew is scanned next; idle ones share
   what is left in round-robin fashion.

The poller holds no Make I/O itself; `Schedule.next()` hands an action to a worker of
`engine.watch`, which performs it.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from dataclasses import dataclass, field
from typing import Literal

from makestream.engine.history import History
from makestream.make.budget import Priority
from makestream.make.models import ExecutionDetail, ExecutionLog

ActionKind = Literal["poll", "log", "detail", "scan", "sweep", "triggers", "modules", "blueprint"]


@dataclass(frozen=True)
class Action:
    kind: ActionKind
    scenario_id: int = 0
    execution_id: str = ""
    log: ExecutionLog | None = None
    detail: ExecutionDetail | None = None
    priority: Priority = Priority.NORMAL
    attempt: int = 0


@dataclass
class ScanTarget:
    scenario_id: int
    last_scan: float = float("-inf")
    heat: float = 1.0
    hot_until: float = 0.0
    heated_at: float = float("-inf")
    due_at: float | None = None  # a moment worth scanning at (expected end of a scheduled run)
    in_flight: bool = False
    idle_flight: bool = False  # the scan in flight was handed out as an idle one


@dataclass
class PollTarget:
    scenario_id: int
    execution_id: str
    started: float
    expected_s: float | None  # the median of recent runs
    earliest_s: float | None = None  # the short end of recent runs (10th percentile)
    polls: int = 0
    last_polled: float = 0.0
    in_flight: bool = False


@dataclass
class Schedule:
    """Orders pending work by value. All times are clock seconds (epoch)."""

    floor_s: float = 1.0  # --interval: no scenario is scanned more often than this
    scanning: bool = True
    rate_per_s: float = 0.8
    poll_share: float = 0.6
    # Idle scans that may wait for the budget at once. Workers are few; if every one of them
    # sat in the budget queue with an idle scan, a hot scenario would wait for a worker even
    # though the budget serves it first.
    idle_slots: int = 3
    _idle_in_flight: int = 0
    urgent: deque[Action] = field(default_factory=deque)
    scans: dict[int, ScanTarget] = field(default_factory=dict)
    polls: dict[str, PollTarget] = field(default_factory=dict)
    _timed: list[tuple[float, int, Action]] = field(default_factory=list)
    _tie: itertools.count[int] = field(default_factory=itertools.count)

    # -- feeding ---------------------------------------------------------------------------------

    def follow_up(self, action: Action) -> None:
        self.urgent.append(action)

    def at(self, when: float, action: Action) -> None:
        """Queue an action for a moment (sweeps, trigger checks, retries)."""
        heapq.heappush(self._timed, (when, next(self._tie), action))

    def watch_execution(
        self, scenario_id: int, execution_id: str, *, now: float, history: History,
        started: float | None = None,
    ) -> None:
        """Poll a running execution; `history` (the scenario's past durations) shapes when."""
        if execution_id not in self.polls:
            expected, earliest = history.percentile(50), history.percentile(10)
            self.polls[execution_id] = PollTarget(
                scenario_id, execution_id, started if started is not None else now,
                expected / 1000 if expected else None, earliest / 1000 if earliest else None,
            )

    def forget_execution(self, execution_id: str) -> None:
        self.polls.pop(execution_id, None)

    def heat(
        self, scenario_id: int, now: float, *, factor: float = 20.0, for_s: float = 60.0
    ) -> None:
        """Something suggests this scenario ran or changed: scan it soon."""
        target = self.scans.get(scenario_id)
        if target is not None:
            target.heat = max(target.heat, factor)
            target.hot_until = max(target.hot_until, now + for_s)
            target.heated_at = now

    def scan_not_before(self, scenario_id: int, when: float) -> None:
        """Back off a scenario whose scan failed, so that it does not eat the budget."""
        target = self.scans.get(scenario_id)
        if target is not None:
            target.last_scan = max(target.last_scan, when - self.floor_s)

    def scan_at(self, scenario_id: int, when: float) -> None:
        target = self.scans.get(scenario_id)
        if target is not None and (target.due_at is None or when < target.due_at):
            target.due_at = when

    # -- choosing --------------------------------------------------------------------------------

    def poll_interval(self, target: PollTarget, now: float) -> float:
        """Seconds between two status polls of one running execution."""
        # The polls of all running executions together take at most `poll_share` of the budget.
        floor = max(1.0, len(self.polls) / max(self.rate_per_s * self.poll_share, 1e-6))
        if not self.scanning:
            # --run/--execution: this run is all there is to watch, and a run's length varies
            # too much for history to say when to look; poll at the budget's pace.
            return floor
        if target.expected_s is None:
            return min(5.0, floor * 1.3**target.polls)
        # Sparse until the earliest plausible end, dense from there to a little past the
        # expected end, then backing off towards 5 s for a run that overstays.
        earliest = target.started + (target.earliest_s or target.expected_s * 0.5)
        if now < earliest:
            return max(floor, min((earliest - now) / 2, 30.0))
        overdue = now - (target.started + target.expected_s)
        if overdue <= 0:
            return floor
        return max(floor, min(5.0, floor + overdue / 10))

    def next(self, now: float) -> tuple[Action | None, float]:
        """The most valuable action due now, or None and how long until something is due."""
        if self.urgent:
            return self.urgent.popleft(), 0.0
        wait = 3600.0
        if self._timed:
            when, _, action = self._timed[0]
            if when <= now:
                heapq.heappop(self._timed)
                return action, 0.0
            wait = when - now
        best_poll: PollTarget | None = None
        for poll in self.polls.values():
            if poll.in_flight:
                continue
            due = self._poll_due(poll, now)
            if due <= now:
                if best_poll is None or self._poll_due(best_poll, now) > due:
                    best_poll = poll
            else:
                wait = min(wait, due - now)
        if best_poll is not None:
            best_poll.in_flight = True
            best_poll.polls += 1
            priority = Priority.HIGH
            return (
                Action("poll", best_poll.scenario_id, best_poll.execution_id, priority=priority),
                0.0,
            )
        if not self.scanning:
            return None, wait
        best: ScanTarget | None = None
        best_score = 0.0
        idle_allowed = self._idle_in_flight < self.idle_slots
        for target in self.scans.values():
            if target.in_flight:
                continue
            age = now - target.last_scan
            if age < self.floor_s:
                wait = min(wait, self.floor_s - age)
                continue
            heat = target.heat if now < target.hot_until else 1.0
            if target.due_at is not None and now >= target.due_at:
                heat = max(heat, 20.0)
            elif target.due_at is not None:
                wait = min(wait, target.due_at - now)
            if heat <= 1.0 and not idle_allowed:
                wait = min(wait, 0.25)  # look again when an idle slot may have freed
                continue
            score = min(age, 1e9) * heat
            if best is None or score > best_score:
                best, best_score = target, score
        if best is None:
            return None, max(wait, 0.01)
        best.in_flight = True
        hot = now < best.hot_until or (best.due_at is not None and now >= best.due_at)
        if not hot:
            best.idle_flight = True
            self._idle_in_flight += 1
        return (
            Action(
                "scan",
                best.scenario_id,
                priority=Priority.HIGH if hot else Priority.LOW,
            ),
            0.0,
        )

    def _poll_due(self, target: PollTarget, now: float) -> float:
        if target.polls == 0:
            return target.started
        return target.last_polled + self.poll_interval(target, target.last_polled)

    # -- results ---------------------------------------------------------------------------------

    def polled(self, execution_id: str, now: float) -> None:
        target = self.polls.get(execution_id)
        if target is not None:
            target.in_flight = False
            target.last_polled = now

    def scanned(self, scenario_id: int, started: float, now: float, *, ok: bool) -> None:
        target = self.scans[scenario_id]
        target.in_flight = False
        if target.idle_flight:
            target.idle_flight = False
            self._idle_in_flight -= 1
        if ok:
            target.last_scan = started
            if target.due_at is not None and now >= target.due_at:
                target.due_at = None
            if target.heated_at <= started:
                # The scan answered whatever made the scenario hot.
                target.heat, target.hot_until = 1.0, 0.0
