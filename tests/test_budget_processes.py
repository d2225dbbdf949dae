"""Three makestream processes against one simulated organization draw on one budget.

Without the shared ledger each would keep to 80 % of the limit on its own, 240 % together. The
zone runs in this process behind a recorder of every request's clock time, served over TCP; the
watches are real `makestream watch` subprocesses on the same fast clock.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import orjson
import pytest
from worlds import busy_world
from zone_server import Recorded, zone_served

from makestream.clock import Clock
from makestream.sim import SimZone

pytestmark = pytest.mark.slow
SPEED = 15.0
LIMIT = 60
SHARE = 0.5  # --budget-share: 30 requests a minute for all three together
WATCH_S = 150  # simulated seconds each watch runs


def ledger_sends(folder: Path, until: Callable[[], bool]) -> set[tuple[float, int]]:
    """Every send recorded in the ledger files of `folder` until `until()` holds, read under
    the ledger's lock often enough (a few clock seconds apart) that none ages out unseen."""
    seen: set[tuple[float, int]] = set()
    while True:
        done = until()
        for path in folder.glob("*.json") if folder.is_dir() else ():
            fd = os.open(path, os.O_RDONLY)
            try:
                fcntl.flock(fd, fcntl.LOCK_SH)
                raw = os.read(fd, 1 << 20)
            finally:
                os.close(fd)
            if raw:
                seen.update((float(t), int(pid)) for t, pid in orjson.loads(raw)["sends"])
        if done:
            return seen
        time.sleep(0.2)


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
    with ThreadPoolExecutor(len(processes)) as pool:
        waits = [pool.submit(p.communicate, timeout=60) for p in processes]
        granted = ledger_sends(Path(env["MAKESTREAM_BUDGET_DIR"]), until=lambda: all(
            w.done() for w in waits))
        outputs = [w.result() for w in waits]
    for process, (_, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 5, err.decode()  # --timeout
    cap = int(LIMIT * SHARE)
    # The sends the shared ledger let go, at the clock time each was let go: never more than
    # the cap in any minute, whichever process sent them.
    times = sorted(t for t, _ in granted)
    busiest = max(sum(1 for t in times if s <= t < s + 60) for s in times)
    assert busiest <= cap, f"{busiest} sends in one minute, over the shared cap of {cap}"
    assert len({pid for _, pid in granted}) == 3
    # Every request the zone saw was one of them (a send let go as --timeout ended may never
    # have reached it), and the share was used.
    assert cap <= len(app.times) <= len(granted)
    assert app.zone.limited == 0
    shared = 0
    for out, _ in outputs:
        events = [orjson.loads(line) for line in out.splitlines()]
        assert events[0]["type"] == "stream.opened"
        assert events[0]["budget_per_min"] == cap  # the share of all processes together
        shared = max([shared, *(e.get("budget_processes") or 0 for e in events)])
    assert shared >= 2  # the watches said they shared the budget
