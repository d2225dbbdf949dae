"""Benchmark 4: NDJSON throughput — `makestream render --format ndjson` against `jq -c .`.

The input is a stream as `watch` writes it: per execution an `execution.started`, a few
`execution.progress`, an `execution.finished` (a tenth with an error object), `module.result`s
for some runs, and now and then `scenario.changed`, `stream.heartbeat`, `alert.raised` /
`alert.resolved` and `api.throttled`; every event with its `seq`, `ts` and a `cursor` encoded by
`makestream.engine.cursor` for a 20-scenario watch (about 700 characters, as a real one). It is
built with `makestream.events` models and `encode`, seeded, and cached under `bench/results/`
(the generator's version is part of the file name).

Both commands read the file from stdin and write to /dev/null; the file is read once before
timing so that both find it in the page cache (no warm-up runs: one pass of jq over a million
lines takes most of a minute). If `makestream render` is missing or fails, a
`python -c` loop over `makestream.events.read_ndjson` + `encode` stands in, and the result says
so.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.report import RESULTS, Result, ratio
from makestream.engine.cursor import Position, encode_positions
from makestream.events import (
    AlertRaised,
    AlertResolved,
    ApiThrottled,
    ExecutionErrorInfo,
    ExecutionFinished,
    ExecutionProgress,
    ExecutionStarted,
    ModuleResult,
    ScenarioChanged,
    StreamHeartbeat,
    StreamOpened,
    _Event,
    encode,
    rfc3339,
)

GENERATOR_VERSION = 3
FULL_EVENTS, QUICK_EVENTS = 1_000_000, 100_000
MAKESTREAM = str(Path(sys.executable).parent / "makestream")
STAND_IN = (
    "import sys; from makestream.events import read_ndjson, encode; "
    "w = sys.stdout.buffer.write; "
    "[w(encode(e)) for e in read_ndjson(sys.stdin.buffer)]"
)
_APPS = [("http", "http:ActionSendData"), ("json", "json:ParseJSON"),
         ("google-sheets", "google-sheets:addRow"), ("slack", "slack:CreateMessage")]


def _cursor(rng: random.Random, scenarios: int = 20) -> str:
    """A cursor as the tracker encodes it for a watch of `scenarios` scenarios, each with a floor
    and one to three delivered runs above it (about 700 characters for 20 scenarios, as measured
    on a real 20-scenario watch)."""
    positions = {}
    for sid in range(1000, 1000 + scenarios):
        position = Position(floor_ms=1_780_000_000_000 + rng.randint(0, 10**6))
        for _ in range(rng.randint(1, 3)):
            position.add(f"{rng.getrandbits(128):032x}", position.floor_ms + rng.randint(0, 10**5))
        positions[sid] = position
    return encode_positions(positions)


def events(count: int, seed: int = 1) -> Any:
    """`count` events of a plausible stream, in order."""
    rng = random.Random(seed)
    cursors = [_cursor(rng) for _ in range(64)]
    t = 1_780_000_000.0
    seq = 0
    made = 0
    stream = "5f3a9c21"

    def stamp(event: _Event) -> _Event:
        nonlocal seq
        seq += 1
        cursor = f"{cursors[seq % 64]}~{stream}.{seq}"
        return event.model_copy(update={"seq": seq, "ts": rfc3339(t), "cursor": cursor})

    yield stamp(StreamOpened(targets=list(range(1000, 1020)), api_limit=240,
                             budget_per_min=192.0, version="0.1.0"))
    made = 1
    while made < count:
        sid = rng.randint(1000, 1019)
        eid = f"{rng.getrandbits(128):032x}"
        name = f"Generated scheduled scenario {sid - 999}"
        expected = rng.choice([2000, 5000, 10000, 30000, 60000])
        batch: list[_Event] = [ExecutionStarted(
            scenario_id=sid, execution_id=eid, source=rng.choice(["auto", "webhook", "run"]),
            started_at=rfc3339(t), expected_duration_ms=expected, modules_total=4,
            scenario_name=name)]
        for step in range(rng.randint(0, 3)):
            elapsed = (step + 1) * 2000
            batch.append(ExecutionProgress(
                scenario_id=sid, execution_id=eid, elapsed_ms=elapsed,
                expected_duration_ms=expected,
                percent=round(min(99.0, 100 * elapsed / expected), 1)))
        status = rng.choices(["success", "warning", "error"], [0.85, 0.05, 0.10])[0]
        error = None
        if status != "success":
            app, mod = rng.choice(_APPS)
            error = ExecutionErrorInfo(message=f"[{rng.choice([400, 429, 500])}] request failed",
                                       name="DataError", cause_module=mod, cause_app=app)
        batch.append(ExecutionFinished(
            scenario_id=sid, execution_id=eid, status=status, started_at=rfc3339(t),
            duration_ms=rng.randint(500, 90000), operations=rng.randint(1, 40),
            transfer_bytes=rng.randint(256, 65536), centicredits=rng.randint(100, 4000),
            error=error, url=f"https://eu1.make.com/1/scenarios/{sid}/logs/{eid}",
            scenario_name=name))
        if rng.random() < 0.1:
            for module_id, (app, mod) in enumerate(_APPS, start=1):
                batch.append(ModuleResult(scenario_id=sid, execution_id=eid,
                                          module_id=module_id, module=mod, app=app,
                                          status="ok", bundles=rng.randint(1, 3),
                                          size=rng.randint(100, 9000)))
        if rng.random() < 0.02:
            batch.append(ScenarioChanged(scenario_id=sid, changed=["dlq_count"], is_active=True,
                                         is_invalid=False, is_paused=False,
                                         dlq_count=rng.randint(1, 5), scenario_name=name))
        if rng.random() < 0.02:
            batch.append(StreamHeartbeat(used_last_minute=rng.randint(100, 192),
                                         budget_per_min=192.0, running=rng.randint(0, 8)))
        if rng.random() < 0.005:
            rule = rng.choice(["error_rate", "duration_p95", "dlq_count"])
            fields: dict[str, Any] = {
                "scenario_id": sid, "alert_id": f"{rule}:{sid}", "rule": rule,
                "severity": "warning", "value": 0.25, "threshold": 0.2,
                "message": f"{rule} of {name} is 0.25 (threshold 0.2)"}
            batch += [AlertRaised(**fields), AlertResolved(**fields)]
        if rng.random() < 0.002:
            batch.append(ApiThrottled(retry_in_s=2.0, rate_per_min=96.0))
        for event in batch:
            if made >= count:
                break
            t += rng.uniform(0.01, 0.5)
            yield stamp(event)
            made += 1


def input_file(count: int) -> Path:
    """The cached event file of `count` lines (built on first use)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"events-{count}-v{GENERATOR_VERSION}.ndjson"
    if path.exists():
        return path
    print(f"ndjson: generating {count:,} events into {path.name} ...", flush=True)
    tmp = path.with_suffix(".tmp")
    with tmp.open("wb") as out:
        chunk: list[bytes] = []
        for event in events(count):
            chunk.append(encode(event))
            if len(chunk) >= 10_000:
                out.write(b"".join(chunk))
                chunk.clear()
        out.write(b"".join(chunk))
    tmp.replace(path)
    return path


