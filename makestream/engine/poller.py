"""The schedule: the policy's state, fed by the watch, and the bookkeeping of what is in flight.

`engine.policy.decide` chooses; `Schedule` holds the `PolicyState` it chooses from, records a
pick as dispatched (`next`), and takes back what each read learned (`scanned`, `polled`,
`swept`, `queue_read`, `heat`, `scan_at`). It holds no Make I/O: `Schedule.next()` hands an
action to a worker of `engine.watch`, which performs it.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterator

from makestream.engine.history import History
from makestream.engine.policy import (
    DEMAND_SPAN_S,
    LOG_FOLLOWS_MAX,
    SWEEP_MAX_S,
    TRIGGERS_MIN_S,
    Action,
    ActionKind,
    PolicyState,
    PollTarget,
    ScanTarget,
    SignalName,
    SweepGroup,
    decide,
    poll_interval,
    queue_read_gap,
    triggers_every,
)

__all__ = ["Action", "ActionKind", "PollTarget", "ScanTarget", "Schedule"]

HOT_FOR_S = 60.0  # a soft signal no scan answered within this long is stale (see ScanTarget.hot)
SIGNAL_RETRIES = 3  # a signaled scan that finds nothing looks again after 1, 2, 3 s
DUE_BACKOFF = 0.3  # a due scan that finds nothing looks again after 30 % of the wait so far
DUE_GIVE_UP_S = 60.0  # ... until the run has had this long (or three median runs)
# A run found that had ended this long before a sweep saw its scenario's counters still: the
# sweep was wrong (counters updated late), not merely ahead of Make's log.
CLEAR_SLACK_S = 5.0
# Runs that ended at most this long before a scenario's first counter reading may be missing from
# it (counters updated late): growth they explain points at no run.
EARLY_S = 60.0
TIMELY_S = 10.0  # a signal's find earns in full when the run ended at most this long before
# The learned lag of due scans moves up this much on a first look that misses, down a fifth of it
# on one that finds the run: it settles where about one first look in six misses.
DUE_LAG_STEP = 0.5
DUE_LAG_MAX = 15.0


class Schedule(PolicyState):
    """The policy's state plus the steps that change it. All times are clock seconds."""

    # -- feeding ---------------------------------------------------------------------------------

    def follow_up(self, action: Action) -> None:
        self.urgent.append(action)

    def watch_execution(
        self, scenario_id: int, execution_id: str, *, now: float, history: History,
        started: float | None = None, by_logs: bool = False,
    ) -> None:
        """Poll a running execution; `history` (the scenario's past durations) shapes when.
        `by_logs`: it was seen in flight in its scenario's logs just now, and is followed by
        reading them again (`PollTarget.by_logs`), next when its end is plausible."""
        if execution_id not in self.polls:
            expected, earliest = history.percentile(50), history.percentile(10)
            self.polls[execution_id] = PollTarget(
                scenario_id, execution_id, started if started is not None else now,
                expected / 1000 if expected else None, earliest / 1000 if earliest else None,
                polls=int(by_logs), last_polled=now if by_logs else 0.0, by_logs=by_logs,
            )

    def forget_execution(self, execution_id: str) -> None:
        self.polls.pop(execution_id, None)

    def logs_read(self, scenario_id: int, now: float, *, followed: str | None = None) -> None:
        """A scan read this scenario's logs: every run followed there was looked at just now
        (its next look goes by the timetable from here, not at once). `followed`: the run the
        scan was sent for, whose look was counted when it was sent.

        Past a run's expected end a look counts towards LOG_FOLLOWS_MAX whatever sent it: an
        entry that never turns terminal in a scenario read often for other reasons is then
        settled by its status too, not looked at forever."""
        for target in self.polls.values():
            if (not target.by_logs or target.scenario_id != scenario_id or target.in_flight
                    or target.polls > LOG_FOLLOWS_MAX):
                # (Past LOG_FOLLOWS_MAX it is followed by its status, on that timetable: a
                # listing that still shows it in flight must not put the next poll off.)
                continue
            target.last_polled = now
            overdue = now > target.started + (target.expected_s or 0.0)
            if target.execution_id != followed and overdue:
                target.polls += 1

    def adopt(self, scenario_id: int, now: float, *, fresh: bool, hooked: bool) -> ScanTarget:
        target = self.scans.get(scenario_id)
        if target is None:
            # The listing that resolved it read its counters just now.
            target = self.scans[scenario_id] = ScanTarget(scenario_id, fresh=fresh, since=now,
                                                          counted_at=now, adopted_at=now)
        if hooked and not target.hooked:
            # The first queue reads after the first pass, one at a time at the queue reads'
            # full share (TRIGGERS_SHARE of the rate), as later ones go. (Every first read due
            # within the first minute cost 50 webhook scenarios 50 slots back to back, 65 s of
            # the budget, just when the first pass needs it.)
            hooks = sum(1 for t in self.scans.values() if t.hooked)
            target.triggers_after = now + TRIGGERS_MIN_S + hooks * queue_read_gap(self)
        target.hooked = hooked
        return target

    def heat(
        self, scenario_id: int, now: float, *, signal: SignalName = "sweep",
        for_s: float = HOT_FOR_S,
    ) -> None:
        """Something suggests this scenario ran or changed: its next scan may find news."""
        target = self.scans.get(scenario_id)
        if target is not None:
            if not target.hot(now):
                target.pointed_at = now  # (a pointer already waiting keeps its age)
            target.signal = signal
            target.hot_until = max(target.hot_until, now + for_s)
            target.heated_at = now

    def cleared(self, scenario_id: int, now: float) -> None:
        """A sweep saw this scenario's counters where the runs found so far put them."""
        target = self.scans.get(scenario_id)
        if target is not None and target.owed_ops <= 0 and not target.lags(now, CLEAR_SLACK_S):
            # (with runs still owed, "nothing moved since" says nothing about them; nor does it
            # where the counter lags runs found well before: see `counter_moved`)
            target.cleared_at = now

    def found_ops(self, scenario_id: int, operations: int | None, ended: float) -> None:
        """A run was found that ended by `ended` (or earlier), costing `operations`."""
        target = self.scans.get(scenario_id)
        if target is None:
            return
        target.found_ended = max(target.found_ended, ended)
        if target.overrun_seen is not None and ended >= target.overrun_seen:
            target.overrun_seen = None  # the run that overran its interval, found
        if ended + CLEAR_SLACK_S < target.cleared_at:
            # A sweep said "nothing new here" well after this run had ended: the counters lag
            # the runs, and sweeps deserve less trust (see `scanned`).
            target.cleared_wrongly = True
        if operations and ended >= target.adopted_at:
            # (a run that ended before the first reading is in the counter's baseline)
            if target.owed_ops - operations < 0 <= target.owed_ops:
                target.ahead_since = ended
            target.owed_ops -= operations

    def listed(self, scenario_id: int, runs: list[tuple[str, int, float]]) -> None:
        """Runs (id, operations, ended by) a scan listed: those that ended within EARLY_S before
        the scenario was adopted may be missing from its first counter reading."""
        target = self.scans.get(scenario_id)
        if target is None:
            return
        for execution_id, operations, ended in runs:
            if (target.adopted_at - EARLY_S <= ended < target.adopted_at and operations
                    and execution_id not in target.explained):
                target.early[execution_id] = (operations, ended)

    def explain(self, scenario_id: int, now: float | None = None) -> bool:
        """A scan a counter's growth prompted found no new run: count runs that ended before
        adoption (listed, latest first: the likeliest to be missing from the first reading)
        against what the counter is owed, until it is owed nothing; each once. True if the
        growth was so explained. With `now` (growth a sweep saw then, unscanned): only runs
        that ended within EARLY_S before it, the longest lag allowed for; an older one was in
        the first reading, or counted since."""
        target = self.scans.get(scenario_id)
        if target is None:
            return False
        for execution_id, (operations, ended) in sorted(
            target.early.items(), key=lambda item: -item[1][1]
        ):
            if target.owed_ops <= 0 or (now is not None and now - ended > EARLY_S):
                break
            del target.early[execution_id]
            target.explained.add(execution_id)
            target.owed_ops -= operations
            if ended < target.adopted_at - CLEAR_SLACK_S:
                # The first reading did not show a run that had ended well before it: the
                # counters lag the runs (see `counter_moved`).
                self.counters_lag = True
        return target.owed_ops <= 0

    def counter_moved(self, scenario_id: int, delta: int, now: float) -> bool:
        """A sweep read `operations`, grown by `delta` since the last reading: does it point at
        a run not found yet?"""
        target = self.scans.get(scenario_id)
        if target is None:
            return False
        first = not math.isfinite(target.counted_at)
        target.counted_at = now
        if first:
            return False
        target.owed_ops += max(0, delta)
        if delta > 0 and self.counters_lag:
            # Counters have been seen to lag the runs: growth this soon after adoption is most
            # likely the runs that ended just before it, listed already (`listed`), reaching
            # the counter late. They explain it without a scan; only growth beyond them points.
            self.explain(scenario_id, now)
        if target.owed_ops >= 0:
            target.ahead_since = float("inf")
        elif target.lags(now, CLEAR_SLACK_S) and self.sweeps:
            # A run found well before this reading is still not in the counter: counters lag
            # the runs (or are not kept up to date), and this sweep's "nothing new" is worth
            # nothing here. It costs the sweeps as a request spent on nothing would, so that
            # they shrink to their floor where counters cannot locate runs.
            self.signals["sweep"].paid_for(now)
        if target.owed_ops <= 0:
            target.owed_ops = max(target.owed_ops, -1_000_000)
            return False
        return delta > 0

    def scan_not_before(self, scenario_id: int, when: float) -> None:
        """Back off a scenario whose scan failed, so that it does not eat the budget."""
        target = self.scans.get(scenario_id)
        if target is not None:
            target.not_before = max(target.not_before, when)

    def first_read(self, scenario_id: int, latest_end: float) -> None:
        """A scenario's first read listed runs that ended by `latest_end` (news or history).
        One that ended after the scheduled run a due scan waits for began is that run: the due
        scan is answered, with no retry and no lesson for `due_lag` (its run may have ended
        before the watch began)."""
        target = self.scans.get(scenario_id)
        if (target is not None and target.due_at is not None and target.began is not None
                and latest_end >= target.began):
            target.due_at, target.due_misses = None, 0

    def scan_at(self, scenario_id: int, when: float, *, began: float | None = None,
                sure: bool = True) -> None:
        """A scheduled run (begun at `began`) should be over and its log visible at `when`
        (plus the lag learned between a run's expected end and its log: `due_lag`). Not `sure`
        (it may have ended before the watch began): worth a likely run, as a look again after a
        miss is, and its first look teaches `due_lag` nothing."""
        target = self.scans.get(scenario_id)
        when += self.due_lag
        if (target is not None and began is not None and target.began is not None
                and (began < target.began or (began == target.began and target.due_at is None))):
            # A run the schedule already rolled past (its due scan armed then, and answered or
            # replaced by the next run's), seen by a sweep only now: looking again would find
            # nothing, teach `due_lag` a miss and take the next run's due scan's place.
            return
        if target is not None and (target.due_at is None or when < target.due_at):
            target.due_at = when
            target.due_misses = 0 if sure else 1
            if began is not None:
                target.began = began

    def roll(self, now: float) -> None:
        """Scheduled runs that began by now: scan after their expected end."""
        for target in self.scans.values():
            if target.next_exec is not None and target.next_exec <= now:
                due = target.roll(now)
                if due is not None:
                    self.scan_at(target.scenario_id, max(now, due))

    def learned_history(self, scenario_id: int, runs: int, span_s: float) -> None:
        """The first read saw `runs` runs over the `span_s` seconds before the watch."""
        target = self.scans.get(scenario_id)
        if target is not None and runs > 0 and span_s > 0:
            target.runs += runs
            target.since -= span_s

    def slots_listed(self, scenario_id: int, runs: int, window_s: float) -> None:
        """The first read listed `runs` runs over the last `window_s` seconds: on an interval
        schedule, the slots of that window that listed none were check runs (or the scenario
        was off), and its due scans are worth as much as its slots list runs."""
        target = self.scans.get(scenario_id)
        if target is None or not target.interval or window_s < target.interval:
            return
        slots = int(window_s // target.interval)
        target.slots_kept += min(runs, slots)
        target.slots_empty += max(0, slots - runs)

    def sweep_groups(self, groups: dict[int, int], now: float) -> None:
        """The groups a sweep lists (0: the organization, else team ids) and their page counts;
        the listing that resolved the targets counts as the first sweep."""
        for group, pages in groups.items():
            current = self.sweeps.get(group)
            if current is None:
                self.sweeps[group] = SweepGroup(group, pages, last=now)
            else:
                current.pages = pages
        for group in [g for g in self.sweeps if g not in groups]:
            del self.sweeps[group]

    # -- choosing --------------------------------------------------------------------------------

    def poll_interval(self, target: PollTarget, now: float) -> float:
        return poll_interval(self, target, now)

    def next(self, now: float) -> tuple[Action | None, float]:
        """The most valuable action now (marked dispatched), or None and how long to wait."""
        self.roll(now)
        decision = decide(self, now)
        action = decision.action
        if action is None:
            return None, decision.wait
        self._dispatch(action, now)
        return action, 0.0

    def _dispatch(self, action: Action, now: float) -> None:
        if self.urgent and self.urgent[0] is action:
            self.urgent.popleft()
            return
        if self.timed and self.timed[0][2] is action:
            heapq.heappop(self.timed)
            return
        if self.later and self.later[0] is action:
            self.later.popleft()
            return
        match action.kind:
            case "poll":
                poll = self.polls[action.execution_id]
                poll.in_flight = True
                poll.polls += 1
            case "scan":
                target = self.scans[action.scenario_id]
                target.in_flight = True
                target.dispatched_base = 1 - math.exp(-target.base_news(now, self.recall))
                followed = self.polls.get(action.execution_id) if action.signal == "poll" else None
                if followed is not None:
                    followed.in_flight = True
                    followed.polls += 1
            case "sweep":
                group = self.sweeps[action.scenario_id]
                group.in_flight = True
                group.last = now
                self.sweep_times.append(now)
                while self.sweep_times and self.sweep_times[0] <= now - SWEEP_MAX_S:
                    self.sweep_times.popleft()
                self.signals["sweep"].paid_for(now, group.pages)
            case "triggers":
                target = self.scans[action.scenario_id]
                target.triggers_after = now + triggers_every(self, now)
                self.triggers_in_flight = True
                self.signals["queue"].paid_for(now)

    # -- results ---------------------------------------------------------------------------------

    def polled(self, execution_id: str, now: float, *, ended: bool | None = None) -> None:
        target = self.polls.get(execution_id)
        if target is not None:
            target.in_flight = False
            target.last_polled = now
        if ended is not None:
            self.signals["poll"].outcome(now, ended, 0.0)

    def scanned(
        self, scenario_id: int, started: float, now: float, *, ok: bool, found: int = 0,
        signal: SignalName | None = None,
    ) -> None:
        """A scan ended; `found`: new runs it revealed (ended or in flight)."""
        target = self.scans[scenario_id]
        target.in_flight = False
        if not ok:
            return
        target.last_scan = started
        target.scanned_once = True
        target.runs += found
        self.found.append((now, found))
        while self.found and self.found[0][0] < now - DEMAND_SPAN_S:
            self.found.popleft()
        # A run found early where a scheduled run had begun is most likely that run: no test of
        # the sweeps either (the due-scan rule below).
        after_start = target.began is not None and target.found_ended > target.began
        early_due = (target.due_at is not None and started < target.due_at and found > 0
                     and after_start)
        if found and self.sweeps and signal not in ("due", "poll") and not early_due:
            # (a scheduled run found where its schedule said, or one followed in flight, is no
            # test of the sweeps)
            pointed = float(target.signal == "sweep" and target.heated_at <= started
                            and not target.cleared_wrongly)
            if pointed and math.isfinite(target.found_ended):
                # A pointer that came long after the run ended (counters updated late) found
                # it no sooner than blind reads would have: trusting such sweeps to vouch for
                # "nothing new" would hold those reads back, so it counts in proportion.
                pointed *= _timely(target.pointed_at - target.found_ended)
            self.recall = 0.9 * self.recall + 0.1 * pointed
        if target.cleared_wrongly:
            # A sweep that vouched for a scenario where a run had ended costs more trust than a
            # run it merely did not point at: blind reads were held back on its word.
            self.recall *= 0.5
        target.cleared_wrongly = False
        answered = target.heated_at <= started
        if signal in ("sweep", "queue") and answered:
            if not found:
                # A scan a signal prompted that found nothing is one more request the signal
                # cost: where counters lag or phantom growth sends scans after nothing, the
                # signal's worth falls with them, and sweeps give their share back to reads.
                self.signals[signal].paid_for(now)
            explained = signal == "sweep" and target.owed_ops <= 0
            if not found and not explained and target.signal_misses < SIGNAL_RETRIES:
                # A counter can move before the log entry shows: look again shortly.
                target.signal_misses += 1
                target.not_before = now + 1.0 * target.signal_misses
                return
            if not found and signal == "sweep":
                # Growth no run explains (operations counted differently, a run older than
                # EARLY_S): forgiven, or it would prompt these retries again at every later
                # move of the counter. (What runs did explain is kept: it is growth to come.)
                target.owed_ops = min(target.owed_ops, 0)
            # A sweep that points at a run long after it ended (counters updated late) found
            # it no sooner than a blind read would have: it earns in proportion.
            late = started - target.found_ended if math.isfinite(target.found_ended) else 0.0
            self.signals[signal].outcome(now, found > 0, target.dispatched_base, _timely(late))
        # A due look answers its run only with a run that ended after the scheduled start: one
        # that ended before is the run before (it overran its interval, or ended just before the
        # watch began), and the scheduled run is still to come.
        # (Nothing ended found, only runs in flight: the scheduled run, begun.)
        slot_run = found > 0 and (after_start or target.began is None
                                  or not math.isfinite(target.found_ended))
        target.found_ended = float("-inf")
        target.signal_misses = 0
        if early_due:
            # Read early (another signal, its base rate, the chance it is over) and it found a
            # run that ended after the scheduled start: that is the run the due scan would look
            # for (one scheduled scenario's runs do not overlap).
            target.due_at, target.due_misses = None, 0
            target.slots_kept += 1
        if target.due_at is not None and started >= target.due_at:
            if target.began is None:
                target.began = started
            waited = now - target.began
            # The first look at the expected moment: a hit says logs may show sooner than
            # that, a miss that they show later (Make's log lag, longer runs). Where slots were
            # seen to list nothing (check runs) a miss may be one more of those, which would
            # push every scenario's due scans later: there the lesson waits for a look again
            # to find the run.
            if target.due_misses == 0:
                if slot_run:
                    self.due_lag = max(0.0, self.due_lag - DUE_LAG_STEP / 5)
                late = not slot_run and not target.slots_empty
            else:
                late = slot_run and target.slots_empty > 0
            if late:
                self.due_lag = min(DUE_LAG_MAX, self.due_lag + DUE_LAG_STEP)
            if slot_run:
                self.signals["due"].outcome(now, True, target.dispatched_base)
                target.due_at, target.due_misses = None, 0
                target.slots_kept += 1
            elif waited < max(DUE_GIVE_UP_S, 3 * target.expected_s) * target.slot_reliability:
                # The log may lag the run's end, or the run may last longer: look again after
                # a third of the time it has taken so far (at least a second); for less long
                # where slots often list nothing.
                target.due_misses += 1
                target.due_at = now + max(1.0, DUE_BACKOFF * waited)
            else:
                self.signals["due"].outcome(now, False, target.dispatched_base)
                target.due_at, target.due_misses = None, 0
                target.slots_empty += 1
        if answered or (found and target.signal == "sweep" and target.owed_ops <= 0):
            # The scan answered whatever made the scenario hot (or, sent before the sweep that
            # pointed here, found the runs that explain the counter's growth).
            target.signal, target.hot_until = None, 0.0

    def swept(self, group: int) -> None:
        sweep = self.sweeps.get(group)
        if sweep is not None:
            sweep.in_flight = False

    def queue_read(self, *, readable: bool = True) -> None:
        self.triggers_in_flight = False
        if not readable:
            self.triggers_readable = False

    def fresh(self) -> Iterator[int]:
        """Scenarios not read yet."""
        return (sid for sid, t in self.scans.items() if not t.scanned_once)


def _timely(late: float) -> float:
    """How much of a find a signal deserves when it came `late` seconds after the run ended:
    all of it within TIMELY_S, in proportion beyond."""
    return min(1.0, TIMELY_S / late) if late > TIMELY_S else 1.0
