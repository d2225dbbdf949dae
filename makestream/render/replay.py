"""Showing a saved stream again: `makestream render` reads NDJSON written by `watch`.

Three paths:

- `reemit` re-validates NDJSON and writes it again. It is the throughput path (a benchmark feeds
  it millions of events), so it reads big chunks, validates each line straight from bytes with the
  events' pydantic TypeAdapter, passes canonical lines through untouched (others are re-encoded,
  so every line out has the types the schema says), and writes in 64 KB batches. It flushes
  after every batch and after every chunk read, so that a live pipe
  (`watch | render --format ndjson`) is not held up.
- `read_events` yields validated events for any other writer (the live view, compact lines).
- `iter_lines` splits a binary stream into lines with `read1`, which returns what is available
  instead of waiting for a full chunk.
- `paced` spaces events as their time stamps were, for `--replay`.

Bad lines raise `UsageError` naming the source and line number, exactly like
`makestream.events.read_ndjson`, unless `skip_invalid`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import IO

from makestream.errors import UsageError
from makestream.events import EVENT_ADAPTER, _Event, decode, encode
from makestream.render.text import parse_ts

CHUNK = 1 << 20
FLUSH_AT = 64 * 1024
MAX_PAUSE_S = 5.0  # --replay never sits idle longer than this, however long the gap was


def iter_lines(stream: IO[bytes], chunk_size: int = CHUNK) -> Iterator[bytes]:
    """The lines of `stream` (without their newline), read in chunks."""
    for lines in _chunks(stream, chunk_size):
        yield from lines


def _chunks(stream: IO[bytes], chunk_size: int) -> Iterator[list[bytes]]:
    """The lines of each read, one list per read, so that a caller can flush between reads."""
    read = getattr(stream, "read1", stream.read)
    rest = b""
    while True:
        chunk = read(chunk_size)
        if not chunk:
            break
        lines = (rest + chunk).split(b"\n")
        rest = lines.pop()
        yield lines
    if rest:
        yield [rest]


def _slow(raw: bytes, number: int, source: str, skip_invalid: bool) -> _Event | None:
    """The event of a line the fast validation refused, or None to skip it.

    Same rules and messages as `events.read_ndjson`: unknown event types are skipped (consumers
    must ignore them), other bad lines are an error unless `skip_invalid`.
    """
    try:
        return decode(raw)
    except ValueError as exc:
        if str(exc).startswith("unknown event type") and b'"type"' in raw:
            return None
        if skip_invalid:
            return None
        raise UsageError(f"{source}:{number}: invalid event: {exc}") from None


def reemit(
    stream: IO[bytes],
    out: IO[bytes],
    *,
    source: str = "<stdin>",
    skip_invalid: bool = False,
    flush_each: bool = False,
    chunk_size: int = CHUNK,
) -> int:
    """Validate NDJSON from `stream` and write it to `out`; returns the number of events.

    `flush_each` flushes after every event (for a terminal); otherwise output goes out in 64 KB
    batches and whenever the input has nothing more to give right now.
    """
    validate = EVENT_ADAPTER.validate_json
    number = 0
    written = 0
    pending = bytearray()
    for lines in _chunks(stream, chunk_size):
        for raw in lines:
            number += 1
            line = raw.strip()
            if not line:
                continue
            # A line that passes strict validation already has every field in its canonical
            # JSON type, so it is written as it came, without a decode-encode round trip. NaN and
            # Infinity pass pydantic's parser but are not JSON, so they take the slow path too.
            try:
                if b"NaN" in line or b"Infinity" in line:
                    raise ValueError("not strict JSON")
                validate(line, strict=True)
            except ValueError:  # pydantic's ValidationError is a ValueError
                event = _slow(line, number, source, skip_invalid)
                if event is None:
                    continue
                line = encode(event)[:-1]
            pending += line
            pending += b"\n"
            written += 1
            if flush_each or len(pending) >= FLUSH_AT:
                out.write(pending)
                out.flush()
                pending.clear()
        if pending:
            out.write(pending)
            out.flush()
            pending.clear()
    out.flush()
    return written


def read_events(
    stream: IO[bytes], *, source: str = "<stdin>", skip_invalid: bool = False
) -> Iterator[_Event]:
    """Validated events from an NDJSON stream (see `events.read_ndjson`)."""
    from makestream.events import read_ndjson

    return read_ndjson(iter_lines(stream), source=source, skip_invalid=skip_invalid)


def paced(
    events: Iterable[_Event],
    *,
    speed: float = 1.0,
    sleep: Callable[[float], None],
) -> Iterator[_Event]:
    """Yield events spaced as their `ts` were, `speed` times faster; long gaps are shortened."""
    previous: float | None = None
    for event in events:
        at = parse_ts(event.ts)
        if at is not None:
            if previous is not None and at > previous:
                sleep(min(MAX_PAUSE_S, (at - previous) / speed))
            previous = at if previous is None else max(previous, at)
        yield event
