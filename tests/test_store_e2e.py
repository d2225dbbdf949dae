"""The history store end to end: `makestream watch` as a subprocess over the demo world, served
over TCP from this process (so that its ground truth can be read), killed with SIGKILL and
started again from its cursor file."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
import uvicorn

from makestream.clock import Clock
from makestream.sim import DEMO_TOKEN, SimZone, demo_world
from makestream.store import open_read, query
from makestream.store.query import Selection

pytestmark = pytest.mark.slow
SPEED = 20.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def zone() -> Iterator[tuple[SimZone, str]]:
    """The demo world on a fast clock, served by uvicorn in a thread on a free loopback port."""
    zone = SimZone(demo_world(), clock=Clock(SPEED), seed=3, running_in_logs=True)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(zone.app, host="127.0.0.1", port=port,
                                           log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started
    try:
        yield zone, f"http://127.0.0.1:{port}/api/v2"
    finally:
        server.should_exit = True
        thread.join(10)


class Watch:
    """A `makestream watch` subprocess whose finished runs are collected as they are written."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.finished: list[str] = []
        self.opened_at: float | None = None  # clock time of stream.opened
        self._log = log.open("w")
        self.proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=self._log,
                                     text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            event = json.loads(line)
            if event["type"] == "stream.opened":
                self.opened_at = datetime.fromisoformat(event["ts"]).timestamp()
            if event["type"] == "execution.finished":
                self.finished.append(event["execution_id"])

    def wait_for(self, count: int, timeout: float = 40) -> None:
        deadline = time.monotonic() + timeout
        while len(self.finished) < count:
            assert self.proc.poll() is None, "the watch ended early"
            assert time.monotonic() < deadline, f"only {len(self.finished)} runs reported"
            time.sleep(0.02)

    def end(self, sig: int) -> None:
        self.proc.send_signal(sig)
        self.proc.wait(timeout=20)
        self._reader.join(10)
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        self._log.close()


def test_sigkill_and_restart_leave_every_execution_once_in_the_store(
    zone: tuple[SimZone, str], tmp_path: Path
) -> None:
    sim, url = zone
    store, cursor = tmp_path / "history.db", tmp_path / "watch.cur"
    env = {**os.environ, "MAKESTREAM_CLOCK": sim.clock.spec(), "MAKE_API_TOKEN": DEMO_TOKEN,
           "MAKE_API_URL": url, "NO_COLOR": "1"}
    env.pop("MAKE_ZONE", None)
    ids = [str(s.id) for s in sim.world.scenarios]
    argv = [sys.executable, "-m", "makestream", "watch", *ids, "--api-limit", "600",
            "--cursor-file", str(cursor), "--store", str(store), "--format", "ndjson",
            "--no-alerts"]

    first = Watch(argv, env, tmp_path / "first.log")
    first.wait_for(8)
    assert first.opened_at is not None
    began = first.opened_at
    first.end(signal.SIGKILL)  # mid-stream: no chance to flush anything
    killed = sim.clock.now()
    time.sleep(1.5)  # runs keep ending while nothing watches
    second = Watch(argv, env, tmp_path / "second.log")
    second.wait_for(8)
    deadline = time.monotonic() + 30
    while sim.clock.now() < killed + 180 and time.monotonic() < deadline:
        time.sleep(0.1)
    ended = sim.clock.now()
    second.end(signal.SIGTERM)
    assert second.proc.returncode == 143, (tmp_path / "second.log").read_text()

    conn = open_read(store)
    assert conn is not None
    stored = [r["execution_id"] for r in query.executions(conn, Selection())]
    assert len(stored) == len(set(stored))
    # Every run either watch wrote out is stored. (A run written out just before the kill, and
    # not yet in the cursor file, is written out again by the second watch: the output is
    # at-least-once across a SIGKILL; the store keeps it once all the same.)
    reported = first.finished + second.finished
    assert set(stored) == set(reported)

    # Ground truth: every run that ended after the first watch opened (its first scan tells news
    # from history by the run's end) and long enough before the second stopped to be reported.
    truth = {t.execution_id: t for t in sim.truth()}
    assert set(stored) <= set(truth)
    expected = {eid for eid, t in truth.items() if began < t.ended_at < ended - 90}
    gap = {eid for eid, t in truth.items() if killed < t.ended_at < killed + 30}
    assert gap, "no run ended while the watch was down: the test proves nothing"
    missing = expected - set(stored)
    assert not missing, (
        f"{len(missing)} of {len(expected)} runs missing from the store: "
        f"{[(truth[m], began, killed, ended) for m in missing]}")
