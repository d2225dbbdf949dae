"""Benchmark 3: start-up — `makestream --version` and shell completion against bare Python.

Four commands, measured the same way (hyperfine with `--shell=none`, warm-up runs first; or,
without hyperfine, a loop of subprocess runs reporting min and median):

- `makestream --version`
- bash completion of `makestream wa` (Click/Typer's protocol: `_MAKESTREAM_COMPLETE=complete_bash`
  with `COMP_WORDS` and `COMP_CWORD`; it must answer `watch`)
- `python -c "import typer"` — the baseline the goal is stated against
- `python -c pass` — the interpreter alone

Every command goes through `env` so that all four pay the same exec overhead. The modules that
`makestream --version` and the completion call import (`python -X importtime`) are always
listed, heaviest first.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.report import ROOT, Result, ratio

VENV_BIN = Path(sys.executable).parent
MAKESTREAM = str(VENV_BIN / "makestream")
PYTHON = sys.executable
GOAL_FACTOR = 1.2
COMPLETION_ENV = {"_MAKESTREAM_COMPLETE": "complete_bash", "COMP_WORDS": "makestream wa",
                  "COMP_CWORD": "1"}


def commands() -> dict[str, list[str]]:
    complete = [f"{k}={v}" for k, v in COMPLETION_ENV.items()]
    return {
        "makestream --version": ["env", MAKESTREAM, "--version"],
        "completion 'makestream wa'": ["env", *complete, MAKESTREAM],
        "python -c 'import typer'": ["env", PYTHON, "-c", "import typer"],
        "python -c pass": ["env", PYTHON, "-c", "pass"],
    }


def _check() -> list[str]:
    """The commands must do what they claim before their time means anything."""
    problems = []
    cmds = commands()
    out = subprocess.run(cmds["makestream --version"], capture_output=True, text=True, check=False)
    if out.returncode != 0 or "makestream" not in out.stdout:
        problems.append(f"--version answered {out.returncode}: {out.stdout!r} {out.stderr!r}")
    out = subprocess.run(cmds["completion 'makestream wa'"], capture_output=True, text=True,
                         check=False)
    if out.returncode != 0 or "watch" not in out.stdout.split():
        problems.append(f"completion answered {out.returncode}: {out.stdout!r} {out.stderr!r}")
    return problems


def _hyperfine(runs: int, warmup: int) -> dict[str, dict[str, float]]:
    cmds = commands()
    with tempfile.TemporaryDirectory() as tmp:
        export = Path(tmp) / "startup.json"
        argv = ["hyperfine", "-N", "--warmup", str(warmup), "--runs", str(runs),
                "--export-json", str(export), "--style", "basic"]
        for name, cmd in cmds.items():
            argv += ["--command-name", name, _shell_join(cmd)]
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
        data = json.loads(export.read_text())
    out = {}
    for item in data["results"]:
        times = item["times"]
        out[item["command"]] = {
            "mean_ms": item["mean"] * 1000, "stddev_ms": (item["stddev"] or 0) * 1000,
            "median_ms": item["median"] * 1000, "min_ms": item["min"] * 1000,
            "max_ms": item["max"] * 1000, "runs": len(times),
        }
    return out


def _shell_join(cmd: list[str]) -> str:
    # hyperfine -N splits the command line itself (shell-words rules): quote what has spaces.
    return " ".join(f"'{part}'" if " " in part else part for part in cmd)


def _loop(runs: int, warmup: int) -> dict[str, dict[str, float]]:
    out = {}
    for name, cmd in commands().items():
        times = []
        for i in range(warmup + runs):
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if i >= warmup:
                times.append((time.perf_counter() - t0) * 1000)
        out[name] = {"mean_ms": statistics.fmean(times), "stddev_ms": statistics.pstdev(times),
                     "median_ms": statistics.median(times), "min_ms": min(times),
                     "max_ms": max(times), "runs": len(times)}
    return out


def import_profile(completion: bool = False, top: int = 15) -> dict[str, Any]:
    """What `makestream --version` (or the completion call) imports: module count and the
    heaviest imports (cumulative µs), from one `python -X importtime` run."""
    argv = [PYTHON, "-X", "importtime", MAKESTREAM, *([] if completion else ["--version"])]
    extra = COMPLETION_ENV if completion else {}
    proc = subprocess.run(
        argv, capture_output=True, text=True, check=False, cwd=ROOT,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1", **extra},
    )
    rows: list[dict[str, Any]] = []
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:"):
            continue
        self_us, cumulative_us, field = line.removeprefix("import time:").split("|", 2)
        if not self_us.strip().isdigit():
            continue  # the header
        name = field.lstrip()
        depth = (len(field) - len(name) - 1) // 2
        rows.append({"module": name, "depth": depth, "self_us": int(self_us),
                     "cumulative_us": int(cumulative_us)})
    shallow = [r for r in rows if r["depth"] <= 1]
    heaviest = sorted(shallow, key=lambda r: r["cumulative_us"], reverse=True)[:top]
    names = {r["module"] for r in rows}
    groups = {prefix: sorted(n for n in names if n == prefix or n.startswith(prefix + "."))
              for prefix in ("makestream", "typer", "pydantic", "pydantic_core", "rich", "httpx",
                             "anyio", "orjson", "starlette", "importlib.metadata")}
    return {"modules": len(rows), "heaviest": heaviest,
            "packages": {k: len(v) for k, v in groups.items()},
            "makestream_modules": groups["makestream"]}


def bench(quick: bool = False) -> Result:
    runs, warmup = (10, 2) if quick else (40, 5)
    problems = _check()
    tool = "hyperfine" if shutil.which("hyperfine") else "subprocess loop"
    print(f"startup: {len(commands())} commands x {runs} runs ({tool}) ...", flush=True)
    times = _hyperfine(runs, warmup) if tool == "hyperfine" else _loop(runs, warmup)
    base = times["python -c 'import typer'"]
    result = Result("startup", f"Start-up ({tool}, {runs} runs each after {warmup} warm-up)")
    for name, t in times.items():
        result.rows.append({
            "command": name, "mean ms": t["mean_ms"], "± ms": t["stddev_ms"],
            "median ms": t["median_ms"], "min ms": t["min_ms"], "max ms": t["max_ms"],
            "mean vs import typer": ratio(t["mean_ms"], base["mean_ms"]),
            "min vs import typer": ratio(t["min_ms"], base["min_ms"]),
        })
    for name in ("makestream --version", "completion 'makestream wa'"):
        r = ratio(times[name]["mean_ms"], base["mean_ms"])
        ok = r is not None and r <= GOAL_FACTOR and not problems
        result.goals.append((f"{name} no slower than {GOAL_FACTOR} x import typer "
                             f"(mean ratio {r:.2f})" if r else name, ok))
    profiles = {}
    for name, completion in (("makestream --version", False),
                             ("completion 'makestream wa'", True)):
        profile = profiles[name] = import_profile(completion)
        result.tables.append((
            f"Imports of `{name}` (one -X importtime run): {profile['modules']} modules; by "
            "package " + ", ".join(f"{k} {v}" for k, v in profile["packages"].items())
            + "; heaviest imports (depth 0-1):",
            [{"module": "  " * r["depth"] + r["module"],
              "cumulative ms": r["cumulative_us"] / 1000, "self ms": r["self_us"] / 1000}
             for r in profile["heaviest"]],
        ))
    result.notes.append(f"measured with {tool}; every command is run through `env`")
    result.notes += [f"CHECK FAILED: {p}" for p in problems]
    result.raw = {"times": times, "imports": profiles, "tool": tool}
    return result
