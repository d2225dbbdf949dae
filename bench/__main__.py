"""The benchmark runner: `python -m bench all [--quick]` or one benchmark by name.

    python -m bench all            # every benchmark, full size (about 15 minutes)
    python -m bench all --quick    # every benchmark, small (well under 2 minutes)
    python -m bench latency [--quick] [--scenarios N --limit L --minutes M --speed S]
    python -m bench latency --adoption-only
    python -m bench matrix [--quick]   # workload x API variant, against the naive loop
    python -m bench matrix --cells 0,3 --seeds 1,2,3   # chosen cells, several workload seeds
    python -m bench run | startup | ndjson | memory | store | sse | soak | bus [--quick]
    python -m bench all --with-server   # the above plus sse and soak
    python -m bench all --commit HEAD   # makestream as last committed, not as being edited

Each benchmark prints its table and writes `bench/results/<name>[-quick]-<UTC stamp>.json`
(and `-latest.json`); `all` also writes `all[-quick]-latest.json` with every goal. The run
happens on a snapshot of the code taken at its start (see `snapshot`; `--no-snapshot` to skip).
`sse`, `soak` and `bus` (the server's benchmarks, bench/sse.py, bench/soak.py and bench/bus.py)
run by name, or in `all` with `--with-server`.
"""

from __future__ import annotations

import argparse
import importlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from typing import Any

from bench import latency, matrix, memory, ndjson, run, startup, store
from bench.report import RESULTS, ROOT, Result, emit, git_describe, machine, package_digest

Bench = Callable[[bool], Result]

BENCHES: dict[str, Bench] = {
    "startup": startup.bench,
    "ndjson": ndjson.bench,
    "run": run.bench,
    "memory": memory.bench,
    "latency": latency.bench,
    "store": store.bench,  # the history store: start-up requests, write path, history stats
    "matrix": matrix.bench,
}
# The server's benchmarks (bench/sse.py, bench/soak.py, bench/bus.py): run by name, or in `all`
# with `--with-server` (they take longer than the rest together). Imported only when asked for.
SERVER = {
    "sse": "bench.sse",    # fan-out of one stream to many SSE clients
    "soak": "bench.soak",  # an hour of churning SSE clients over a faulty zone
    "bus": "bench.bus",    # three serve-sse --bus replicas on Redis against one serve-sse
}


def _server_bench(name: str, quick: bool) -> tuple[Result, str]:
    """Run a server benchmark (bench/sse.py, soak.py, bus.py) through its own `main` (which
    sets the process up and writes its results), then read back its goals for the summary."""
    module = importlib.import_module(SERVER[name])
    code = module.main(["--quick"] if quick else [])
    path = RESULTS / f"{name}{'-quick' if quick else ''}-latest.json"
    result = Result(name, name)
    if code == 0 and path.exists():
        doc = json.loads(path.read_text())
        result.goals = [(g["goal"], g["met"]) for g in doc.get("goals", [])]
    else:
        result.goals = [(f"{name} ended with exit code {code}", False)]
    return result, str(path)


def _latency(args: argparse.Namespace) -> Result:
    if args.adoption_only:
        return latency.adoption_bench(args.quick)
    if args.scenarios is None:
        return latency.bench(args.quick)
    case = latency.Case(args.scenarios, args.limit, args.minutes, args.speed)
    return latency.bench(args.quick, cases=[case])


