"""The shared request budget: how many requests makestream may send to one Make organization.

Make limits requests per organization per minute (`license.apiLimit`: Core 60, Pro 120, ...), and
every token and integration of the organization draws on the same limit. makestream keeps to a
`share` of it (80 % by default) so that other integrations keep working, and so that a 429 is
rare rather than routine.

Three rules, all in clock time (see `makestream.clock`):

- **Hard cap.** Never more than floor(share x api_limit) sends in any sliding 60 s window. Make does
  not say whether its window is fixed or sliding; a sliding cap is safe under both.
- **Pacing.** A token bucket with a burst of about three seconds' worth spreads requests over
  the minute instead of spending the whole cap in its first second. It refills at the cap less
  the burst, so that a burst never runs into the hard cap a minute later and stalls everyone.
  Its last token is kept for `URGENT` callers: the follow-up of a run that just ended goes at
  once, not a slot later, and whoever it overtook waits that slot instead (the rate is the same).
- **Priority.** Waiters are served by `Priority`, then first come first served, so a follow-up
  for a run that just ended never queues behind an idle scan. A waiter moves up one level for
  every `AGING_S` it waits, so nothing starves.

After a 429 every caller pauses — for `Retry-After` when Make sends one, else for 2 s, doubling
with every 429 that follows without a success in between, up to a full minute — and the rate is
halved. It recovers by 1 % of nominal with every answer that is not a 429 and by 10 % for every
minute without one, so a spent organization limit is waited out with a handful of probes while a
stray 429 costs seconds, not minutes.

Several processes that talk to the same organization share one budget through a
`SharedLedger` (`makestream.make.ledger`, attached with `share_with`): the hard cap then counts
every process's sends, a 429 seen by one pauses all, and each paces itself at the rate divided
among the processes that sent in the last minute. `share` is then makestream's share of the
limit in all, not per process. Priorities order the callers of one process only.
"""

from __future__ import annotations

import heapq
import itertools
import math
import time
from collections import deque
from dataclasses import dataclass, field
from enum import IntEnum

import anyio

from makestream.clock import Clock
from makestream.limits import RETRY_AFTER_MAX_S
from makestream.make.ledger import Claim, SharedLedger

WINDOW_S = 60.0
# Make says "wait for one minute for the limit period to reset" and sends no documented
# Retry-After. A full window is enough whichever window Make uses, but a lone 429 (another
# integration's burst at the end of a fixed window) would then stall every watch for a minute:
# probe early and double the pause while 429s keep coming, up to the full window.
FIRST_PAUSE_S = 2.0
DEFAULT_PAUSE_S = 60.0
RECOVERY_PER_SUCCESS = 0.01
AGING_S = 15.0
# A Retry-After beyond this is cut to it (makestream.limits.RETRY_AFTER_MAX_S): a garbled or
# hostile header must not stall every watch for an hour. The client reports the cut.
MAX_PAUSE_S = RETRY_AFTER_MAX_S
BURST_S = 3.0
RECOVERY_PER_CLEAN_MINUTE = 0.1
MIN_RATE_FACTOR = 0.125
# Sleeping at least this long guarantees progress when float rounding leaves a sliver of delay.
_MIN_SLEEP_S = 0.001
_EPSILON = 1e-9


class Priority(IntEnum):
    """Who goes first when requests queue for the budget (lower value first)."""

    URGENT = 0  # a follow-up for a run that just ended
    HIGH = 1  # a run near its expected end, a schedule that is due
    NORMAL = 2
    LOW = 3  # idle scans, history


@dataclass(frozen=True)
class BudgetSnapshot:
    """The budget's state at one moment, for `api.throttled` events, metrics and the live view."""

    limit_per_min: int  # the organization's limit (license.apiLimit or --api-limit)
    rate_per_min: float  # what makestream currently allows itself, after any tightening
    used_last_minute: int
    remaining: int  # sends still allowed in the current 60 s window (0 during a pause)
    throttled_until: float | None  # clock epoch seconds, while a 429 pause lasts
    share: float
    waiting: int = 0  # callers queued in acquire()
    processes: int = 1  # makestream processes sharing this budget (see share_with)
    total_rate_per_min: float | None = None  # what all of them may send (None: = rate_per_min)


