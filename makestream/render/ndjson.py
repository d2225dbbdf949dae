"""NDJSON output: one event per line on a binary stream, flushed per event."""

from __future__ import annotations

from typing import IO

from makestream.events import _Event, encode


class NdjsonWriter:
    """Writes events as NDJSON lines; a closed pipe surfaces as BrokenPipeError to the caller."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream

    def write(self, event: _Event) -> None:
        self.stream.write(encode(event))
        # Flush per event: a pipe is block-buffered and `| jq` would otherwise wait minutes.
        self.stream.flush()

    def close(self) -> None:
        self.stream.flush()