def snapshot(argv: list[str], commit: str | None) -> None:
    """Re-run this command on a copy of makestream and bench taken now, unless it is one.

    Others may commit to the working tree while a benchmark runs; the copy keeps every process
    of the run (pool workers, the memory child, the `makestream` command) on the same code, and
    its digest goes into every result file. makestream comes from the working tree, or from git
    revision `commit` (`--commit HEAD`: the last commit, whatever is being edited); bench always
    from the working tree. Copies live in bench/results/snapshots/.
    """
    if os.environ.get("BENCH_SNAPSHOT"):
        return
    snapshots = RESULTS / "snapshots"
    tmp = snapshots / f".tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(ROOT / "bench", tmp / "bench",
                    ignore=shutil.ignore_patterns("__pycache__", "results"))
    if commit is None:
        shutil.copytree(ROOT / "makestream", tmp / "makestream",
                        ignore=shutil.ignore_patterns("__pycache__"))
        label = git_describe() or "?"
    else:
        archive = subprocess.run(["git", "archive", commit, "makestream"], cwd=ROOT,
                                 capture_output=True, check=True).stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(tmp, filter="data")
        label = subprocess.run(["git", "rev-parse", "--short", commit], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
    key = package_digest(tmp, ("makestream", "bench"))
    target = snapshots / key
    if target.exists():
        shutil.rmtree(tmp)
    else:
        # Results go to the real bench/results/, also for code that writes to bench/results.
        (tmp / "bench" / "results").symlink_to(RESULTS.resolve(), target_is_directory=True)
        tmp.rename(target)
    paths = [str(target), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "BENCH_SNAPSHOT": key, "BENCH_GIT": label,
           "PYTHONPATH": os.pathsep.join(paths)}
    print(f"bench: running on a snapshot ({key}; makestream from "
          f"{'the working tree, git ' if commit is None else 'commit '}{label}): {target}",
          file=sys.stderr, flush=True)
    os.chdir(target)
    os.execve(sys.executable, [sys.executable, "-m", "bench", *argv], env)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("name", choices=["all", *BENCHES, *SERVER])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--with-server", action="store_true",
                        help="all: also the SSE fan-out, soak and bus benchmarks")
    group = parser.add_argument_group("latency: one custom case instead of the matrix")
    group.add_argument("--scenarios", type=int)
    group.add_argument("--limit", type=int, default=240)
    group.add_argument("--minutes", type=float, default=10.0)
    group.add_argument("--speed", type=float, default=20.0)
    group.add_argument("--adoption-only", action="store_true",
                       help="only the time to open a stream of 1,000 scenarios named by id")
    group = parser.add_argument_group("matrix")
    group.add_argument("--cells", metavar="PICKS",
                       help="comma-separated cell numbers (from 0, in bench/matrix.py CELLS "
                            "order) or fragments of their labels; default: every cell")
    group.add_argument("--seeds", metavar="SEEDS", default="1",
                       help="comma-separated workload seeds; each cell runs once per seed")
    parser.add_argument("--no-snapshot", action="store_true",
                        help="measure the working tree as it is, even if it changes meanwhile")
    parser.add_argument("--commit", metavar="REV",
                        help="measure makestream as committed in REV (e.g. HEAD)")
    args = parser.parse_args(argv)
    try:
        seeds = tuple(int(s) for s in args.seeds.split(","))
        if any(s < 0 for s in seeds):
            raise ValueError
    except ValueError:
        parser.error(f"--seeds: expected comma-separated whole numbers, got {args.seeds!r}")
    try:
        cells = matrix.select(args.cells.split(",")) if args.cells else None
    except ValueError as exc:
        parser.error(f"--cells: {exc}")
    if not args.no_snapshot:
        snapshot(argv, args.commit)

    names = [args.name]
    if args.name == "all":
        names = [*BENCHES, *(SERVER if args.with_server else [])]
    t0 = time.perf_counter()
    results: list[tuple[Result, float, str]] = []
    for name in names:
        started = time.perf_counter()
        if name in SERVER:
            result, where = _server_bench(name, args.quick)
        else:
            if name == "latency":
                result = _latency(args)
            elif name == "matrix":
                result = matrix.bench(args.quick, cells, seeds)
            else:
                result = BENCHES[name](args.quick)
            where = str(emit(result, quick=args.quick))
        results.append((result, time.perf_counter() - started, where))
    total = time.perf_counter() - t0
    if args.name == "all":
        _summary(results, total, args.quick, skipped=[] if args.with_server else list(SERVER))
    else:
        print(f"{names[0]}: {total:.0f} s; results in {results[0][2]}")
    return 0


def _summary(results: list[tuple[Result, float, str]], total: float, quick: bool,
             skipped: list[str]) -> None:
    print(f"## Summary ({total:.0f} s in all)")
    doc: dict[str, Any] = {"quick": quick, "seconds": round(total, 1), "machine": machine(),
                           "benchmarks": {}, "skipped": skipped}
    for result, seconds, path in results:
        met = sum(1 for _, ok in result.goals if ok)
        print(f"- {result.name}: {met}/{len(result.goals)} goals met, {seconds:.0f} s ({path})")
        for goal, ok in result.goals:
            if not ok:
                print(f"    {'not measured' if ok is None else 'MISSED'}: {goal}")
        doc["benchmarks"][result.name] = {
            "seconds": round(seconds, 1), "file": path,
            "goals": [{"goal": g, "met": ok} for g, ok in result.goals],
        }
    for name in skipped:
        print(f"- {name}: not run (add --with-server, or: python -m bench {name})")
    RESULTS.mkdir(parents=True, exist_ok=True)
    suffix = "-quick" if quick else ""
    (RESULTS / f"all{suffix}-latest.json").write_text(json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())
