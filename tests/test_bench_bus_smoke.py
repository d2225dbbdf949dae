"""The scale-out benchmark's machinery (bench/bus.py): correctness only, never timings.

Its busy world as `sim serve --world` reads it, and the quick variant against real processes:
`sim serve`, one `serve-sse`, and a redis-server with three `serve-sse --bus` replicas.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import bus, sse  # noqa: E402


def test_busy_world_is_the_demo_s_scenarios_and_loads(tmp_path: Path) -> None:
    from makestream.sim.world import load_world

    args, api_limit = bus.world_args("busy", tmp_path)
    assert args[0] == "--world" and api_limit == 60
    world = load_world(args[1])
    assert tuple(s.id for s in world.scenarios) == sse.DEMO_SCENARIOS
    assert all(s.is_active for s in world.scenarios)


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_quick_bench_every_subscriber_gets_every_event_once_and_one_replica_polls() -> None:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (Debian package redis-server)")
    sse.raise_nofile()
    result = bus.bench(quick=True)
    runs = result.raw["runs"]
    assert [(r["world"], r["replicas"]) for r in runs] == [
        (world, replicas) for world in bus.QUICK.worlds for replicas in (0, bus.REPLICAS)]
    for r in runs:
        assert r["present"] == r["n"] == bus.QUICK.subscribers
        assert r["events"] > 0
        assert r["missing"] == 0 and r["duplicated"] == 0, r
        assert r["requests_total"] > 0
    for r in runs:
        if not r["replicas"]:
            continue
        assert len(r["holders_start"]) == 1 and r["holders_start"] == r["holders_end"]
        holder = r["holders_end"][0]
        assert r["requests"][holder] == r["requests_total"]
        assert [q for i, q in enumerate(r["requests"]) if i != holder] == [0] * (bus.REPLICAS - 1)