@dataclass(order=True)
class _Waiter:
    priority: int
    seq: int
    wake: anyio.Event = field(compare=False)
    since: float = field(default=0.0, compare=False)  # when it reached its level (real time)


class Budget:
    """One organization's request budget, shared by every task of the process."""

    def __init__(self, api_limit: int = 60, *, clock: Clock | None = None, share: float = 0.8):
        if not 0 < share <= 1:
            raise ValueError("budget share must be in (0, 1]")
        self.clock = clock if clock is not None else Clock()
        self.share = share
        self._api_limit = _checked(api_limit)
        # All internal times are clock.monotonic() readings: small numbers keep float error small.
        now = self.clock.monotonic()
        self._sends: deque[float] = deque()
        self._waiters: list[_Waiter] = []
        self._seq = itertools.count()
        self._sleepers: set[anyio.CancelScope] = set()
        self._tokens = float(self._burst(self._nominal()))
        self._refilled_at = now
        self._paused_until: float | None = None
        self._factor_base = 1.0  # the rate factor set by the last 429
        self._clean_since = now  # when the last 429 pause ended (recovery counts from here)
        self._strikes = 0  # 429s since the last answer that was not a 429
        self._ledger: SharedLedger | None = None
        self._shared = Claim(0.0, 1, 1, 0)  # what the ledger said last
        self._others = 0  # sends of the other processes in the window, when it said so
        self._pause_to_share: float | None = None  # a 429 pause the ledger has yet to hear of

    @property
    def api_limit(self) -> int:
        return self._api_limit

    def set_limit(self, api_limit: int) -> None:
        """Adopt the organization's real limit (read from `license.apiLimit`)."""
        self._api_limit = _checked(api_limit)
        self._tokens = min(self._tokens, float(self._burst(self._rate(self.clock.monotonic()))))
        self._interrupt()

    def share_with(self, ledger: SharedLedger | None) -> None:
        """Count this budget's sends in `ledger` with those of the other processes that use it
        (None: keep to this process's own count)."""
        self._ledger = ledger
        self._shared = Claim(0.0, 1, 1, 0)
        self._others = 0
        self._interrupt()

    @property
    def ledger(self) -> SharedLedger | None:
        return self._ledger

    async def share_pause(self) -> None:
        """Tell the ledger of the 429 pause `throttled` began, so every process sharing it
        waits too (the client calls this right after `throttled`)."""
        until, self._pause_to_share = self._pause_to_share, None
        if until is not None and self._ledger is not None:
            await self._ledger.pause(self.clock.monotonic(), until)

    async def acquire(self, priority: Priority = Priority.NORMAL) -> None:
        """Wait until one request may be sent now, then count it as sent."""
        me = _Waiter(int(priority), next(self._seq), anyio.Event(), time.monotonic())
        heapq.heappush(self._waiters, me)
        if self._waiters[0] is me:
            # Whoever was first is sleeping on a delay computed for itself: make it re-check.
            self._interrupt()
        served = False
        try:
            while True:
                if self._waiters[0] is not me:
                    # No await between the check and the wait, so no wake-up can be missed.
                    me.wake = anyio.Event()
                    # Its age counts from when it reached its level, not from this wait: a
                    # waiter woken each time it is first for a moment (and overtaken again by a
                    # more urgent arrival) must still move up.
                    # (Counted in real time, as the clock's AGING_S converts to: an instant
                    # virtual clock in tests ages nobody.)
                    aged = me.since + self.clock.real(AGING_S) - time.monotonic()
                    if aged > 0:
                        with anyio.move_on_after(aged):
                            await me.wake.wait()
                    now = time.monotonic()
                    if now >= me.since + self.clock.real(AGING_S) and me.priority > 0 \
                            and self._waiters[0] is not me:
                        # Waited long behind more urgent callers: move up one level, so a
                        # steady stream of urgent work cannot starve idle scans for ever.
                        self._waiters.remove(me)
                        me.priority -= 1
                        me.since = now
                        heapq.heapify(self._waiters)
                        heapq.heappush(self._waiters, me)
                        if self._waiters[0] is me:
                            self._interrupt()
                    elif aged <= 0 and self._waiters[0] is not me:
                        # At the top level already (nothing to move up to): wait to be woken.
                        await me.wake.wait()
                    continue
                now = self.clock.monotonic()
                delay = self._delay(now, me.priority)
                if delay <= 0 and self._ledger is not None:
                    # Only now, about to send: ask the processes' shared ledger last.
                    delay = await self._claim(now)
                if delay <= 0:
                    if self._waiters[0] is me:
                        heapq.heappop(self._waiters)
                    else:  # a more urgent caller arrived while the ledger was asked
                        self._waiters.remove(me)
                        heapq.heapify(self._waiters)
                    self._sends.append(now)
                    self._tokens -= 1.0
                    served = True
                    self._wake_first()
                    return
                with anyio.CancelScope() as scope:
                    # Cancelled by throttled(), set_limit() or a more urgent arrival.
                    self._sleepers.add(scope)
                    try:
                        await self.clock.sleep(max(delay, _MIN_SLEEP_S))
                    finally:
                        self._sleepers.discard(scope)
        finally:
            if not served:
                # Cancelled while queued: leave the queue and let the next caller move up.
                self._waiters = [w for w in self._waiters if w is not me]
                heapq.heapify(self._waiters)
                self._wake_first()

    def throttled(self, retry_after: float | None = None) -> float:
        """Make answered 429: pause every caller, halve the rate; returns the pause in seconds."""
        now = self.clock.monotonic()
        fresh = self._paused_until is None or now >= self._paused_until
        if fresh:
            self._strikes += 1
        if retry_after is None:
            wait = min(DEFAULT_PAUSE_S, FIRST_PAUSE_S * 2 ** (self._strikes - 1))
        else:
            wait = min(max(retry_after, 0.0), MAX_PAUSE_S)
        if fresh:
            # Requests already in flight when the limit ran out answer 429 together: halve once
            # per pause, not once per answer.
            self._factor_base = max(MIN_RATE_FACTOR, self._factor(now) / 2)
            # Resume with one request at the end of the pause, then pace at the lower rate.
            self._tokens = 1.0
            self._paused_until = now + wait
        else:
            self._paused_until = max(self._paused_until, now + wait)
        self._clean_since = self._paused_until
        if self._ledger is not None:
            self._pause_to_share = self._paused_until
        self._interrupt()
        return self._paused_until - now

    def succeeded(self) -> None:
        """An answer that was not a 429: the limit is not spent; creep back towards nominal."""
        self._strikes = 0
        if self._factor_base < 1.0:
            self._factor_base = min(1.0, self._factor_base + RECOVERY_PER_SUCCESS)

    def snapshot(self) -> BudgetSnapshot:
        now = self.clock.monotonic()
        self._purge(now)
        rate = self._rate(now)
        used = len(self._sends)
        if self._ledger is not None:
            # As the ledger said at this process's last send: a snapshot does no I/O.
            used = max(used, self._shared.used)
        until = None
        remaining = max(0, self._cap(self._total_rate(now)) - used)
        if self._paused_until is not None and now < self._paused_until:
            until = self.clock.now() + (self._paused_until - now)
            remaining = 0  # nothing may be sent until the pause ends
        return BudgetSnapshot(
            limit_per_min=self._api_limit,
            rate_per_min=rate,
            used_last_minute=used,
            remaining=remaining,
            throttled_until=until,
            share=self.share,
            waiting=len(self._waiters),
            processes=self._shared.members if self._ledger is not None else 1,
            total_rate_per_min=self._total_rate(now),
        )

    # --- the arithmetic ---------------------------------------------------------------------

    def _nominal(self) -> float:
        return self.share * self._api_limit

    def _factor(self, now: float) -> float:
        if self._paused_until is not None and now < self._paused_until:
            return self._factor_base
        clean_minutes = math.floor((now - self._clean_since) / WINDOW_S)
        return min(1.0, self._factor_base + RECOVERY_PER_CLEAN_MINUTE * max(0, clean_minutes))

    def _total_rate(self, now: float) -> float:
        """Requests per minute all sharing processes may send now, tightened after 429s."""
        return max(1.0, self._nominal() * self._factor(now))

    def _rate(self, now: float) -> float:
        """Requests per minute this process allows itself now: its fair part of the total rate
        (divided among the processes that sent in the last minute) or what the others leave
        unused, whichever is more (the ledger's hard cap keeps the sum within the total)."""
        total = self._total_rate(now)
        if self._shared.senders <= 1:
            return total
        return max(1.0, total / self._shared.senders, total - self._others)

    @staticmethod
    def _cap(rate: float) -> int:
        return max(1, math.floor(rate + _EPSILON))

    def _burst(self, rate: float) -> int:
        return max(1, min(self._cap(rate), math.floor(rate / WINDOW_S * BURST_S + _EPSILON)))

    def _fill(self, rate: float) -> float:
        """Tokens per minute. A full burst plus a minute of refill must fit under the hard cap;
        refilling at the cap itself would let every burst run into it a minute later and stall
        all callers for seconds."""
        return float(max(1, self._cap(rate) - self._burst(rate)))

    def _purge(self, now: float) -> None:
        while self._sends and self._sends[0] <= now - WINDOW_S:
            self._sends.popleft()

    def _refill(self, now: float, rate: float) -> None:
        # Tokens do not accumulate during a 429 pause, or the pause would end in a burst.
        start = self._refilled_at
        if self._paused_until is not None:
            start = max(start, self._paused_until)
        if now > start:
            self._tokens = min(
                float(self._burst(rate)), self._tokens + (now - start) * self._fill(rate) / 60
            )
        self._refilled_at = max(self._refilled_at, now)

    def _delay(self, now: float, priority: int) -> float:
        """Seconds until one more send at `priority` keeps every rule; 0 or less means now."""
        self._purge(now)
        rate = self._rate(now)
        self._refill(now, rate)
        delay = 0.0
        if self._paused_until is not None:
            delay = max(delay, self._paused_until - now)
        # The burst's last token is kept for URGENT callers: a follow-up of a run that just
        # ended goes at once instead of a slot later, and whoever it overtook waits that slot.
        need = 1.0 if priority <= Priority.URGENT or self._burst(rate) < 2 else 2.0
        if self._tokens < need:
            delay = max(delay, (need - self._tokens) * 60 / self._fill(rate))
        cap = self._cap(rate)
        if len(self._sends) >= cap:
            # The send that must leave the window before one more fits in it.
            delay = max(delay, self._sends[len(self._sends) - cap] + WINDOW_S - now)
        return delay

    async def _claim(self, now: float) -> float:
        """The shared ledger's word on one send at `now` (it counts the send if it fits)."""
        assert self._ledger is not None
        await self.share_pause()
        claim = await self._ledger.claim(now, self._cap(self._total_rate(now)))
        if claim is not None and claim.busy:
            return claim.delay  # nothing was decided: ask again after the delay
        if claim is None:
            # The ledger is failing: keep to this process's own count, at the part of the rate
            # it had while the ledger answered, so that processes cut off from each other do
            # not each take the whole share.
            last = self._shared
            self._shared = Claim(0.0, last.senders, last.members, 0)
            return 0.0
        self._shared = claim
        # The ledger's count includes the send it just granted, which _sends does not yet.
        mine = len(self._sends) + (1 if claim.delay <= 0 else 0)
        self._others = max(0, claim.used - mine)
        if claim.paused and (self._paused_until is None or now >= self._paused_until):
            # Another process saw a 429: pause and slow down as if this one had seen it.
            self.throttled(claim.delay)
            self._pause_to_share = None  # the ledger knows already
        return claim.delay

    def _wake_first(self) -> None:
        if self._waiters:
            self._waiters[0].wake.set()

    def _interrupt(self) -> None:
        for scope in self._sleepers:
            scope.cancel()
        self._wake_first()


def _checked(api_limit: int) -> int:
    if api_limit < 1:
        raise ValueError(f"API limit must be at least 1 request per minute, not {api_limit}")
    return int(api_limit)
