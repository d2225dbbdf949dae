"""Who polls Make for a watched set: a lease in Redis held by one replica at a time.

``SET key holder NX PX ttl`` takes a free lease; only the holder renews it (``PEXPIRE`` if the
value is still its own) or releases it (``DEL`` likewise), both as Lua scripts so that the check
and the change are one step. A holder that dies stops renewing, and the lease is free again
within `ttl`. Each new holder draws a fencing *epoch* (``INCR``): whatever a holder writes
carries its epoch, so a replica that lost its lease while paused (a long GC, a frozen VM) can be
told from the one that holds it now.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


@dataclass(frozen=True)
class Held:
    """A lease this replica holds: its fencing epoch."""

    epoch: int


class Lease:
    """One named lease; `holder` is this replica's name (see `bus.ledger.replica_name`)."""

    def __init__(self, redis: Any, name: str, holder: str, *, ttl_s: float,
                 prefix: str = "makestream") -> None:
        if ttl_s <= 0:
            raise ValueError("a lease lasts a positive time")
        self.redis = redis
        self.holder = holder
        self.ttl_ms = max(1, round(ttl_s * 1000))
        self.key = f"{prefix}:lease:{name}"
        self.epoch_key = f"{prefix}:lease:{name}:epoch"

    async def acquire(self) -> Held | None:
        """Take the lease if it is free (or already ours, renewing it); None if another holds
        it."""
        taken = await self.redis.execute_command(
            "SET", self.key, self.holder, "NX", "PX", self.ttl_ms
        )
        if taken:
            return Held(int(await self.redis.execute_command("INCR", self.epoch_key)))
        if await self.renew():
            return Held(int(await self.redis.execute_command("GET", self.epoch_key) or 0))
        return None

    async def renew(self) -> bool:
        """Extend the lease by its ttl if this replica still holds it."""
        return bool(await self.redis.eval(_RENEW, 1, self.key, self.holder, self.ttl_ms))

    async def release(self) -> bool:
        """Give the lease up now (so another replica need not wait for it to expire)."""
        return bool(await self.redis.eval(_RELEASE, 1, self.key, self.holder))

    async def current_holder(self) -> str | None:
        value = await self.redis.execute_command("GET", self.key)
        return None if value is None else bytes(value).decode(errors="replace")