def _render_works(sample: Path) -> tuple[bool, str]:
    """Whether `makestream render --format ndjson` exists and passes the sample through."""
    with sample.open("rb") as stdin:
        proc = subprocess.run([MAKESTREAM, "render", "--format", "ndjson"], stdin=stdin,
                              capture_output=True, check=False)
    want = sample.read_bytes()
    if proc.returncode != 0:
        return False, f"exit {proc.returncode}: {proc.stderr.decode(errors='replace').strip()}"
    if proc.stdout != want:
        return False, "output differs from its input (not a pass-through of canonical NDJSON)"
    return True, ""


def bench(quick: bool = False) -> Result:
    count = QUICK_EVENTS if quick else FULL_EVENTS
    path = input_file(count)
    size_mb = path.stat().st_size / 1e6
    with tempfile.TemporaryDirectory() as tmp:
        sample = Path(tmp) / "sample.ndjson"
        with path.open("rb") as src:
            sample.write_bytes(b"".join(next(src) for _ in range(2000)))
        works, why = _render_works(sample)
    if works:
        ours = f"{MAKESTREAM} render --format ndjson < {path} > /dev/null"
        ours_name = "makestream render --format ndjson"
    else:
        ours = f"{sys.executable} -c '{STAND_IN}' < {path} > /dev/null"
        ours_name = "stand-in: read_ndjson + encode"
    jq = shutil.which("jq")
    cmds = {ours_name: ours}
    if jq:
        cmds["jq -c ."] = f"{jq} -c . < {path} > /dev/null"
    runs = 2 if count >= FULL_EVENTS else 3
    print(f"ndjson: {count:,} events ({size_mb:.0f} MB), {len(cmds)} commands x {runs} runs ...",
          flush=True)
    path.read_bytes()  # into the page cache
    times = _time(cmds, runs)
    result = Result("ndjson", f"NDJSON throughput: {count:,} events, {size_mb:.0f} MB from stdin")
    base = times.get("jq -c .")
    for name, t in times.items():
        result.rows.append({
            "command": name, "mean s": t["mean_s"], "± s": t["stddev_s"], "min s": t["min_s"],
            "lines/s": count / t["mean_s"], "MB/s": size_mb / t["mean_s"],
            "rate vs jq": ratio(base["mean_s"], t["mean_s"]) if base else None,
        })
    for row in result.rows:
        row["lines/s"] = round(row["lines/s"])
    if base:
        r = ratio(base["mean_s"], times[ours_name]["mean_s"])
        result.goals.append((f"at least jq's rate ({r:.2f} x jq)", r is not None and r >= 1.0))
    else:
        result.goals.append(("at least jq's rate (jq is not installed)", None))
    if not works:
        result.notes.append(f"`makestream render --format ndjson` could not be timed ({why}); "
                            "a python -c loop over read_ndjson + encode stands in")
    result.notes.append(f"times are wall clock per whole file, {runs} runs each (hyperfine when "
                        "installed, else a subprocess loop); the file is read into the page "
                        "cache first; building it is not timed")
    result.raw = {"times": times, "events": count, "bytes": path.stat().st_size,
                  "render_timed": works}
    return result


def _time(cmds: dict[str, str], runs: int) -> dict[str, dict[str, float]]:
    if shutil.which("hyperfine"):
        with tempfile.TemporaryDirectory() as tmp:
            export = Path(tmp) / "ndjson.json"
            argv = ["hyperfine", "--runs", str(runs), "--export-json",
                    str(export), "--style", "basic"]
            for name, cmd in cmds.items():
                argv += ["--command-name", name, cmd]
            subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
            data = json.loads(export.read_text())
        return {r["command"]: {"mean_s": r["mean"], "stddev_s": r["stddev"] or 0.0,
                               "min_s": r["min"]} for r in data["results"]}
    out = {}
    for name, cmd in cmds.items():
        samples = []
        for _ in range(runs):
            t0 = time.perf_counter()
            subprocess.run(cmd, shell=True, check=True)
            samples.append(time.perf_counter() - t0)
        mean = sum(samples) / len(samples)
        std = (sum((s - mean) ** 2 for s in samples) / len(samples)) ** 0.5
        out[name] = {"mean_s": mean, "stddev_s": std, "min_s": min(samples)}
    return out
