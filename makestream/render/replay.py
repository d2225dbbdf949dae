"""Showing a saved stream again: `makestream render` reads NDJSON written by `watch`.

Three paths:

- `reemit` re-validates NDJSON and writes it again. It is the throughput path (a benchmark feeds
  it millions of events), so it reads big chunks, validates each line straight from bytes with the
  events' pydantic TypeAdapter, passes canonical lines through (others are re-encoded, so every
  line out has the types the schema says), and writes in 64 KB batches. It flushes
  after every batch and after every chunk read, so that a live pipe
  (`watch | render --format ndjson`) is not held up. A line that passes through still has its
  DEL, C1 and invisible formatting characters JSON-escaped (`makestream.safetext.escape_json`),
  as `NdjsonWriter` writes them: the same text, nothing a terminal obeys.
- `read_events` yields validated events for any other writer (the live view, compact lines).
- `iter_lines` splits a binary stream into lines with `read1`, which returns what is available
  instead of waiting for a full chunk.
- `paced` spaces events as their time stamps were, for `--replay`.

Bad lines raise `UsageError` naming the source and line number, exactly like
`makestream.events.read_ndjson`, unless `skip_invalid`.

A line longer than `makestream.limits.NDJSON_LINE_MAX_BYTES` is a bad line like any other: it
stops `render` with exit 2 (`FILE:N: line longer than 16 MiB, the limit`) as soon as the cap is
passed, without reading the rest of it, or is skipped with `--skip-invalid`. Either way no more
than the cap of it is ever held: the bytes past it are dropped as they are read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import IO

from makestream.errors import UsageError
from makestream.events import EVENT_ADAPTER, _Event, decode
from makestream.files import size_text
from makestream.limits import NDJSON_LINE_MAX_BYTES
from makestream.render.ndjson import encode
from makestream.render.text import parse_ts
from makestream.safetext import escape_json

CHUNK = 1 << 20
FLUSH_AT = 64 * 1024
MAX_PAUSE_S = 5.0  # --replay never sits idle longer than this, however long the gap was


def iter_lines(
    stream: IO[bytes],
    chunk_size: int = CHUNK,
    *,
    source: str = "<stdin>",
    skip_invalid: bool = False,
    max_line: int = NDJSON_LINE_MAX_BYTES,
) -> Iterator[bytes]:
    """The lines of `stream` (without their newline), read in chunks.

    A line longer than `max_line` bytes raises UsageError naming it, or with `skip_invalid`
    comes out empty (so that the numbers of the lines after it stay right).
    """
    number = 0
    for lines in _chunks(stream, chunk_size, max_line):
        for line in lines:
            number += 1
            if line is None:
                if not skip_invalid:
                    raise UsageError(_too_long(source, number, max_line))
                line = b""
            yield line


def _too_long(source: str, number: int, max_line: int) -> str:
    return f"{source}:{number}: line longer than {size_text(max_line)}, the limit"


def _chunks(stream: IO[bytes], chunk_size: int, max_line: int) -> Iterator[list[bytes | None]]:
    """The lines of each read, one list per read, so that a caller can flush between reads.

    A line over `max_line` bytes is None, given as soon as it passes the cap (a caller that stops
    there reads no more of it); if the caller goes on, the rest is read and dropped. So at most
    `max_line` bytes of a line are ever held.
    """
    read = getattr(stream, "read1", stream.read)
    head: list[bytes] = []  # the start of the line being read, in the pieces it came in
    held = 0
    dropping = False  # within a line already given as None
    while True:
        chunk = read(chunk_size)
        if not chunk:
            break
        *ends, tail = chunk.split(b"\n")
        lines: list[bytes | None] = []
        for end in ends:
            if dropping:
                dropping = False
            elif held + len(end) > max_line:
                lines.append(None)
            else:
                lines.append(b"".join((*head, end)) if head else end)
            head.clear()
            held = 0
        if dropping or not tail:
            pass
        elif held + len(tail) > max_line:
            lines.append(None)
            head.clear()
            held = 0
            dropping = True
        else:
            head.append(tail)
            held += len(tail)
        yield lines
    if head and not dropping:
        yield [b"".join(head)]


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
    max_line: int = NDJSON_LINE_MAX_BYTES,
) -> int:
    """Validate NDJSON from `stream` and write it to `out`; returns the number of events.

    Each batch is JSON-escaped as a whole on its way out (`escape_json`, one scan per 64 KB
    rather than one per line); re-encoded lines are escaped already and stay as they are.

    `flush_each` flushes after every event (for a terminal); otherwise output goes out in 64 KB
    batches and whenever the input has nothing more to give right now.
    """
    validate = EVENT_ADAPTER.validate_json
    number = 0
    written = 0
    pending = bytearray()
    for lines in _chunks(stream, chunk_size, max_line):
        for raw in lines:
            number += 1
            if raw is None:
                if skip_invalid:
                    continue
                raise UsageError(_too_long(source, number, max_line))
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
                out.write(escape_json(pending))
                out.flush()
                pending.clear()
        if pending:
            out.write(escape_json(pending))
            out.flush()
            pending.clear()
    out.flush()
    return written


def read_events(
    stream: IO[bytes], *, source: str = "<stdin>", skip_invalid: bool = False
) -> Iterator[_Event]:
    """Validated events from an NDJSON stream (see `events.read_ndjson`)."""
    from makestream.events import read_ndjson

    lines = iter_lines(stream, source=source, skip_invalid=skip_invalid)
    return read_ndjson(lines, source=source, skip_invalid=skip_invalid)


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
