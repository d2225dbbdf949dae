"""The detection policy: for each free request slot, the read with the most expected news.

A watch learns about runs only by asking, and every question costs one request of an
organization-wide budget. `decide(state, now)` is the whole policy: a pure function of what the
watch knows (`PolicyState`), the clock and the budget, with no I/O. It returns one `Action` (or
how long until something is worth asking); `engine.poller.Schedule` records the pick as
dispatched, the watch performs it and feeds back what it learned.

**What counts as news.** A run that ended and has not been reported. The value of a read is the
expected number of such runs it reveals, per request. Delaying a read by one slot costs every run
it would reveal one slot of latency, so spending each slot on the largest expected count keeps
the total (and the tail) of detection latency low.

**The order of a decision.**

1. Follow-ups of runs known to have ended (their log entry, their error detail, then module
   results): a known end is news already, so it never waits behind a read that only might find
   some. They go out at `URGENT` and are not counted against the look-ahead below.
2. Timed work whose moment came (retries of failed follow-ups).
3. Everything else is scored, and the best score wins:

   - **a log scan** of scenario *s*: its base rate λₛ × the time since its last read (λₛ learned
     from the runs found in its history and in this watch, with a prior of half a run in ten
     minutes; a scenario on an interval schedule keeps only the prior, its runs being the due
     signal's; while a run that overran its interval is going, `nextExec` more than an interval
     ahead, nothing times its end and the scenario is read as one without a schedule). *Sure*
     signals add one run to that: a scheduled run whose expected end
     (`nextExec` + the long side of recent durations) passed (`due`; before it, a read is worth
     the chance the run is over by now, `ScanTarget.visible_chance`; only a run that ended after
     the scheduled start answers it; worth a run times the share of the scenario's slots that
     listed one, `slot_reliability`, since a polling trigger that found nothing makes a check
     run `/logs` does not list), and a sweep whose
     `operations` counter grew past the runs found so far (`sweep`, `owed_ops`; once counters
     are seen to lag, `counters_lag`, growth that runs listed from just before start-up
     explain points at nothing). Softer signals
     (a growing webhook queue, `dlqCount`/`isinvalid` moving) raise it to their measured
     precision. A sweep that saw nothing move makes the base rate count from its moment, as far
     as sweeps are trusted (`recall`: the share of runs found that a sweep had pointed at, from
     none at the start: trust is earned, so counters that never move cost nothing but the sweeps
     themselves; a pointer that came long after the run ended counts in proportion). A
     scenario never read is worth the mean rate of those read since the watch began, at least
     0.5 (its first read also learns history). No scenario is read more often
     than `floor_s`; a sure signal's read that finds nothing looks again after a backing-off
     delay. Runs known to wait (sure signals) gain `SURE_AGE_WEIGHT` a second they wait, so the
     oldest goes first; and once every scenario not on a known schedule was read, one unread for
     longer than a round-robin over all of them would leave it (`round_robin_s`; its age
     trust-weighted as above) is worth a sure run plus its time overdue: the tail is never worse
     than the simplest loop's, which the bare count λ·age would allow for quiet scenarios behind
     busy ones;
   - **a status poll** of a run seen in flight (only where `/logs` lists runs in flight): when
     its poll is due on the history-shaped timetable, the `poll` signal's precision. A run seen
     in its scenario's logs is polled by scanning those logs again (`signal="poll"`): one
     request tells its end with its figures, and any other run; `GET /executions/{id}` (then
     the log entry for the figures) is for runs known otherwise (`--run`, `--execution`) and
     for a run the listing has not shown ended after `LOG_FOLLOWS_MAX` looks;
   - **a sweep** (one `GET /scenarios` page describes 99 scenarios) and **a queue-depth read**
     (`GET …/triggers`): paid signals. Each earns, per request, the runs its prompted scans found
     that the base rate alone did not make likely (each credited 1 − e^(−λₛ·age) when that chance
     was under even odds, and in proportion to how soon after the run's end the signal came),
     time-decayed from an optimistic prior. The requests it pays for are its own, the scans
     it prompted that found nothing, and (sweeps) one for each counter that, at a sweep, still
     does not show the runs found, the earliest of them ended more than 5 s before: counters
     that lag or are not kept make the sweep's "nothing new" wrong (it then vouches for
     nothing), and sweeps shrink. At its cadence a paid signal
     goes first (a sweep: unless runs known to wait are queued, when it takes its turn among
     them by age; between turns a sweep is worth the runs the base rates expect where a blind
     read would likely find none, times the sweeps' trust; none of these with fewer than
     `SWEEP_MIN_SCENARIOS`); the cadence is its full share (sweeps: `SWEEP_SHARE` of the rate,
     at most one a second; queue reads: one at a time, one per `TRIGGERS_MIN_S` per scenario,
     the first ones too at their share)
     while it earns `WORTH_FULL`, proportionally slower as it earns less. When every scenario
     is busy, blind scans find news anyway and sweeps earn nothing; when `operations` is not
     kept up to date, they prompt nothing: either way they shrink, down to one a minute (kept
     for `nextExec`, flags and `scenario.changed`). Queue reads stop for good once Make refuses
     one;
   - **reads that find no run** (blueprints for the live view, an organization read put off
     because `--api-limit` made it unnecessary at start-up): worth nothing at first, growing
     with their wait up to just below a first read of a scenario, so they go after the first
     pass and when little else is worth asking, but are never starved.

**Signals degrade to the base rate.** A signal that is missing (no `nextExec`, no queue depth,
runs in flight not listed, counters never moving) simply never raises a scan above its base rate;
one that stops paying falls to its floor. With no signal at all the policy is the best
round-robin: every scan is worth λ·age, so the busiest and stalest scenario goes first, and
equal scenarios go in turn.

**Look-ahead.** Requests wait in the budget's queue until the budget lets them go; a decision
made long before its slot is stale. So the policy hands out scored work only while at most
`LOOKAHEAD` scored reads are queued or in flight: each pick is made about one slot before it is
sent. Scored reads all wait at one budget level; the policy, not the budget, orders them.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections import deque
from dataclasses import dataclass, field
from typing import Literal

from makestream.make.budget import Priority
from makestream.make.models import ExecutionDetail, ExecutionLog

ActionKind = Literal[
    "poll", "log", "detail", "scan", "sweep", "triggers", "modules", "blueprint", "organization"
]
SignalName = Literal["sweep", "due", "queue", "poll"]

SWEEP_SHARE = 0.3  # at most this share of the rate goes to sweeps
SWEEP_MIN_S = 1.0  # never two sweeps of one group within a second
SWEEP_MAX_S = 60.0  # flags, nextExec and scenario.changed stay at most a minute old
TRIGGERS_MIN_S = 30.0  # one queue-depth read per webhook scenario per this long at most
TRIGGERS_SHARE = 0.05
WORTH_FULL = 0.2  # a paid signal earning this much news per request gets its full share
LOOKAHEAD = 1  # scored work handed out while fewer requests than this wait for the budget
PRIOR_RUNS = 0.5  # the base rate's prior: half a run ...
PRIOR_SPAN_S = 600.0  # ... in ten minutes
FRESH_NEWS = 0.5  # a scenario never read: it may have news, and its first read learns history
EARNINGS_HALF_LIFE_S = 120.0  # how fast a signal's earnings forget
POLL_SHARE = 0.6
# A run seen in flight in the logs is followed by reading them at most this many times; then by
# its status, which settles an entry that never turns terminal in the listing (an unknown
# status, a stale RUNNING entry) or a run the listing no longer shows.
LOG_FOLLOWS_MAX = 6
POLL_MAX_S = 60.0  # the longest gap between two status polls of a run in flight (`poll_interval`)
# Expected news added per second a sure signal's run has waited: enough to serve runs known to
# wait oldest first, whatever their scenarios' base rates.
SURE_AGE_WEIGHT = 0.1
DUE_RETRY_NEWS = 0.6  # a scheduled run's log not shown at its first look: likely by the next
SATURATED_MIN = 5  # see `PolicyState.saturated`
# ... or, over the last minute, runs found at this share of the budget's rate or more by scans
# that took at least SATURATED_SCANS of it: the scans alone take most of the budget, and a
# detail read for each failed run would push it over.
SATURATED_SHARE = 0.75
SATURATED_SCANS = 0.5
DEMAND_SPAN_S = 60.0
SWEEP_MIN_SCENARIOS = 5  # fewer: a round of scans is as quick as a sweep and its scan
# Reads that find no run (blueprints, the deferred organization read): worth little at first,
# more the longer they wait, but never as much as a first read of a scenario.
LATER_RAMP_S = 120.0
# Before a scheduled run's sure moment, a read is worth the chance its log shows by now: from
# the lengths of recent runs at these quantiles, and a log shown about this long after the end.
QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)
LOG_LAG_S = 1.0
LATER_MAX = 0.45


@dataclass(frozen=True)
class Action:
    kind: ActionKind
    scenario_id: int = 0
    execution_id: str = ""
    log: ExecutionLog | None = None
    detail: ExecutionDetail | None = None
    priority: Priority = Priority.NORMAL
    attempt: int = 0
    signal: SignalName | None = None  # what prompted a scan, credited with what it finds


@dataclass
class Signal:
    """What one kind of hint has been worth in this watch.

    `precision`: the share of the scans it prompted that found a new run (EWMA). `earned` and
    `paid`: time-decayed sums of the news it brought beyond the base rate, and of the requests
    it cost; `worth()` is their ratio, starting from an optimistic prior so that it is tried.
    """

    precision: float
    prior_worth: float = 0.0
    prior_weight: float = 2.0  # the prior counts as this many requests, forgotten as they are
    earned: float = 0.0
    paid: float = 0.0
    at: float | None = None  # the moment the sums were last decayed to
    prompted: int = 0
    hits: int = 0
    requests: int = 0

    def _decay(self, now: float) -> None:
        if self.at is None:
            self.at = now
        elif now > self.at:
            keep: float = 0.5 ** ((now - self.at) / EARNINGS_HALF_LIFE_S)
            self.earned *= keep
            self.paid *= keep
            self.prior_weight *= keep
            self.at = now

    def worth(self, now: float) -> float:
        """Expected news per request this signal costs."""
        since = now - self.at if self.at is not None else 0.0
        keep: float = 0.5 ** (max(0.0, since) / EARNINGS_HALF_LIFE_S)
        prior = self.prior_weight * keep
        return (self.earned * keep + prior * self.prior_worth) / (self.paid * keep + prior + 1e-9)

    def paid_for(self, now: float, requests: int = 1) -> None:
        self._decay(now)
        self.paid += requests
        self.requests += requests

    def outcome(self, now: float, found: bool, base: float, timely: float = 1.0) -> None:
        """A scan this signal prompted found news (or not); `base`: the chance it would have
        found news without the signal; `timely`: how much of the credit the find deserves (a
        run pointed at long after it ended was found no sooner for it)."""
        self._decay(now)
        self.prompted += 1
        self.hits += found
        self.precision = 0.8 * self.precision + 0.2 * float(found)
        # A run the base rate alone made likely (even odds or better) would have been read
        # soon without the hint: finding it earns the hint nothing.
        if found and base < 0.5:
            self.earned += (1.0 - base) * timely


@dataclass
class ScanTarget:
    """One scenario as the policy sees it: when it was read, what points at it, how busy it is."""

    scenario_id: int
    last_scan: float = float("-inf")
    in_flight: bool = False
    fresh: bool = False  # never read, and no position to start from: the first read learns history
    scanned_once: bool = False
    # A signal waiting for a scan: which, and when it came.
    signal: SignalName | None = None
    heated_at: float = float("-inf")
    pointed_at: float = float("-inf")  # when the signal waiting now first came
    hot_until: float = 0.0
    due_at: float | None = None  # a moment worth scanning at (a scheduled run's expected end)
    due_misses: int = 0
    signal_misses: int = 0
    # `operations` the counter grew by since the first reading (`adopted_at`), less those of the
    # runs found that ended after it: more than zero means a run the counter saw is not found
    # yet. `counted_at`: the last reading.
    owed_ops: int = 0
    adopted_at: float = float("-inf")
    counted_at: float = float("-inf")
    cleared_at: float = float("-inf")  # a sweep saw nothing move here at this moment
    cleared_wrongly: bool = False  # ... though a run found since had ended well before it
    found_ended: float = float("-inf")  # the latest end of the runs the scan in flight found
    # The end of the earliest run found whose operations the counter does not show yet (the
    # runs found are ahead of the counter since then; +inf: they are not).
    ahead_since: float = float("inf")
    # Runs listed that ended shortly before adoption (id -> operations, end), whose operations
    # the first reading may not show yet (counters updated late): each can explain growth once.
    early: dict[str, tuple[int, float]] = field(default_factory=dict)
    explained: set[str] = field(default_factory=set)  # ... those that did
    not_before: float = float("-inf")  # after a failed read
    # The base rate: runs found since `since`, plus those of the history read at the start.
    runs: float = 0.0
    since: float = 0.0
    hooked: bool = False  # a webhook scenario, whose queue depth can be read
    # The schedule: the next run's start (nextExec), the interval, the long side of recent
    # runs' lengths (80th percentile).
    next_exec: float | None = None
    began: float | None = None  # the start of the scheduled run a due scan looks for
    interval: float | None = None
    # A run overran its interval: nextExec was more than an interval ahead when first seen so
    # (this moment), so Make skipped the slots while a run begun earlier was still going; it
    # ends by nextExec, and no due scan looks for it (`scheduled` is false until a read finds a
    # run that ended since, or nextExec comes). None: no such run.
    overrun_seen: float | None = None
    # Scheduled slots whose run a due scan found, and slots given up with nothing listed: a
    # polling trigger that found nothing new makes a check run, which `/logs` does not list.
    slots_kept: int = 0
    slots_empty: int = 0
    expected_s: float = 0.0
    # Recent runs' lengths at the QUANTILES (s; empty without history): how likely the run a
    # due scan waits for is over by now, before its sure moment (`visible_chance`).
    lengths: tuple[float, ...] = ()
    triggers_after: float = 0.0
    dispatched_base: float = 0.0  # the base chance of news when the scan in flight was picked

    @property
    def slot_reliability(self) -> float:
        """The share of this scenario's scheduled slots that list a run (from a prior of one
        that did): what a due scan is worth, where slots may be check runs."""
        return (self.slots_kept + 1) / (self.slots_kept + self.slots_empty + 1)

    @property
    def proves_run(self) -> bool:
        """A sweep found this scenario's counter grown past the runs found: a run not found yet."""
        return self.signal == "sweep" and self.owed_ops > 0

    def is_due(self, now: float) -> bool:
        """The scheduled run a due scan looks for should show by now."""
        return self.due_at is not None and now >= self.due_at

    def hot(self, now: float) -> bool:
        """A signal waits for this scenario's scan. Soft ones go stale (`hot_until`); a counter
        grown past the runs found does not, however long the scans queue: it proves a run, and
        only finding it (or the retries giving up) answers it."""
        return self.signal is not None and (now < self.hot_until or self.proves_run)

    def lags(self, now: float, slack_s: float) -> bool:
        """The counter still does not show runs found that ended more than `slack_s` before
        `now`: it lags the runs (or is not kept up to date)."""
        return self.owed_ops < 0 and now - self.ahead_since > slack_s

    def roll(self, now: float) -> float | None:
        """When the scheduled run that began by `now` should be visible; moves to the next."""
        due: float | None = None
        if self.next_exec is not None and self.next_exec <= now:
            self.overrun_seen = None  # the next slot came: the run that overran is over
        while self.next_exec is not None and self.next_exec <= now:
            if (self.due_at is not None and self.due_misses and self.began is not None
                    and self.next_exec >= self.began + 3 * max(self.expected_s, 1.0)):
                # The next slot came, the last one's run was looked for and never listed, and
                # runs here last under a third of that (the looks again would give up by now):
                # a check run, as far as anyone can tell. Its looks stop, the new slot's go.
                # (A run that may still be going keeps its looks, as before.)
                self.slots_empty += 1
                self.due_at, self.due_misses = None, 0
            self.began = self.next_exec
            due = self.next_exec + max(self.expected_s, 1.0) + 0.5
            self.next_exec = self.next_exec + self.interval if self.interval else None
        return due

    def visible_chance(self, now: float) -> float:
        """Before its due moment, the chance that the scheduled run begun at `began` shows in
        the logs by now and did not at the last read: its length's distribution (from recent
        runs, plus LOG_LAG_S) up to now, given what the last read saw."""
        began = self.began
        if (self.due_at is None or now >= self.due_at or self.due_misses or began is None
                or not self.lengths):
            # (after a miss at the due moment, its retries back off on their own timetable)
            return 0.0
        points = [(0.0, 0.0), *zip(self.lengths, QUANTILES, strict=True),
                  (self.lengths[-1] * 1.5 + 1.0, 1.0)]

        def shown(t: float) -> float:
            x = t - began - LOG_LAG_S
            if x <= 0:
                return 0.0
            for (x0, p0), (x1, p1) in itertools.pairwise(points):
                if x <= x1:
                    return p0 + (p1 - p0) * ((x - x0) / (x1 - x0) if x1 > x0 else 1.0)
            return 1.0

        before = shown(self.last_scan) if self.last_scan > began else 0.0
        return max(0.0, (shown(now) - before) / (1.0 - before)) if before < 1.0 else 0.0

    @property
    def scheduled(self) -> bool:
        """On an interval schedule whose next run is known: its due scans look for its runs
        (not while a run that overran its interval is going: nothing times its end)."""
        return (self.interval is not None and self.next_exec is not None
                and self.overrun_seen is None)

    def rate(self, now: float) -> float:
        """Runs per second, learned (with a prior). A scenario on an interval schedule runs when
        its due scans look: only unscheduled runs (the prior) are left to chance."""
        if self.scheduled:
            return PRIOR_RUNS / PRIOR_SPAN_S
        return (self.runs + PRIOR_RUNS) / (max(0.0, now - self.since) + PRIOR_SPAN_S)

    def age(self, now: float, trust: float = 0.0) -> float:
        """How long this scenario's news has had to gather: since its last read, or since a
        sweep saw its counters still, as far as sweeps are trusted (`trust`: the share of runs
        they pointed at)."""
        last = self.last_scan if math.isfinite(self.last_scan) else self.since
        cleared = max(last, self.cleared_at)
        return max(0.0, (1 - trust) * (now - last) + trust * (now - cleared))

    def base_news(self, now: float, trust: float = 0.0) -> float:
        """Expected runs found by a read now, from the base rate alone."""
        if not self.scanned_once:
            return FRESH_NEWS
        return self.rate(now) * self.age(now, trust)


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
    # Seen in flight in its scenario's logs: followed by reading those logs again, which tells
    # its end with its figures (and any other run) in one request, where a status poll needs a
    # second read for the figures.
    by_logs: bool = False


