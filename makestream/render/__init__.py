"""Renderers: the ways events are shown (NDJSON, compact lines, the live terminal view)."""

from __future__ import annotations

import os
from typing import IO, Any


def output_for(format_: Any, color: Any, stdout: IO[str]) -> Any:
    """The writer for `--format`/`--color` on this stdout (auto: pretty on a terminal)."""
    from makestream.render.compact import CompactWriter
    from makestream.render.ndjson import NdjsonWriter

    name = getattr(format_, "value", format_)
    if name == "auto":
        name = "pretty" if stdout.isatty() else "ndjson"
    if name == "ndjson":
        return NdjsonWriter(stdout.buffer)
    # The live view arrives with the rendering work; until then pretty is compact.
    del color, os
    return CompactWriter(stdout)
