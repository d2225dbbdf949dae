"""Resumable stream positions.

A cursor records, for every watched scenario, a *floor* (epoch ms) and the executions at or after
that floor that have already been delivered as ``execution.finished``. Everything older than the
floor counts as delivered. Resuming from a cursor therefore re-reads the scenario's logs from its
floor and delivers exactly the finished executions the cursor does not list — nothing lost,
nothing repeated, across restarts of the process.

Execution ids are stored as 40-bit hashes to keep the cursor short; a collision needs two runs of
one scenario inside one look-back window to share 40 bits (about one in 10⁹ for fifty runs).

The encoding is opaque to users and versioned by its prefix; the stream key and seq after ``~``
let an SSE server replay from its memory:

``2.`` + base64url(body) + ``~`` + stream key + ``.`` + seq, written now. The body is binary:
    varint(base) then, per scenario in id order, varint(id − previous id),
    varint(floor − base), varint(number of ids) and each id's 5 bytes, where base is the lowest
    floor (epoch ms) and varints are unsigned LEB128. Ids are random bytes that nothing
    compresses, and time stamps as deltas are a few bytes each, so this is a third shorter
    than version 1 for the same positions.
``1.`` + base64url(zlib(JSON ``{"<id>": [floor, ["<12 hex>", ...]]}``)) + ``~`` ..., written
    before; still read, so a saved cursor resumes after an upgrade (its 48-bit ids are cut to
    the 40 bits of today's, which are their first 40).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import zlib
from dataclasses import dataclass, field

import orjson

from makestream.errors import UsageError
from makestream.limits import CURSOR_MAX_CHARS, CURSOR_MAX_IDS, CURSOR_MAX_INFLATED

_PREFIX = "2."
_PREFIX_V1 = "1."
_ID_BYTES = 5


def short_id(execution_id: str) -> str:
    """A 10-hex-digit (40-bit) digest of an execution id, as stored in cursors.

    The first 40 bits of the 48-bit digest version 1 cursors stored, so those still match."""
    digest = hashlib.blake2b(execution_id.encode(), digest_size=6).digest()
    return digest[:_ID_BYTES].hex()


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
        """Parse a cursor; any damage raises UsageError (exit 2) with a one-line reason.

        Bounded: the text, what its body inflates to and the ids it lists are capped
        (CURSOR_MAX_CHARS, CURSOR_MAX_INFLATED, CURSOR_MAX_IDS in `makestream.limits`), so a
        hostile cursor costs no more than a large honest one.
        """
        if len(text) > CURSOR_MAX_CHARS:
            raise UsageError(
                f"invalid cursor: longer than {CURSOR_MAX_CHARS} characters, the limit"
            )
        text = text.strip()
        if not text.startswith((_PREFIX, _PREFIX_V1)):
            raise UsageError("invalid cursor: unknown format (expected a cursor from makestream)")
        packed, _, tail = text[len(_PREFIX) :].partition("~")
        stream, _, seq = tail.rpartition(".")
        if seq and not (seq.isascii() and seq.isdigit() and len(seq) <= _SEQ_MAX_DIGITS):
            raise UsageError("invalid cursor: its sequence number is not a number")
        if text.startswith(_PREFIX):
            try:
                raw = base64.urlsafe_b64decode(packed + "=" * (-len(packed) % 4))
                positions = _read_binary(raw)
            except _Damaged as exc:
                raise UsageError(f"invalid cursor: {exc}; it is damaged") from None
            except (binascii.Error, ValueError) as exc:
                raise UsageError(
                    f"invalid cursor: {type(exc).__name__}; it is damaged or cut"
                ) from None
            return cls(stream=stream, seq=int(seq or 0), positions=positions)
        try:
            raw = base64.urlsafe_b64decode(packed + "=" * (-len(packed) % 4))
            inflater = zlib.decompressobj()
            inflated = inflater.decompress(raw, CURSOR_MAX_INFLATED)
            if inflater.unconsumed_tail:
                raise UsageError(
                    f"invalid cursor: its body inflates to more than {CURSOR_MAX_INFLATED} "
                    "bytes, the limit"
                )
            if not inflater.eof:
                raise zlib.error("incomplete stream")
            body = orjson.loads(inflated)
            return cls(stream=stream, seq=int(seq or 0), positions=_positions(body))
        except _Damaged as exc:
            raise UsageError(f"invalid cursor: {exc}; it is damaged") from None
        except (
            binascii.Error,
            zlib.error,
            orjson.JSONDecodeError,
            AttributeError,
            TypeError,
            ValueError,
            OverflowError,
            RecursionError,
        ) as exc:
            raise UsageError(
                f"invalid cursor: {type(exc).__name__}; it is damaged or cut"
            ) from None


_SEQ_MAX_DIGITS = 19  # a seq fits in 63 bits


def _timestamp(value: object) -> int:
    # Epoch ms as written by encode: a JSON integer, never a bool, float or string.
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
        raise _Damaged("a floor is not a timestamp")
    return value


def _positions(body: object) -> dict[int, Position]:
    """The positions of a decoded cursor body: {"<scenario id>": [floor_ms, [short ids]]}."""
    if not isinstance(body, dict):
        raise _Damaged("its body is not an object")
    positions: dict[int, Position] = {}
    total = 0
    for sid, entry in body.items():
        if not (sid.isascii() and sid.isdigit() and len(sid) <= _SEQ_MAX_DIGITS):
            raise _Damaged("a scenario id is not a number")
        if not isinstance(entry, list) or len(entry) != 2:
            raise _Damaged("a scenario's entry is not [floor, ids]")
        floor_value, ids = entry
        floor_ms = _timestamp(floor_value)
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise _Damaged("a scenario's ids are not a list of strings")
        total += len(ids)
        if total > CURSOR_MAX_IDS:
            raise UsageError(
                f"invalid cursor: it lists more than {CURSOR_MAX_IDS} executions, the limit"
            )
        # Timestamps of listed ids are not kept; the floor stands in for them, which is
        # enough to prune them once the floor passes.
        short = [i[: _ID_BYTES * 2] for i in ids]
        positions[int(sid)] = Position(floor_ms, dict.fromkeys(short, floor_ms))
    return positions


def _varint(value: int, out: bytearray) -> None:
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return


class _Reader:
    """Reads a version 2 body; running out of bytes or an oversized number is damage."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def varint(self) -> int:
        value = shift = 0
        while True:
            if self.at >= len(self.data):
                raise _Damaged("it ends early")
            byte = self.data[self.at]
            self.at += 1
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7
            if shift >= 63:
                raise _Damaged("a number is too long")

    def take(self, size: int) -> bytes:
        if self.at + size > len(self.data):
            raise _Damaged("it ends early")
        chunk = self.data[self.at : self.at + size]
        self.at += size
        return chunk