@dataclass
class SweepGroup:
    """One sweep request: the organization (0) or one team; pages = ceil(scenarios / 100)."""

    group: int
    pages: int = 1
    last: float = float("-inf")
    in_flight: bool = False


@dataclass
class PolicyState:
    """Everything the policy reads. All times are clock seconds (epoch)."""

    floor_s: float = 1.0  # --interval: no scenario is scanned more often than this
    scanning: bool = True  # False with --run/--execution: only the target run is followed
    following: bool = True  # sweeps and queue reads only in a following watch
    rescans: bool = True  # False (--no-follow): each scenario's logs are read once, then no more
    rate_per_s: float = 0.8
    poll_share: float = POLL_SHARE
    urgent: deque[Action] = field(default_factory=deque)
    scans: dict[int, ScanTarget] = field(default_factory=dict)
    polls: dict[str, PollTarget] = field(default_factory=dict)
    sweeps: dict[int, SweepGroup] = field(default_factory=dict)
    sweep_times: deque[float] = field(default_factory=deque)  # sends in the last minute
    triggers_in_flight: bool = False
    # How much later than a scheduled run's expected end its log shows, as learned from due
    # scans (Make's log lag and runs longer than their median); see `poller.DUE_LAG_STEP`.
    due_lag: float = 0.0
    # The share of runs found in scenarios a sweep had pointed at (EWMA): how far a sweep that
    # saw nothing move can be believed.
    recall: float = 0.0  # earned: a sweep is trusted only once its pointers have been found right
    # A counter grew, after the first reading, by a run that had ended well before it: counters
    # lag the runs here, so early growth is read as runs from before adoption (`explain`).
    counters_lag: bool = False
    triggers_readable: bool = True
    signals: dict[str, Signal] = field(
        default_factory=lambda: {
            "sweep": Signal(precision=0.8, prior_worth=1.0, prior_weight=1.0),
            "due": Signal(precision=0.9),
            "queue": Signal(precision=0.8, prior_worth=0.5),
            "poll": Signal(precision=0.5),
        }
    )
    later: deque[Action] = field(default_factory=deque)  # reads that can find no run
    later_since: float = 0.0  # when they were put off
    timed: list[tuple[float, int, Action]] = field(default_factory=list)
    tie: itertools.count[int] = field(default_factory=itertools.count)
    # Follow-ups in flight and runs known to have ended but not reported yet (see engine.base).
    in_detail: set[str] = field(default_factory=set)
    # Every scan of the last DEMAND_SPAN_S: when it ended, and the runs it found.
    found: deque[tuple[float, int]] = field(default_factory=deque)

    def at(self, when: float, action: Action) -> None:
        heapq.heappush(self.timed, (when, next(self.tie), action))

    def saturated(self, now: float) -> bool:
        """The budget cannot keep up with the runs: in the last minute, scans taking at least
        SATURATED_SCANS of its rate found runs at SATURATED_SHARE of its rate or more; or runs
        are known to wait (a sure signal) in at least half the scenarios, and at least
        SATURATED_MIN. (Runs alone would not do: one read of a busy scenario can list many.)"""
        recent = [n for when, n in self.found if when >= now - DEMAND_SPAN_S]
        budget = self.rate_per_s * DEMAND_SPAN_S
        if (len(recent) >= SATURATED_SCANS * budget - 1e-6
                and sum(recent) >= SATURATED_SHARE * budget - 1e-6):
            return True
        waiting = sum(1 for t in self.scans.values() if sure_signal(t, now))
        return waiting >= max(SATURATED_MIN, len(self.scans) / 2)

    def outstanding(self) -> int:
        """Scored reads handed out and not answered yet (queued for the budget or in flight)."""
        return (sum(1 for t in self.scans.values() if t.in_flight)
                + sum(1 for p in self.polls.values() if p.in_flight)
                + sum(1 for g in self.sweeps.values() if g.in_flight)
                + self.triggers_in_flight)


