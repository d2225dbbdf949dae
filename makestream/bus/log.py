"""The events of one watched set, in a Redis stream that every replica reads.

The replica that polls Make appends each event (its NDJSON line and its cursor) with
``XADD … MAXLEN ~ N``; every replica reads from a position with ``XRANGE`` and follows with
``XREAD BLOCK``. A position is a stream id (``MS-SEQ``); it is only meaningful with the stream's
*epoch*, a random word set once (``SET NX``) beside the stream: if Redis loses the stream (a
restart without persistence) it loses the epoch too, a new one is drawn, and positions from the
old epoch are known to be stale instead of silently pointing into a new history.

The stream keeps about `maxlen` entries; a reader whose position it no longer holds resumes
from that event's cursor instead (replay from the history store or Make's logs).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from makestream.bus.connect import COMMAND_TIMEOUT_S
from makestream.bus.lease import Lease

DEFAULT_MAXLEN = 10_000
READ_COUNT = 500
# XREAD BLOCK must answer within the client's command deadline (makestream.bus.connect).
FOLLOW_BLOCK_MAX_MS = int((COMMAND_TIMEOUT_S - 1) * 1000)

_APPEND_HELD = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return false
end
return redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], ARGV[5], 'e', ARGV[3], 'c', ARGV[4])
"""

# Several events at once, into a stream that is empty, while Redis names this replica the holder:
# all of them or none (a script runs whole; the checks come before the first XADD).
_APPEND_ALL_HELD = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] or redis.call('XLEN', KEYS[2]) > 0 then
  return 0
end
for i = 3, #ARGV, 3 do
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], ARGV[i + 2], 'e', ARGV[i], 'c', ARGV[i + 1])
end
return 1
"""


@dataclass(frozen=True)
class Entry:
    """One event in the stream: its position, its NDJSON line and its cursor."""

    id: str
    line: bytes
    cursor: str


def parse_id(text: str) -> tuple[int, int] | None:
    """A stream id as (ms, seq), or None when `text` is not one."""
    ms, dash, seq = text.partition("-")
    if not (ms.isascii() and ms.isdigit() and len(ms) <= 20):
        return None
    if dash and not (seq.isascii() and seq.isdigit() and len(seq) <= 20):
        return None
    return int(ms), int(seq or 0)


class EventLog:
    """One watched set's stream of events."""

    def __init__(self, redis: Any, name: str, *, maxlen: int = DEFAULT_MAXLEN,
                 prefix: str = "makestream") -> None:
        if maxlen < 1:
            raise ValueError("a stream keeps at least one entry")
        self.redis = redis
        self.maxlen = maxlen
        self.key = f"{prefix}:events:{name}"
        self.epoch_key = f"{prefix}:events:{name}:epoch"

    async def epoch(self) -> str:
        """The stream's epoch, drawn now if Redis has none (a new or lost stream)."""
        value = await self.redis.execute_command("GET", self.epoch_key)
        if value is None:
            drawn = secrets.token_hex(4)
            await self.redis.execute_command("SET", self.epoch_key, drawn, "NX")
            # Another replica may have drawn one at the same moment: the one Redis kept wins.
            value = await self.redis.execute_command("GET", self.epoch_key)
            if value is None:
                return drawn  # gone again at once (a flush): the next look draws anew
        return bytes(value).decode(errors="replace")

    async def append(self, line: bytes, cursor: str, lease: Lease | None = None, *,
                     at: str = "*") -> str | None:
        """Add one event; its position. With `lease`, only while Redis still names this
        replica its holder (None otherwise: the lease was lost, and the event is not added).
        `at` is the position to give it (above every one in the stream), or ``*`` for Redis to
        choose."""
        if lease is None:
            new_id = await self.redis.execute_command(
                "XADD", self.key, "MAXLEN", "~", self.maxlen, at, "e", line, "c", cursor
            )
        else:
            new_id = await self.redis.eval(
                _APPEND_HELD, 2, lease.key, self.key, lease.holder, self.maxlen, line, cursor, at
            )
        return None if not new_id else bytes(new_id).decode()

    async def append_all(self, events: Sequence[tuple[bytes, str, str]], lease: Lease) -> bool:
        """Add events (line, cursor, position; positions rising) to the stream while it is
        empty and Redis names this replica the holder: all of them (True) or none (False)."""
        args: list[Any] = [lease.holder, self.maxlen]
        for line, cursor, at in events:
            args += [line, cursor, at]
        return bool(await self.redis.eval(_APPEND_ALL_HELD, 2, lease.key, self.key, *args))

    async def after(self, position: str, count: int = READ_COUNT) -> list[Entry]:
        """Up to `count` events after `position` ("0" for the first)."""
        start = "-" if position in ("", "0", "0-0") else f"({position}"
        rows = await self.redis.execute_command("XRANGE", self.key, start, "+", "COUNT", count)
        return _entries(rows)

    async def follow(self, position: str, *, block_ms: int, count: int = READ_COUNT) -> list[Entry]:
        """The events after `position`, waiting up to `block_ms` for the first one ([] if none
        came). The wait must end well within the client's command deadline."""
        if not 0 < block_ms <= FOLLOW_BLOCK_MAX_MS:
            raise ValueError(f"block_ms must be 1 to {FOLLOW_BLOCK_MAX_MS}")
        answer = await self.redis.execute_command(
            "XREAD", "COUNT", count, "BLOCK", block_ms, "STREAMS", self.key, position or "0"
        )
        if not answer:
            return []
        _, rows = answer[0]
        return _entries(rows)

    async def at(self, position: str) -> Entry | None:
        """The event at `position`, if the stream holds it."""
        rows = await self.redis.execute_command("XRANGE", self.key, position, position)
        entries = _entries(rows)
        return entries[0] if entries else None

    async def last(self) -> Entry | None:
        """The newest event, if any (where a new poller resumes from)."""
        rows = await self.redis.execute_command("XREVRANGE", self.key, "+", "-", "COUNT", 1)
        entries = _entries(rows)
        return entries[0] if entries else None

    async def length(self) -> int:
        return int(await self.redis.execute_command("XLEN", self.key))


def _field(info: Any, name: bytes) -> str:
    """One field of an XINFO answer (a dict from redis-py, or a flat list), as text."""
    if isinstance(info, dict):
        value = info.get(name, info.get(name.decode()))
    else:
        pairs = list(info or [])
        value = next((pairs[i + 1] for i in range(0, len(pairs) - 1, 2)
                      if bytes(pairs[i]) == name), None)
    return "" if value is None else (value.decode() if isinstance(value, bytes) else str(value))


def _entries(rows: Sequence[Any] | None) -> list[Entry]:
    out: list[Entry] = []
    for row_id, fields in rows or ():
        # redis-py hands fields over as a dict, the wire as a flat list: take either.
        values: dict[bytes, bytes] = {}
        if isinstance(fields, dict):
            values = {bytes(k): bytes(v) for k, v in fields.items()}
        else:
            for i in range(0, len(fields) - 1, 2):
                values[bytes(fields[i])] = bytes(fields[i + 1])
        out.append(Entry(bytes(row_id).decode(), values.get(b"e", b""),
                         values.get(b"c", b"").decode(errors="replace")))
    return out