def _read_binary(data: bytes) -> dict[int, Position]:
    reader = _Reader(data)
    positions: dict[int, Position] = {}
    if not data:
        return positions
    base = reader.varint()
    sid = total = 0
    while reader.at < len(data):
        sid += reader.varint()
        floor_ms = base + reader.varint()
        if floor_ms >= 2**63:
            raise _Damaged("a floor is not a timestamp")
        count = reader.varint()
        total += count
        if total > CURSOR_MAX_IDS:
            raise UsageError(
                f"invalid cursor: it lists more than {CURSOR_MAX_IDS} executions, the limit"
            )
        ids = [reader.take(_ID_BYTES).hex() for _ in range(count)]
        if sid in positions:
            raise _Damaged("a scenario is listed twice")
        positions[sid] = Position(floor_ms, dict.fromkeys(ids, floor_ms))
    return positions


class _Damaged(ValueError):
    """A cursor body that decodes but does not have the shape encode writes."""


def encode_positions(positions: dict[int, Position]) -> str:
    """The part of a cursor that depends on positions only (cacheable between changes)."""
    out = bytearray()
    if positions:
        base = min(pos.floor_ms for pos in positions.values())
        _varint(base, out)
        previous = 0
        for sid in sorted(positions):
            pos = positions[sid]
            _varint(sid - previous, out)
            previous = sid
            _varint(pos.floor_ms - base, out)
            _varint(len(pos.done), out)
            for key in sorted(pos.done, key=pos.done.__getitem__):
                out += bytes.fromhex(key)
    return _PREFIX + base64.urlsafe_b64encode(bytes(out)).rstrip(b"=").decode()
