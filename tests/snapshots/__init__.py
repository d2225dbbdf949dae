"""Expected renderings, and the helpers that compare output with them.

Each `NAME.txt` here is what a renderer produced when it was last accepted. A test fails when the
output drifts; after checking a deliberate change, regenerate with::

    MAKESTREAM_UPDATE_SNAPSHOTS=1 .venv/bin/pytest tests/test_render*.py tests/test_flow*.py

`sample.ndjson` is a saved stream that holds every event type; several tests render it.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SAMPLE = HERE / "sample.ndjson"
UPDATE_ENV = "MAKESTREAM_UPDATE_SNAPSHOTS"


def _normal(text: str) -> str:
    # Trailing blanks are table padding, invisible on a terminal and lost by most editors.
    return "\n".join(line.rstrip() for line in text.rstrip("\n").split("\n")) + "\n"


def assert_snapshot(name: str, text: str) -> None:
    """Compare `text` with `NAME.txt`, or rewrite the file when MAKESTREAM_UPDATE_SNAPSHOTS=1."""
    path = HERE / f"{name}.txt"
    actual = _normal(text)
    if os.environ.get(UPDATE_ENV) == "1":
        path.write_text(actual, encoding="utf-8")
        return
    if not path.exists():
        raise AssertionError(f"no snapshot {path.name}: run with {UPDATE_ENV}=1 to create it")
    expected = path.read_text(encoding="utf-8")
    assert actual == expected, f"{path.name} drifted (regenerate with {UPDATE_ENV}=1)"


def render_text(renderable: Any, *, width: int = 100, height: int = 40) -> str:
    """What a colourless console of this size shows for `renderable`."""
    from rich.console import Console

    console = Console(file=io.StringIO(), width=width, height=height, color_system=None,
                      force_terminal=False, legacy_windows=False, _environ={})
    console.print(renderable)
    output = console.file.getvalue()  # type: ignore[attr-defined]
    assert isinstance(output, str)
    return output


def sample_events() -> list[Any]:
    from makestream.events import read_ndjson

    with SAMPLE.open("rb") as handle:
        return list(read_ndjson(handle, source=str(SAMPLE)))
