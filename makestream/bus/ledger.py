"""One request budget for every replica: the `SharedLedger` of `makestream.make.ledger`, in Redis.

A Lua script decides each send atomically on the server, on Redis's own clock (``TIME``), so
replicas whose clocks disagree still count one window. Only durations cross between the script
and the budget: a claim answers how long to wait, a 429 pause is given as how long it lasts. The
script keeps, per organization:

- ``…:sends``, a sorted set of the last window's sends (score: time; member: replica and serial),
  over which the hard cap is counted;
- ``…:paused``, the end of a 429 pause any replica saw;
- ``…:members``, a sorted set of replicas by when they were last seen.

Every key expires a little after the window, so an organization nobody watches leaves nothing
behind. When Redis cannot be reached the ledger answers None and the budget goes on alone within
its own share (see `makestream.make.budget`); it is asked again after `RETRY_S`.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Callable
from typing import Any

import anyio
from redis.exceptions import RedisError

from makestream.make.ledger import MEMBER_TTL_S, WINDOW_S, Claim

RETRY_S = 10.0  # real seconds before a failed ledger is tried again (default)
# A claim is on the path of every request to Make: a Redis slower than this is treated as down.
CLAIM_TIMEOUT_S = 1.0

# KEYS: sends, paused, members, serial. ARGV: me, cap, speed, window, member ttl, pause (0: none).
_CLAIM = """
local t = redis.call('TIME')
local speed = tonumber(ARGV[3])
local now = (tonumber(t[1]) + tonumber(t[2]) / 1000000) * speed
local window = tonumber(ARGV[4])
local ttl = tonumber(ARGV[5])
local pause = tonumber(ARGV[6])
local cap = tonumber(ARGV[2])
local me = ARGV[1]
local keep_ms = math.ceil((math.max(window, ttl) / speed + 1) * 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
redis.call('ZADD', KEYS[3], now, me)
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - ttl)
local paused = tonumber(redis.call('GET', KEYS[2]) or '0')
if pause > 0 then
  if now + pause > paused then
    paused = now + pause
    redis.call('SET', KEYS[2], tostring(paused), 'PX', math.ceil(pause / speed * 1000) + 1000)
  end
  cap = -1
end
local delay = 0
local is_paused = 0
if paused > now then
  delay = paused - now
  is_paused = 1
elseif cap > 0 then
  local n = redis.call('ZCARD', KEYS[1])
  if n >= cap then
    local oldest = redis.call('ZRANGE', KEYS[1], n - cap, n - cap, 'WITHSCORES')
    if oldest[2] then delay = math.max(0, tonumber(oldest[2]) + window - now) end
  end
  if delay <= 0 then
    local serial = redis.call('INCR', KEYS[4])
    redis.call('ZADD', KEYS[1], now, me .. '|' .. serial)
    delay = 0
  end
end
local senders = {}
local count = 0
for _, member in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local who = string.match(member, '^(.*)|')
  if who and not senders[who] then
    senders[who] = true
    count = count + 1
  end
end
if not senders[me] then count = count + 1 end
for i = 1, 4 do redis.call('PEXPIRE', KEYS[i], keep_ms) end
return {tostring(delay), count, redis.call('ZCARD', KEYS[3]), redis.call('ZCARD', KEYS[1]),
        is_paused}
"""

_LEAVE = "redis.call('ZREM', KEYS[1], ARGV[1]) return 1"


def replica_name() -> str:
    """This process's name among the replicas: host, pid and start time."""
    import os
    import socket

    return f"{socket.gethostname()}:{os.getpid()}:{time.time_ns() % 10**9}"


class RedisLedger:
    """The request budget of one Make organization, kept in Redis for every replica."""

    def __init__(
        self,
        redis: Any,
        account: str,
        *,
        me: str | None = None,
        speed: float = 1.0,
        prefix: str = "makestream",
        on_problem: Callable[[str], None] | None = None,
        retry_s: float = RETRY_S,
        timeout_s: float = CLAIM_TIMEOUT_S,
    ) -> None:
        self.redis = redis
        self.me = me or replica_name()
        self.speed = speed
        self.prefix = prefix
        self._keys = self._keys_for(account)
        self._script = redis.register_script(_CLAIM)
        self._on_problem = on_problem
        self._failed_at: float | None = None
        self._retry_s = retry_s
        self._timeout_s = timeout_s
        self.failures = 0

    def _keys_for(self, account: str) -> list[str]:
        digest = hashlib.sha256(account.encode()).hexdigest()[:24]
        base = f"{self.prefix}:budget:{digest}"
        return [f"{base}:sends", f"{base}:paused", f"{base}:members", f"{base}:serial"]

    async def claim(self, now: float, cap: int) -> Claim | None:
        return await self._run(cap=cap, pause=0.0)

    async def pause(self, now: float, until: float) -> None:
        if until > now:
            await self._run(cap=0, pause=until - now)

    async def adopt_account(self, account: str, now: float) -> None:
        # Replicas name their organization from the start (serve-sse reads it before polling);
        # a later move simply starts counting in the organization's keys.
        self._keys = self._keys_for(account)

    async def leave(self) -> None:
        # Leaving is a courtesy: a member that does not leave ages out.
        with contextlib.suppress(RedisError, OSError):
            await self.redis.eval(_LEAVE, 1, self._keys[2], self.me)

    @property
    def available(self) -> bool:
        """False while Redis is failing (the budget then keeps to its own count)."""
        return self._failed_at is None

    async def _run(self, *, cap: int, pause: float) -> Claim | None:
        if self._failed_at is not None and time.monotonic() - self._failed_at < self._retry_s:
            return None
        args = [self.me, cap, self.speed, WINDOW_S, MEMBER_TTL_S, pause]
        try:
            with anyio.fail_after(self._timeout_s):
                answer = await self._script(keys=self._keys, args=args)
            delay, senders, members, used, paused = answer
        except (RedisError, OSError, TimeoutError) as exc:  # go on alone, and say why once
            if self._failed_at is None and self._on_problem is not None:
                why = str(exc) or f"no answer within {self._timeout_s:g} s"
                self._on_problem(f"the bus's request budget is unreachable ({why}); keeping to "
                                 "this replica's own budget until it answers")
            self._failed_at = time.monotonic()
            self.failures += 1
            return None
        self._failed_at = None
        return Claim(float(delay), int(senders), int(members), int(used), bool(paused))
