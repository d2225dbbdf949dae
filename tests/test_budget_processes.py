"""Three makestream processes against one simulated organization draw on one budget.

Without the shared ledger each would keep to 80 % of the limit on its own, 240 % together. The
zone runs in this process behind a recorder of every request's clock time, served over TCP; the
watches are real `makestream watch` subprocesses on the same fast clock.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from worlds import busy_world
from zone_server import Recorded, zone_served

from makestream.clock import Clock
from makestream.sim import SimZone

pytestmark = pytest.mark.slow
SPEED = 15.0
LATE_S = 4.0  # how late (clock s) a request may reach the zone after the budget let it go
LIMIT = 60
SHARE = 0.5  # --budget-share: 30 requests a minute for all three together
WATCH_S = 150  # simulated seconds each watch runs


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Recorded, dict[str, str]]]:
    zone = SimZone(busy_world(12, rate_per_minute=6, api_limit=LIMIT), clock=Clock(SPEED), seed=3)
    with zone_served(zone, tmp_path) as served:
        yield served


def test_three_watches_never_send_more_than_the_share_in_any_minute(
        served: tuple[Recorded, dict[str, str]]) -> None:
    app, env = served
    commands = [
        [sys.executable, "-m", "makestream", "watch", "--team", str(team), "-o", "ndjson",
         "--timeout", f"{WATCH_S}s", "--no-alerts", "--budget-share", str(SHARE)]
        for team in (1, 2, 1)
    ]
    processes = [subprocess.Popen(c, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                 for c in commands]
    outputs = [p.communicate(timeout=60) for p in processes]
    for process, (_, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 5, err.decode()  # --timeout
    cap = int(LIMIT * SHARE)
    times = sorted(app.times)
    # Times are taken as requests arrive, some real milliseconds (clock seconds at this speed,
    # on a busy machine) after the budget let them go: requests let go in a minute arrive
    # within it or up to LATE_S after. Any window of 60 - LATE_S s then holds arrivals let go
    # within one minute; one more arriving later than that is tolerated, never more.
    busiest = max(sum(1 for t in times if s <= t < s + 60 - LATE_S) for s in times)
    assert busiest <= cap + 1, f"{busiest} requests in one minute, over the shared cap of {cap}"
    assert len(times) >= cap  # and the budget was used
    assert app.zone.limited == 0
    shared = 0
    for out, _ in outputs:
        events = [orjson.loads(line) for line in out.splitlines()]
        assert events[0]["type"] == "stream.opened"
        assert events[0]["budget_per_min"] == cap  # the share of all processes together
        shared = max([shared, *(e.get("budget_processes") or 0 for e in events)])
    assert shared >= 2  # the watches said they shared the budget
