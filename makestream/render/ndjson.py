"""NDJSON output: one event per line on a binary stream, flushed per event.

The text of every field is kept as it came (consumers need Make's own words), but a line never
carries a character a terminal would obey: JSON escapes C0 controls already, and
`makestream.safetext.escape_json` writes DEL, C1 controls, U+2028/U+2029 and the invisible
formatting characters as `\\u0085`-style escapes, which parse back to the same text. `encode`
is `events.encode`; `dumps` is `makestream.safetext.json_dumps`, for any JSON document
(`makestream state`, `thresholds`).
"""

from __future__ import annotations

from typing import IO

from makestream.events import _Event, encode
from makestream.safetext import json_dumps as dumps

__all__ = ["NdjsonWriter", "dumps", "encode"]


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
