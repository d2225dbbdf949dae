"""Reporting: percentiles, plain-text tables, and JSON result files under `bench/results/`.

Every benchmark returns a `Result`: a title, table rows (dicts with the same keys), free-form
notes, and the raw figures. `emit` prints the table and writes
`bench/results/<name>-<UTC timestamp>.json` (plus `<name>-latest.json`) with the machine's
description, so that figures can always be traced to the run and the machine they came from.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# In a snapshot (see bench.__main__) bench/results is a link to the real bench/results/.
RESULTS = Path(os.environ.get("BENCH_RESULTS") or Path(__file__).resolve().parent / "results")


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by the nearest-rank method; inf values sort last.

    Nearest rank returns a value that was measured, never an interpolation between two; an
    `inf` (a run never detected) therefore shows up as inf when it falls at that rank.
    """
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def ratio(value: float | None, baseline: float | None) -> float | None:
    """value / baseline, or None when either is missing, infinite or the baseline is zero."""
    if value is None or baseline is None:
        return None
    if not (math.isfinite(value) and math.isfinite(baseline)) or baseline == 0:
        return None
    return value / baseline


def fmt(value: Any, digits: int = 2) -> str:
    """A table cell: floats to `digits` places, inf as '∞', None and NaN as '-'."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        if math.isinf(value):
            return "∞"
        return f"{value:.{digits}f}"
    return str(value)


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    """Rows of dicts as a Markdown table (which reads fine in a terminal too)."""
    if not rows:
        return "(no rows)"
    cols = list(columns) if columns is not None else list(rows[0])
    cells = [[fmt(row.get(c)) for c in cols] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(cols)]
    line = "| " + " | ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)) + " |"
    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    body = [
        "| " + " | ".join(v.rjust(w) for v, w in zip(r, widths, strict=True)) + " |"
        for r in cells
    ]
    return "\n".join([line, rule, *body])


@dataclass
class Result:
    """What one benchmark measured."""

    name: str
    title: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    columns: list[str] | None = None
    notes: list[str] = field(default_factory=list)
    goals: list[tuple[str, bool | None]] = field(default_factory=list)  # (goal, met?)
    raw: dict[str, Any] = field(default_factory=dict)
    tables: list[tuple[str, list[dict[str, Any]]]] = field(default_factory=list)

    def render(self) -> str:
        parts = [f"## {self.title}", "", table(self.rows, self.columns)]
        for caption, rows in self.tables:
            parts += ["", caption, "", table(rows)]
        if self.goals:
            parts += ["", "Goals:"]
            parts += [f"- [{_mark(met)}] {goal}" for goal, met in self.goals]
        if self.notes:
            parts += [""] + [f"- {note}" for note in self.notes]
        return "\n".join(parts)


def _mark(met: bool | None) -> str:
    return "n/a" if met is None else ("met" if met else "MISSED")


def machine() -> dict[str, Any]:
    """Where the figures were measured."""
    return {
        "git": os.environ.get("BENCH_GIT") or git_describe(),
        "snapshot": os.environ.get("BENCH_SNAPSHOT"),
        "package_digest": package_digest(),
        "nproc": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "loadavg_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }


def package_digest(root: Path = ROOT, names: tuple[str, ...] = ("makestream",)) -> str:
    """A short digest of the sources under `root/<name>`: which code the figures belong to,
    even when the working tree differs from the commit."""
    digest = hashlib.sha256()
    for name in names:
        for path in sorted((root / name).rglob("*.py")):
            if "results" in path.relative_to(root).parts:
                continue
            digest.update(str(path.relative_to(root)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def git_describe(root: Path = ROOT) -> str | None:
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=root,
                             capture_output=True, text=True, check=False)
    except OSError:
        return None
    return out.stdout.strip() or None


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def emit(result: Result, *, quick: bool, results_dir: Path = RESULTS) -> Path:
    """Print the result and write it as JSON; returns the file written."""
    print(result.render(), flush=True)
    print(flush=True)
    results_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    doc = {
        "benchmark": result.name,
        "title": result.title,
        "quick": quick,
        "measured_at": stamp,
        "machine": machine(),
        "rows": result.rows,
        "tables": {caption: rows for caption, rows in result.tables},
        "goals": [{"goal": g, "met": m} for g, m in result.goals],
        "notes": result.notes,
        "raw": result.raw,
    }
    text = json.dumps(doc, indent=2, default=_jsonable, allow_nan=True)
    suffix = "-quick" if quick else ""
    path = results_dir / f"{result.name}{suffix}-{stamp}.json"
    path.write_text(text + "\n", encoding="utf-8")
    (results_dir / f"{result.name}{suffix}-latest.json").write_text(text + "\n", encoding="utf-8")
    return path


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def rounded(values: Iterable[float], digits: int = 3) -> list[float]:
    return [round(v, digits) if math.isfinite(v) else v for v in values]