@dataclass(frozen=True)
class Decision:
    """What to do with the next free slot: an action, or how long until one is worth taking."""

    action: Action | None
    wait: float
    news: float = 0.0  # the expected news of a scored pick (for tests and tuning)


# -- the policy ------------------------------------------------------------------------------------


def poll_interval(state: PolicyState, target: PollTarget, now: float) -> float:
    """Seconds between two status polls of one running execution."""
    # The polls of all running executions together take at most `poll_share` of the budget.
    floor = max(1.0, len(state.polls) / max(state.rate_per_s * state.poll_share, 1e-6))
    if not state.scanning:
        # --run/--execution: this run is all there is to watch, and a run's length varies too
        # much for history to say when to look; poll at the budget's pace.
        return floor
    # A run in flight for long polls more rarely: at most 5 s apart, or a tenth of its age
    # (up to a minute). An entry Make never turns terminal (an unknown status, PAUSED) then
    # costs a poll a minute, not twelve, until it is given up (`Tracker.scan_complete`).
    cap = min(POLL_MAX_S, max(5.0, (now - target.started) / 10))
    if target.expected_s is None:
        return min(cap, floor * 1.3 ** min(target.polls, 20))  # (1.3**20 > 5 already)
    # Sparse until the earliest plausible end, dense from there to a little past the expected
    # end, then backing off towards the cap for a run that overstays.
    earliest = target.started + (target.earliest_s or target.expected_s * 0.5)
    if now < earliest:
        return max(floor, min((earliest - now) / 2, 30.0))
    overdue = now - (target.started + target.expected_s)
    if overdue <= 0:
        return floor
    return max(floor, min(cap, floor + overdue / 10))


