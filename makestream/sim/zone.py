"""The simulated zone's state: executions generated lazily from the world, and ground truth.

Nothing runs in the background. Every request (and `truth()`) first calls `advance()`, which
processes every timed event up to `clock.now()` from one heap, in time order:

    plan     a scheduled run is due, or a webhook request arrives (and the next one is drawn)
    start    a queued webhook run gets its turn
    end      a run finishes: totals, consecutive errors (`isinvalid`), incomplete executions
    visible  a run's log entry and module log entries appear (at the end, later with late-logs)

Each run is drawn from its own RNG, seeded by (seed, scenario, source, sequence number), so the same
seed and the same clock times give the same world however often it is asked about. Scheduled runs
sit on a grid `origin + phase + k * interval` (phase seeded per scenario); a run still going at its
next slot skips to the first slot after it ends. Webhook requests arrive as a Poisson process and
wait in the hook's queue while all `parallel` slots are busy or the scenario is off.

The heap holds one pending `plan` per scenario plus the events of runs in flight, so `advance()`
costs O(events due * log n), and logs are kept per scenario in sorted `LogBook`s.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from starlette.applications import Starlette

from makestream.clock import Clock
from makestream.sim.blueprint import scenario_settings
from makestream.sim.faults import Faults
from makestream.sim.logbook import LogBook
from makestream.sim.runs import ModuleRun, RunPlan, plan_run
from makestream.sim.world import ScenarioSpec, WorldSpec, demo_world

# Which time a log entry's `timestamp` and imtId prefix carry. Make does not document it; "start"
# is the harder case for a client, since a long run's entry then lands "in the past".
LOG_TIMESTAMP: Literal["start", "end"] = "start"

# With counters="late": how long after a run's end its scenario's counters grow.
COUNTERS_LATE_S = 30.0

# Periods for the calendar scheduling types; the simulator runs them as plain intervals.
_PERIODS = {"indefinitely": 0, "daily": 86_400, "weekly": 604_800, "monthly": 2_592_000,
            "yearly": 31_536_000}

# Event priorities at equal times: a run's end is seen before anything that depends on it.
_END, _VISIBLE, _START, _PLAN = 0, 1, 2, 3


@dataclass(frozen=True)
class TruthRecord:
    """What really happened in one execution (times are epoch seconds of clock time)."""

    scenario_id: int
    execution_id: str
    started_at: float
    ended_at: float
    status: str  # "success" | "warning" | "error"
    operations: int
    transfer: int
    centicredits: int
    source: str  # "auto" (scheduled) | "webhook" | "manual" (POST /run)
    log_visible_at: float  # when the log entry appears: ended_at, plus late-logs if faulted


@dataclass
class Execution:
    """One run as the zone knows it, from start to log entry."""

    id: str
    scenario_id: int
    team_id: int
    source: str
    kind: str  # Make's log `type`: "auto" or "manual"
    instant: bool
    author_id: int | None
    start_ms: int
    end_ms: int
    visible_ms: int
    log_ms: int  # the entry's timestamp: start or end, per log_timestamp
    imt_id: str
    plan: RunPlan

    @property
    def status(self) -> str:
        return self.plan.status


@dataclass
class DlqItem:
    """An incomplete execution stored by a failed run."""

    id: str
    scenario_id: int
    execution_id: str
    reason: str
    created_ms: int
    size: int
    index: int
    errors: dict[int, dict[str, Any]]  # module id -> {type, message}, for the bundle endpoint


@dataclass
class ScenarioState:
    """A scenario's live state next to its spec."""

    spec: ScenarioSpec
    max_errors: int
    logs: LogBook[Execution] = field(default_factory=LogBook)
    module_logs: dict[int, LogBook[tuple[Execution, ModuleRun]]] = field(default_factory=dict)
    operations: int = 0
    transfer: int = 0
    centicredits: int = 0
    dlqs: list[DlqItem] = field(default_factory=list)
    consecutive_errors: int = 0
    invalid: bool = False
    next_exec_ms: int | None = None
    queue: int = 0
    slots: list[int] = field(default_factory=lambda: [0])
    counters: dict[str, int] = field(default_factory=dict)
    in_flight: dict[str, Execution] = field(default_factory=dict)  # started, log not visible
    checks: random.Random | None = None  # draws which scheduled runs are check runs

    @property
    def is_active(self) -> bool:
        return self.spec.is_active and not self.invalid

    @property
    def accepting(self) -> bool:
        """Whether the scenario runs now: active, not stopped by errors, not paused."""
        return self.is_active and not self.spec.is_paused


