"""Who polls Make for a watched set: a lease in Redis held by one replica at a time.

``SET key holder NX PX ttl`` takes a free lease and draws the holder's fencing *epoch*
(``INCR``) in the same Lua script, so no holder ever works under its predecessor's epoch; only the
holder renews the lease (``PEXPIRE`` if the value is still its own) or releases it (``DEL``
likewise). A holder that dies stops renewing, and the lease is free again within `ttl`. A holder
that lost its lease while paused (a long GC, a frozen VM) cannot write as if it still held it:
`makestream.bus.log.EventLog.append` takes the lease and appends only while Redis still names
this holder, in one script.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

_ACQUIRE = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return redis.call('INCR', KEYS[2])
end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return tonumber(redis.call('GET', KEYS[2]) or '0')
end
return -1
"""
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
        epoch = int(await self.redis.eval(
            _ACQUIRE, 2, self.key, self.epoch_key, self.holder, self.ttl_ms
        ))
        return Held(epoch) if epoch >= 0 else None

    async def renew(self) -> bool:
        """Extend the lease by its ttl if this replica still holds it."""
        return bool(await self.redis.eval(_RENEW, 1, self.key, self.holder, self.ttl_ms))

    async def release(self) -> bool:
        """Give the lease up now (so another replica need not wait for it to expire)."""
        return bool(await self.redis.eval(_RELEASE, 1, self.key, self.holder))

    async def current_holder(self) -> str | None:
        value = await self.redis.execute_command("GET", self.key)
        return None if value is None else bytes(value).decode(errors="replace")