def scan_ready_at(state: PolicyState, target: ScanTarget) -> float:
    """The earliest moment a scenario's logs may be read again: `--interval` after the last
    read, and not before the back-off after a failed one ends."""
    return max(target.last_scan + state.floor_s, target.not_before)


def poll_due(state: PolicyState, target: PollTarget) -> float:
    if target.polls == 0:
        return target.started
    return target.last_polled + poll_interval(state, target, target.last_polled)


def population_rate(state: PolicyState, now: float) -> float:
    """The mean base rate of the scenarios read so far (the guess for one never read)."""
    rates = [t.rate(now) for t in state.scans.values() if t.scanned_once]
    return sum(rates) / len(rates) if rates else PRIOR_RUNS / PRIOR_SPAN_S


def waiting(sure: float, waited_s: float) -> float:
    """The worth of a read that reports a run known to wait (`sure`: how sure), raised by how
    long it has waited, so that such runs are served oldest first whatever their base rates."""
    return sure + SURE_AGE_WEIGHT * max(0.0, waited_s)


def sure_signal(target: ScanTarget, now: float) -> bool:
    """A run is known to wait in this scenario: a scheduled run's moment passed, or a counter
    grew past the runs found."""
    return (target.is_due(now) and target.slot_reliability >= 0.5) or target.proves_run