class SimZone:
    """A simulated Make zone: `app` serves Make's API v2 under /api/v2 for this world."""

    def __init__(
        self,
        world: WorldSpec | None = None,
        *,
        clock: Clock | None = None,
        seed: int = 0,
        faults: Faults | None = None,
        log_timestamp: Literal["start", "end"] = LOG_TIMESTAMP,
        limit_retry_after: bool = False,
        running_in_logs: bool = False,
        counters: Literal["end", "log", "late", "never"] = "end",
        queue_readable: bool = True,
        organization_readable: bool = True,
        log_range: Literal["ms", "s", "ignored"] = "ms",
    ) -> None:
        if log_timestamp not in ("start", "end"):
            raise ValueError("log_timestamp must be 'start' or 'end'")
        if counters not in ("end", "log", "late", "never"):
            raise ValueError("counters must be 'end', 'log', 'late' or 'never'")
        if log_range not in ("ms", "s", "ignored"):
            raise ValueError("log_range must be 'ms', 's' or 'ignored'")
        self.world = world if world is not None else demo_world()
        self.clock = clock if clock is not None else Clock()
        self.seed = seed
        self.faults = faults if faults is not None else Faults()
        self.faults.check()
        self.log_timestamp = log_timestamp
        # Make sends no Retry-After with its rate-limit 429 as far as anyone has seen; opt in.
        self.limit_retry_after = limit_retry_after
        # Whether `/logs` lists runs in flight (status 0) before they end. Make's docs do not
        # say; clients must handle both, and the demo turns it on to show live progress.
        self.running_in_logs = running_in_logs
        # API variants make-api.md leaves open. When a scenario's `operations` and `transfer`
        # grow: at the run's end, when its log entry appears, COUNTERS_LATE_S later, or never.
        self.counters = counters
        # Whether `GET /scenarios/{id}/triggers` answers (else 403), and `GET /organizations`
        # and `GET /organizations/{id}` (else 403, as without the organizations:read scope).
        self.queue_readable = queue_readable
        self.organization_readable = organization_readable
        # How `/logs` reads `from` and `to`: milliseconds (as makestream assumes Make does),
        # seconds (as the docs' example values look), or not at all. make-api.md §6 leaves it open.
        self.log_range = log_range
        # Guards state when a benchmark reads truth() from another thread than uvicorn's.
        self.lock = threading.RLock()
        self.started_ms = self.clock.now_ms()
        self.origin_ms = self.started_ms - round(self.world.history * 1000)
        self.fault_rng = random.Random(f"{seed}/faults")

        self._heap: list[tuple[int, int, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._executions: dict[str, Execution] = {}
        self._started: list[Execution] = []
        self._dlqs: dict[str, DlqItem] = {}
        self._revoked: set[str] = set()
        self._requests = 0
        self._per_minute: dict[int, int] = {}
        self._limit_window = -1
        self._limit_used = 0
        # 429s the organization limit itself answered (not injected faults), for tests.
        self.limited = 0
        self.states: dict[int, ScenarioState] = {}
        for spec in self.world.scenarios:
            settings = scenario_settings(spec.blueprint)
            state = ScenarioState(spec=spec, max_errors=int(settings.get("maxErrors", 3)))
            if spec.webhook is not None:
                state.slots = [0] * spec.webhook.parallel
            self.states[spec.id] = state
            self._schedule_first(state)

        from makestream.sim.app import build_app  # app.py needs SimZone; import late

        self.app: Starlette = build_app(self)

    # ---------------------------------------------------------------- public API

    def advance(self) -> None:
        """Generate everything that happened up to clock.now()."""
        now = self.clock.now_ms()
        with self.lock:
            heap = self._heap
            while heap and heap[0][0] <= now:
                _, _, _, action = heapq.heappop(heap)
                action()

    def truth(self) -> list[TruthRecord]:
        """Every execution started so far, in start order (runs in flight included)."""
        with self.lock:
            self.advance()
            return [
                TruthRecord(
                    scenario_id=ex.scenario_id,
                    execution_id=ex.id,
                    started_at=ex.start_ms / 1000,
                    ended_at=ex.end_ms / 1000,
                    status=ex.status,
                    operations=ex.plan.operations,
                    transfer=ex.plan.transfer,
                    centicredits=ex.plan.centicredits,
                    source=ex.source,
                    log_visible_at=ex.visible_ms / 1000,
                )
                for ex in self._started
            ]

    def start_execution(
        self, scenario_id: int, data: dict[str, Any] | None = None, *, source: str = "manual"
    ) -> str:
        """Start a run now, whatever the scenario's state; return its execution id."""
        with self.lock:
            self.advance()
            state = self.states.get(scenario_id)
            if state is None:
                raise ValueError(f"no scenario {scenario_id} in this world")
            execution = self._create(state, source, self.clock.now_ms(), data)
            self._start(execution)
            return execution.id

    def revoke_token(self, token: str) -> None:
        """Make `token` invalid from now on (401 IM102)."""
        with self.lock:
            self._revoked.add(token)

    def request_count(self) -> int:
        """API requests received, whatever their answer."""
        return self._requests

    def requests_per_minute(self) -> list[int]:
        """Requests received per clock minute, from the zone's first minute to the current one."""
        with self.lock:
            first = self.started_ms // 60_000
            last = max(self.clock.now_ms() // 60_000, max(self._per_minute, default=first))
            return [self._per_minute.get(window, 0) for window in range(first, last + 1)]

    # ------------------------------------------------------- used by the routes

    def execution(self, execution_id: str) -> Execution | None:
        return self._executions.get(execution_id)

    def dlq(self, dlq_id: str) -> DlqItem | None:
        return self._dlqs.get(dlq_id)

    def token_valid(self, token: str, now_ms: int) -> bool:
        revoke_after = self.faults.revoke_after
        if revoke_after is not None and now_ms >= self.started_ms + revoke_after * 1000:
            return False
        return token in self.world.tokens and token not in self._revoked

    def count_request(self, now_ms: int) -> None:
        with self.lock:
            self._requests += 1
            window = now_ms // 60_000
            self._per_minute[window] = self._per_minute.get(window, 0) + 1

    def take_limit(self, now_ms: int) -> bool:
        """Spend one request of the organization's per-minute limit; False if it is spent.

        The window is fixed and aligned to clock minutes (Make does not say which kind it uses).
        """
        with self.lock:
            window = now_ms // 60_000
            if window != self._limit_window:
                self._limit_window, self._limit_used = window, 0
            self._limit_used += 1
            if self._limit_used > self.world.organization.api_limit:
                self.limited += 1
                return False
            return True

    def organization_totals(self) -> tuple[int, int]:
        """Operations and transfer of every scenario in the current period."""
        with self.lock:
            states = self.states.values()
            return sum(s.operations for s in states), sum(s.transfer for s in states)

    # ----------------------------------------------------------------- events

    def _push(self, at_ms: int, priority: int, action: Callable[[], None]) -> None:
        heapq.heappush(self._heap, (at_ms, priority, next(self._seq), action))

    def _schedule_first(self, state: ScenarioState) -> None:
        spec = state.spec
        kind = spec.scheduling.get("type")
        phase_rng = random.Random(f"{self.seed}/{spec.id}/phase")
        if spec.webhook is not None:
            arrivals = random.Random(f"{self.seed}/{spec.id}/arrivals")
            arrival = self.origin_ms + self._gap(arrivals, spec)
            self._push(arrival, _PLAN, lambda: self._arrive(state, arrivals, arrival))
        elif kind in _PERIODS or kind == "once":
            interval = int(spec.scheduling.get("interval") or _PERIODS.get(str(kind)) or 3600)
            first = self.origin_ms + phase_rng.randrange(interval * 1000)
            once = kind == "once"
            if state.accepting:
                state.next_exec_ms = first
                self._push(first, _PLAN,
                           lambda: self._scheduled(state, first, interval * 1000, first, once))

    @staticmethod
    def _gap(arrivals: random.Random, spec: ScenarioSpec) -> int:
        assert spec.webhook is not None
        return max(1, round(arrivals.expovariate(spec.webhook.rate_per_minute / 60_000)))

    def _scheduled(self, state: ScenarioState, at: int, interval: int, base: int,
                   once: bool) -> None:
        if not state.accepting:
            state.next_exec_ms = None
            return
        rate = state.spec.profile.check_rate
        if rate > 0 and state.checks is None:
            state.checks = random.Random(f"{self.seed}/{state.spec.id}/checks")
        if state.checks is not None and state.checks.random() < rate:
            end_ms = at  # a check run: nothing new, nothing listed, no counter moved
        else:
            execution = self._create(state, "auto", at, None)
            self._start(execution)
            end_ms = execution.end_ms
        if once:
            state.next_exec_ms = None
            return
        # The next slot of the grid, skipping slots that fall while this run is still going.
        due = max(at + interval, end_ms)
        slot = base + -(-(due - base) // interval) * interval
        state.next_exec_ms = slot
        self._push(slot, _PLAN, lambda: self._scheduled(state, slot, interval, base, once))

    def _arrive(self, state: ScenarioState, arrivals: random.Random, now: int) -> None:
        spec = state.spec
        assert spec.webhook is not None
        following = now + self._gap(arrivals, spec)
        self._push(following, _PLAN, lambda: self._arrive(state, arrivals, following))
        burst = spec.webhook.burst
        self._request(state, now)
        for k in range(1, burst):
            at = now + round(k * spec.webhook.burst_s * 1000 / burst)
            self._push(at, _PLAN, functools.partial(self._request, state, at))

    def _request(self, state: ScenarioState, now: int) -> None:
        """One webhook request: a run now, or queued behind the runs in flight."""
        spec = state.spec
        assert spec.webhook is not None
        if state.queue >= spec.webhook.queue_limit:
            return  # a full queue rejects the request; Make answers the sender with an error
        if not state.accepting:
            state.queue += 1  # held until the scenario is switched on, which never happens here
            return
        slot = min(range(len(state.slots)), key=state.slots.__getitem__)
        start = max(now, state.slots[slot])
        execution = self._create(state, "webhook", start, None)
        state.slots[slot] = execution.end_ms
        if start <= now:
            self._start(execution)
            return
        state.queue += 1

        def begin() -> None:
            if state.accepting:
                state.queue -= 1
                self._start(execution)

        self._push(start, _START, begin)

    def _create(self, state: ScenarioState, source: str, start_ms: int,
                data: dict[str, Any] | None) -> Execution:
        spec = state.spec
        number = state.counters.get(source, 0)
        state.counters[source] = number + 1
        rng = random.Random(f"{self.seed}/{spec.id}/{source}/{number}")
        execution_id = f"{rng.getrandbits(128):032x}"
        plan = plan_run(spec, rng, data)
        end_ms = start_ms + plan.duration_ms
        kind = "manual" if source == "manual" else "auto"
        log_ms = start_ms if self.log_timestamp == "start" else end_ms
        return Execution(
            id=execution_id,
            scenario_id=spec.id,
            team_id=spec.team_id,
            source=source,
            kind=kind,
            instant=source == "webhook",
            author_id=self.world.user.id if source == "manual" else None,
            start_ms=start_ms,
            end_ms=end_ms,
            visible_ms=end_ms + round(self.faults.late_logs * 1000),
            log_ms=log_ms,
            imt_id=f"{log_ms}_scenario.{spec.id}.{kind}.{execution_id}",
            plan=plan,
        )

    def _start(self, execution: Execution) -> None:
        self._executions[execution.id] = execution
        self._started.append(execution)
        state = self.states[execution.scenario_id]
        state.in_flight[execution.id] = execution
        self._push(execution.end_ms, _END, lambda: self._end(state, execution))
        self._push(execution.visible_ms, _VISIBLE, lambda: self._show(state, execution))

    def _count(self, state: ScenarioState, execution: Execution) -> None:
        plan = execution.plan
        state.operations += plan.operations
        state.transfer += plan.transfer
        state.centicredits += plan.centicredits

    def _end(self, state: ScenarioState, execution: Execution) -> None:
        plan = execution.plan
        if self.counters == "end":
            self._count(state, execution)
        elif self.counters == "late":
            self._push(execution.end_ms + round(COUNTERS_LATE_S * 1000), _VISIBLE,
                       lambda: self._count(state, execution))
        if execution.status == "error":
            state.consecutive_errors += 1
            if state.consecutive_errors >= state.max_errors and not state.invalid:
                # Make stops scheduling a scenario after maxErrors consecutive errors.
                state.invalid = True
                state.next_exec_ms = None
        else:
            state.consecutive_errors = 0
        if plan.dlq_reason is not None:
            rng = random.Random(f"{self.seed}/dlq/{execution.id}")
            item = DlqItem(
                id=f"{rng.getrandbits(128):032x}",
                scenario_id=state.spec.id,
                execution_id=execution.id,
                reason=plan.dlq_reason,
                created_ms=execution.end_ms,
                size=max(1, plan.transfer // 8),
                index=len(self._dlqs) + 1,
                errors={m.module_id: {"type": m.error["name"], "message": m.error["message"]}
                        for m in plan.modules if m.error},
            )
            state.dlqs.append(item)
            self._dlqs[item.id] = item

    def _show(self, state: ScenarioState, execution: Execution) -> None:
        if self.counters == "log":
            self._count(state, execution)
        state.in_flight.pop(execution.id, None)
        state.logs.add(execution.imt_id, execution)
        for module_run in execution.plan.modules:
            book = state.module_logs.setdefault(module_run.module_id, LogBook())
            book.add(execution.imt_id, (execution, module_run))
