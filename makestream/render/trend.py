"""A column chart in text: one column per time bucket, eighth blocks for resolution.

    duration p50 (s) of 'Sync orders' (101), last 7d, 1 column = 3h
     12.4 ┤        █▃
          │     ▂  ██ ▅
      0.0 ┤▁▃▄▆███████▇▆
          └──────────────
           11-29 10:00   12-06 10:00

Pure: values in, lines out. A bucket with no run is left blank and a zero is a dot, so "nothing
ran" and "none of it" look different.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

_EIGHTHS = " ▁▂▃▄▅▆▇█"


def _label(value: float) -> str:
    if value >= 100 or value == int(value):
        return f"{value:.0f}"
    return f"{value:.1f}"


def columns(
    values: Sequence[float | None], *, height: int = 10, left: str = "", right: str = ""
) -> list[str]:
    """The chart's lines: a y axis from 0 to the largest value, and `left`/`right` under the
    first and last columns."""
    top = max((v for v in values if v is not None), default=0.0)
    scale = top if top > 0 else 1.0
    top_label, zero_label = _label(scale), "0"
    pad = max(len(top_label), len(zero_label))
    # A value above zero shows at least a sliver; zero shows as a dot, nothing ran as blank.
    units = [None if v is None else 0 if v <= 0 else max(1, round(v / scale * height * 8))
             for v in values]
    lines = []
    for row in range(height - 1, -1, -1):
        label = top_label if row == height - 1 else zero_label if row == 0 else ""
        cells = []
        for unit in units:
            if unit is None:
                cells.append(" ")
                continue
            fill = min(8, max(0, unit - row * 8))
            cells.append(_EIGHTHS[fill] if fill else "·" if row == 0 and unit == 0 else " ")
        tick = "┤" if label else "│"
        lines.append(f"{label.rjust(pad)} {tick}{''.join(cells)}".rstrip())
    width = len(values)
    lines.append(" " * (pad + 1) + "└" + "─" * width)
    if left or right:
        gap = max(1, width - len(left) - len(right) + 1)
        lines.append(" " * (pad + 2) + left + " " * gap + right)
    return lines


def bucket(
    points: Sequence[tuple[int, float]], *, start_ms: int, end_ms: int, count: int, how: str
) -> list[float | None]:
    """Points (ms, value) into `count` equal buckets over [start_ms, end_ms): `sum`, `max` or
    `median` of each; None where a bucket holds none."""
    span = max(1, end_ms - start_ms)
    groups: list[list[float]] = [[] for _ in range(count)]
    for at, value in points:
        if start_ms <= at < end_ms:
            groups[min(count - 1, (at - start_ms) * count // span)].append(value)
    out: list[float | None] = []
    for group in groups:
        if not group:
            out.append(None)
        elif how == "sum":
            out.append(math.fsum(group))
        elif how == "max":
            out.append(max(group))
        else:
            ordered = sorted(group)
            out.append(ordered[(len(ordered) - 1) // 2])
    return out