def unlocated(state: PolicyState, now: float) -> float:
    """Runs the base rates expect in scenarios nothing points at, and where a blind read would
    more likely find nothing (where it would find one, that read is the better pick)."""
    total = 0.0
    for target in state.scans.values():
        if target.scanned_once and not target.in_flight and target.signal is None:
            expected = target.base_news(now, state.recall)
            total += expected if expected < 0.5 else 0.0
    return total


def round_robin_s(state: PolicyState) -> float:
    """How long a round-robin over the scenarios takes at the budget's rate."""
    return max(1.0, len(state.scans) / max(state.rate_per_s, 1e-6))


def scan_news(state: PolicyState, target: ScanTarget, now: float,
              population: float | None = None, *, first_pass_done: bool = False) -> float:
    """Expected new runs a read of this scenario's logs finds now."""
    if not target.scanned_once:
        # Never read: as busy as the scenarios read so far, since the watch began; at least
        # FRESH_NEWS, for its first read also learns its history.
        rate = population if population is not None else population_rate(state, now)
        news = max(FRESH_NEWS, rate * max(0.0, now - target.since))
    else:
        news = target.base_news(now, state.recall)
    if first_pass_done and not target.scheduled:
        # Unread (and not vouched for by a trusted sweep) for longer than a round-robin over
        # every scenario would leave it: whatever its base rate, a run there may be waiting
        # longer than the simplest loop would let it. It takes its turn among runs known to
        # wait, so the tail is never worse than that loop's. (Once every scenario not on a known
        # schedule was read: until then first reads go by their own worth, which lets runs
        # known to wait go first; a scenario on a known schedule is read when its runs are due,
        # its first read then too, so it does not hold the bound back.)
        overdue = target.age(now, state.recall) - round_robin_s(state)
        if overdue > 0:
            news = max(news, waiting(1.0, overdue))
    if target.signal is not None and target.hot(now):
        # A counter that grew past the runs found proves a run not found yet: worth a sure run
        # (its retries back off if the log lags); other signals are worth their precision.
        if target.proves_run:
            # The run it proves, besides what the base rate expects; among runs known to wait,
            # the one that has waited longest first (it is the tail of the latency).
            news += waiting(1.0, now - target.pointed_at)
        else:
            news = max(news, state.signals[target.signal].precision)
    # A run began at nextExec and may be over already: short runs need not wait for the sure
    # moment (the long side of recent runs) where a read is cheap enough (`visible_chance` is
    # zero but in the time between the run's start and that moment).
    news = max(news, target.visible_chance(now))
    if target.due_at is not None and now >= target.due_at:  # (`is_due`, spelled out for mypy)
        # A run began at nextExec: its log will show; a miss only says "not yet" (the retries
        # back off). Worth a sure run, besides what the base rate expects; a look again after
        # a miss, a likely one. Either as far as this scenario's slots list runs at all.
        sure = 1.0 if target.due_misses == 0 else DUE_RETRY_NEWS
        news += waiting(sure * target.slot_reliability, now - target.due_at)
    return news


