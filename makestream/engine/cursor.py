"""Resumable stream positions.

A cursor records, for every watched scenario, a *floor* (epoch ms) and the executions at or after
that floor that have already been delivered as ``execution.finished``. Everything older than the
floor counts as delivered. Resuming from a cursor therefore re-reads the scenario's logs from its
floor and delivers exactly the finished executions the cursor does not list — nothing lost,
nothing repeated, across restarts of the process.

Execution ids are stored as 48-bit hashes to keep the cursor short; a collision needs two runs of
one scenario inside one look-back window to share 48 bits. The encoding is
``1.`` + base64url(zlib(JSON)) + ``~`` + stream key + ``.`` + seq; it is opaque to users and
versioned by its prefix. The stream key and seq let an SSE server replay from its memory.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import zlib
from dataclasses import dataclass, field

import orjson

from makestream.errors import UsageError

_PREFIX = "1."


def short_id(execution_id: str) -> str:
    """A 12-hex-digit digest of an execution id, as stored in cursors."""
    return hashlib.blake2b(execution_id.encode(), digest_size=6).hexdigest()


@dataclass
class Position:
    """Where one scenario stands: the floor and the delivered executions at or above it."""

    floor_ms: int
    done: dict[str, int] = field(default_factory=dict)  # short id -> log timestamp (ms)

    def has(self, execution_id: str, timestamp_ms: int) -> bool:
        """Whether this execution was delivered; refreshes its stored timestamp if so."""
        if timestamp_ms < self.floor_ms:
            return True
        key = short_id(execution_id)
        if key in self.done:
            # A decoded cursor stores the floor as every id's timestamp; the real one keeps the id
            # from being pruned while it can still show up in a scan.
            self.done[key] = max(self.done[key], timestamp_ms)
            return True
        return False

    def add(self, execution_id: str, timestamp_ms: int) -> None:
        self.done[short_id(execution_id)] = timestamp_ms

    def raise_floor(self, floor_ms: int) -> None:
        """Move the floor up (never down) and forget what fell below it."""
        if floor_ms <= self.floor_ms:
            return
        self.floor_ms = floor_ms
        self.done = {k: t for k, t in self.done.items() if t >= floor_ms}


@dataclass
class Cursor:
    """A stream position: the emitting stream, the event's seq, and every scenario's Position."""

    stream: str = ""
    seq: int = 0
    positions: dict[int, Position] = field(default_factory=dict)

    def encode(self) -> str:
        return f"{encode_positions(self.positions)}~{self.stream}.{self.seq}"

    @classmethod
    def decode(cls, text: str) -> Cursor:
        """Parse a cursor; any damage raises UsageError (exit 2) with a one-line reason."""
        text = text.strip()
        if not text.startswith(_PREFIX):
            raise UsageError("invalid cursor: unknown format (expected a cursor from makestream)")
        packed, _, tail = text[len(_PREFIX) :].partition("~")
        stream, _, seq = tail.rpartition(".")
        try:
            raw = base64.urlsafe_b64decode(packed + "=" * (-len(packed) % 4))
            body = orjson.loads(zlib.decompress(raw))
            positions: dict[int, Position] = {}
            for sid, (floor_ms, ids) in body.items():
                # Timestamps of listed ids are not kept; the floor stands in for them, which is
                # enough to prune them once the floor passes.
                positions[int(sid)] = Position(int(floor_ms), {str(i): int(floor_ms) for i in ids})
            return cls(stream=stream, seq=int(seq or 0), positions=positions)
        except (
            binascii.Error,
            zlib.error,
            orjson.JSONDecodeError,
            AttributeError,
            TypeError,
            ValueError,
        ) as exc:
            raise UsageError(
                f"invalid cursor: {type(exc).__name__}; it is damaged or cut"
            ) from None


def encode_positions(positions: dict[int, Position]) -> str:
    """The part of a cursor that depends on positions only (cacheable between changes)."""
    body = {
        str(sid): [pos.floor_ms, sorted(pos.done, key=pos.done.__getitem__)]
        for sid, pos in positions.items()
    }
    packed = zlib.compress(orjson.dumps(body), 6)
    return _PREFIX + base64.urlsafe_b64encode(packed).rstrip(b"=").decode()
