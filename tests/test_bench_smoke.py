"""The benchmark harness, small: correctness only, never timings.

One short latency case (20 scenarios, 240/min, four simulated minutes at speed 60) runs both
watchers in process: makestream must report every run that ended in the window exactly once
without a single 429, and keep to its 80 % budget; the naive baseline must see every run too
(else the comparison would be against a broken baseline).
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import anyio
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.harness import endpoint_kind  # noqa: E402
from bench.latency import Case, _side, summarize  # noqa: E402
from bench.report import percentile, table  # noqa: E402


@pytest.mark.anyio
@pytest.mark.timeout(60)
async def test_quick_latency_case_reports_every_run_once_within_budget() -> None:
    case = Case(scenarios=20, api_limit=240, minutes=4, speed=60)
    anchor = time.time()
    sides: dict[str, dict[str, object]] = {}

    async def one(kind: str) -> None:
        sides[kind] = await _side(kind, case, anchor)

    async with anyio.create_task_group() as tg:
        tg.start_soon(one, "makestream")
        tg.start_soon(one, "naive")
    ms = summarize(sides["makestream"], case)
    naive = summarize(sides["naive"], case)
    assert ms["expected"] > 0, "the window must hold finished runs"
    assert ms["missed"] == 0
    assert ms["duplicated"] == 0
    assert ms["limited_429"] == 0 and ms["throttled"] == 0
    assert ms["within_budget"], f"max {ms['rpm_max']}/min is over 80 % of {case.api_limit}"
    assert naive["missed"] == 0 and naive["duplicated"] == 0 and naive["limited_429"] == 0
    assert math.isfinite(ms["p95_s"]) and math.isfinite(naive["p95_s"])


@pytest.mark.anyio
@pytest.mark.timeout(60)
@pytest.mark.parametrize("variant", ["conservative", "generous"])
async def test_matrix_smoke_cell_reports_every_run_once(variant: str) -> None:
    """A matrix cell (bench/matrix.py), conservative and generous API: completeness only."""
    from bench.matrix import CONSERVATIVE, _vary

    knobs = CONSERVATIVE if variant == "conservative" else _vary(
        running_in_logs=True, log_lag=0.0, counters="end", queue_readable=True,
        organization_readable=True, log_timestamp="end")
    case = Case(scenarios=6, api_limit=120, minutes=3.5, speed=60, by_team=False,
                workload="active", variant=knobs, history_s=300.0)
    ms = summarize(await _side("makestream", case, time.time()), case)
    assert ms["expected"] > 0
    assert ms["missed"] == 0 and ms["duplicated"] == 0
    assert ms["limited_429"] == 0 and ms["throttled"] == 0


def test_percentile_is_nearest_rank_and_keeps_missed_runs_infinite() -> None:
    assert percentile([3.0, 1.0, 2.0, 4.0], 50) == 2.0
    assert percentile([1.0, 2.0, math.inf], 95) == math.inf
    assert percentile([1.0] * 99 + [math.inf], 99) == 1.0
    assert math.isnan(percentile([], 50))


def test_endpoint_kind_hides_ids() -> None:
    assert endpoint_kind("GET", "/scenarios/1001/logs") == "GET /scenarios/{id}/logs"
    assert endpoint_kind("GET", "/scenarios/7/executions/ab12") == (
        "GET /scenarios/{id}/executions/{id}"
    )
    assert endpoint_kind("GET", "/scenarios") == "GET /scenarios"


def test_table_formats_missing_and_infinite_values() -> None:
    text = table([{"a": 1.234, "b": math.inf, "c": None}])
    assert "1.23" in text and "∞" in text and "-" in text.splitlines()[-1]


@pytest.mark.timeout(90)
def test_quick_sse_fanout_delivers_every_event_once_to_every_subscriber() -> None:
    """bench.sse end to end, small: a real `serve-sse` and `sim serve` as subprocesses, raw
    socket subscribers in a worker process."""
    from bench.sse import Plan, measure

    run = measure(40, Plan(sizes=(40,), speed=10.0, window_s=4.0, settle_s=1.0, workers=1))
    assert run["connected"] == 40
    assert run["events"] > 0, "the window must hold events"
    assert run["missing"] == 0 and run["duplicated"] == 0
    assert run["deliveries"] == run["events"] * 40


def test_matrix_cells_are_picked_by_number_or_label_and_bad_picks_are_named() -> None:
    from bench.matrix import CELLS, select

    picked = select(["3", "counters=never", "3"])
    never = [c for c in CELLS if "counters=never" in c.label]
    assert len(never) >= 2 and picked == [CELLS[3], *never]  # every match, each once
    with pytest.raises(ValueError, match="no cell 99"):
        select(["99"])
    with pytest.raises(ValueError, match="'nope'"):
        select(["nope"])