def sweep_every(state: PolicyState) -> float:
    """The shortest gap between two sweeps of one group that keeps them within their share."""
    pages = sum(g.pages for g in state.sweeps.values()) or 1
    return max(SWEEP_MIN_S, pages / max(state.rate_per_s * SWEEP_SHARE, 1e-6))


def sweep_interval(state: PolicyState, now: float) -> float:
    """The gap between sweeps of one group that their earnings justify: the full share while a
    sweep earns at least WORTH_FULL news per request beyond the base rate, less often as it
    earns less."""
    full = max(SWEEP_MIN_S, sweep_every(state))
    worth = state.signals["sweep"].worth(now)
    return min(SWEEP_MAX_S, full / min(1.0, max(worth, 1e-3) / WORTH_FULL))


def queue_read_gap(state: PolicyState) -> float:
    """Seconds between two queue-depth reads (of any scenarios) at their full share."""
    return 1.0 / max(state.rate_per_s * TRIGGERS_SHARE, 1e-6)


def triggers_every(state: PolicyState, now: float = 0.0) -> float:
    """The gap between two queue-depth reads of one webhook scenario that they justify."""
    hooks = sum(1 for t in state.scans.values() if t.hooked) or 1
    full = max(TRIGGERS_MIN_S, hooks * queue_read_gap(state))
    worth = state.signals["queue"].worth(now)
    return full / min(1.0, max(worth, 1e-3) / WORTH_FULL)


def decide(state: PolicyState, now: float) -> Decision:
    """The read worth the next free request slot. Pure: reads `state`, changes nothing."""
    if state.urgent:
        return Decision(state.urgent[0], 0.0, math.inf)
    wait = 3600.0
    if state.timed:
        when, _, action = state.timed[0]
        if when <= now:
            return Decision(action, 0.0, math.inf)
        wait = when - now
    # Only this watch's own reads count: a budget shared with other watches (the SSE server's
    # catch-ups) always has someone waiting.
    if state.outstanding() > LOOKAHEAD:
        # Enough is queued for the budget already; decide when a slot is nearer.
        return Decision(None, min(wait, 0.1))

    best: Action | None = None
    best_news = -1.0

    def consider(action: Action, news: float) -> None:
        nonlocal best, best_news
        if news > best_news:
            best, best_news = action, news

    # Status polls of runs seen in flight.
    poll_news = max(0.3, state.signals["poll"].precision)
    for poll in state.polls.values():
        if poll.in_flight:
            continue
        due = poll_due(state, poll)
        if due <= now:
            # Most overdue first among polls.
            value = poll_news + min(now - due, 60.0) * 1e-4
            scan = state.scans.get(poll.scenario_id)
            if not poll.by_logs or poll.polls > LOG_FOLLOWS_MAX or scan is None:
                consider(Action("poll", poll.scenario_id, poll.execution_id,
                                priority=Priority.HIGH), value)
                continue
            if scan.in_flight or not state.rescans:
                continue  # a scan in flight sees it anyway; --no-follow reads each once
            ready = scan_ready_at(state, scan)
            if now < ready:
                wait = min(wait, ready - now)
                continue
            consider(Action("scan", poll.scenario_id, poll.execution_id,
                            priority=Priority.HIGH, signal="poll"), value)
        else:
            wait = min(wait, due - now)
    later_news = min(LATER_MAX, max(1e-3, (now - state.later_since) / LATER_RAMP_S))
    if not state.scanning:
        if best is None and state.later:
            return Decision(state.later[0], 0.0, later_news)
        return Decision(best, 0.0 if best is not None else max(wait, 0.01), max(best_news, 0))

    # Log scans.
    population = population_rate(state, now)
    first_pass_done = all(t.scanned_once for t in state.scans.values() if not t.scheduled)
    sure_waiting = False  # a scan that a sure signal (a run known to wait) asks for
    for target in state.scans.values():
        if target.in_flight:
            continue
        if not state.rescans and target.scanned_once:
            # --no-follow reports what ended before its scans: a run that ends later is the
            # next invocation's (its cursor keeps the floor below it). Scanning again would
            # chase runs that keep ending, and a busy scenario could keep the watch from ever
            # being caught up.
            continue
        ready = scan_ready_at(state, target)
        if now < ready:
            wait = min(wait, ready - now)
            continue
        if target.due_at is not None and now < target.due_at:
            wait = min(wait, target.due_at - now)
        news = scan_news(state, target, now, population, first_pass_done=first_pass_done)
        sure_waiting = sure_waiting or (news >= 1.0 and sure_signal(target, now))
        signal: SignalName | None = None
        if target.is_due(now):
            signal = "due"
        elif target.hot(now):
            signal = target.signal
        consider(
            Action("scan", target.scenario_id,
                   priority=Priority.HIGH, signal=signal),
            news,
        )

    if state.following:
        # Sweeps: at their full share while they earn at least WORTH_FULL news per request
        # beyond the base rate, less often as they earn less; one a minute whatever they earn.
        recent = sum(1 for t in state.sweep_times if t > now - 60.0)
        # A handful of scenarios: scanning each in turn finds a run as soon as a sweep and the
        # scan it prompts would; sweeps then only keep flags and nextExec fresh.
        few = len(state.scans) < SWEEP_MIN_SCENARIOS
        room = not few and recent < max(1.0, SWEEP_SHARE * state.rate_per_s * 60)
        every = sweep_interval(state, now)
        for group in state.sweeps.values():
            if group.in_flight:
                continue
            gap = now - group.last
            if gap >= SWEEP_MAX_S or (gap >= every and room):
                # At its cadence a sweep goes first, unless runs known to wait are queued: it
                # would only point at more of them; it then takes its turn as one more.
                queued = sure_waiting and gap < SWEEP_MAX_S
                value = waiting(1.0, gap - every) if queued else math.inf
                consider(Action("sweep", group.group, priority=Priority.HIGH), value)
            elif gap >= SWEEP_MIN_S and not sure_waiting and state.recall > 0 and not few:
                # Between its turns, a slot nothing sure wants: a sweep locates the runs the
                # base rates expect, as far as sweeps are found right (`recall`); a blind scan
                # finds only its own scenario's.
                consider(Action("sweep", group.group, priority=Priority.HIGH),
                         state.recall * unlocated(state, now) / len(state.sweeps))
                wait = min(wait, max(every - gap, 0.05))
            else:
                wait = min(wait, max(every - gap, 0.05) if room else 1.0)
        # Queue depths of webhook scenarios, likewise by what they earn.
        if state.triggers_readable and not state.triggers_in_flight:
            for target in state.scans.values():
                if not target.hooked:
                    continue
                if now < target.triggers_after:
                    wait = min(wait, target.triggers_after - now)
                    continue
                consider(Action("triggers", target.scenario_id, priority=Priority.HIGH), math.inf)

    if state.later:
        consider(state.later[0], later_news)
    if best is None:
        return Decision(None, max(wait, 0.01))
    return Decision(best, 0.0, best_news)
