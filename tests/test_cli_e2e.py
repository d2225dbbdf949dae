"""End to end: the `makestream` command as a subprocess against `makestream sim serve` over TCP."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from worlds import outcome_world

from makestream.clock import Clock
from makestream.sim import DEMO_TOKEN

pytestmark = pytest.mark.slow
SPEED = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def makestream(*args: str) -> list[str]:
    return [sys.executable, "-m", "makestream", *args]


class Sim:
    def __init__(self, url: str, env: dict[str, str]) -> None:
        self.url, self.env = url, env

    def run(
        self, *args: str, timeout: float = 60, **kw: object
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            makestream(*args),
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            **kw,
        )  # type: ignore[call-overload]


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[Sim]:
    world = tmp_path / "world.json"
    world.write_text(json.dumps(outcome_world(api_limit=600).model_dump(mode="json")))
    port = free_port()
    clock = Clock(SPEED)
    env = {
        **os.environ,
        "MAKESTREAM_CLOCK": clock.spec(),
        "MAKE_API_TOKEN": DEMO_TOKEN,
        "MAKE_API_URL": f"http://127.0.0.1:{port}/api/v2",
        "NO_COLOR": "1",
    }
    env.pop("MAKE_ZONE", None)
    log = tmp_path / "sim.log"
    with (
        log.open("w") as stderr,
        subprocess.Popen(
            makestream("sim", "serve", "--port", str(port), "--world", str(world)),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        ) as server,
    ):
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if server.poll() is not None:
                    pytest.fail(f"sim serve exited: {log.read_text()}")
                time.sleep(0.05)
        try:
            yield Sim(env["MAKE_API_URL"], env)
        finally:
            server.terminate()
            server.wait(timeout=10)


@pytest.mark.parametrize(
    ("scenario", "code", "status"), [(201, 0, "success"), (202, 3, "warning"), (203, 1, "error")]
)
def test_run_exit_status_by_outcome(sim: Sim, scenario: int, code: int, status: str) -> None:
    done = sim.run("watch", str(scenario), "--run", "--exit-status", "--timeout", "10m")
    assert done.returncode == code, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert events[-1]["type"] == "stream.closed" and events[-1]["exit_code"] == code
    [finished] = [e for e in events if e["type"] == "execution.finished"]
    assert finished["status"] == status
    assert done.stderr == ""


def test_timeout_exits_5(sim: Sim) -> None:
    done = sim.run("watch", "201", "--no-follow", "--since", "1m", "--timeout", "0s")
    assert done.returncode in (0, 5)  # --no-follow may finish first; now force a long wait:
    done = sim.run("watch", "201", "--timeout", "20s")
    assert done.returncode == 5, done.stderr
    assert json.loads(done.stdout.splitlines()[-1])["reason"] == "timeout"


def test_bad_token_exits_6_with_one_line(sim: Sim) -> None:
    env = {**sim.env, "MAKE_API_TOKEN": "00000000-0000-4000-8000-000000000000"}
    done = subprocess.run(
        makestream("watch", "201"), env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 6
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("makestream: error: ")
    assert "00000000-0000-4000-8000-000000000000" not in done.stderr + done.stdout
    assert json.loads(done.stdout.splitlines()[-1])["type"] == "stream.closed"


def test_usage_errors_exit_2(sim: Sim) -> None:
    for args in (
        ["watch", "201", "--timeout", "soon"],
        ["watch", "201", "--resume", "x"],
        ["watch", "--run"],
        ["watch", "201", "--data", "{"],
    ):
        done = sim.run(*args)
        assert done.returncode == 2, (args, done.stderr)
        assert done.stdout == ""


def test_closed_pipe_ends_quietly(sim: Sim) -> None:
    with subprocess.Popen(
        makestream("watch", "201", "202", "203"),
        env=sim.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as watch:
        assert watch.stdout is not None and watch.stderr is not None
        watch.stdout.readline()
        watch.stdout.close()  # as `| head -1` does
        subprocess.run(
            makestream("watch", "201", "--run"),
            env=sim.env,
            capture_output=True,
            timeout=60,
            check=False,
        )
        assert watch.wait(timeout=30) == 0
        assert watch.stderr.read() == b""


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signals_close_the_stream(sim: Sim, sig: int, code: int) -> None:
    with subprocess.Popen(
        makestream("watch", "201"),
        env=sim.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as watch:
        assert watch.stdout is not None
        assert json.loads(watch.stdout.readline())["type"] == "stream.opened"
        watch.send_signal(sig)
        rest = watch.stdout.read().splitlines()
        assert watch.wait(timeout=30) == code
    closed = json.loads(rest[-1])
    assert closed["type"] == "stream.closed" and closed["exit_code"] == code


def test_demo_count_pipes_to_jq_shape() -> None:
    done = subprocess.run(
        makestream("watch", "--demo", "--count", "3"),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert sum(e["type"] == "execution.finished" for e in events) == 3
    assert events[0]["type"] == "stream.opened" and events[-1]["type"] == "stream.closed"


def test_demo_modules_count_ends_once_the_counted_runs_modules_are_out() -> None:
    # Runs keep finishing while the module results of the first three are read: the watch
    # waits for those three only.
    done = subprocess.run(
        # A faster clock: module results cost a request per module, and the demo's wall clock
        # keeps to 48 requests a minute.
        makestream("watch", "--demo", "--speed", "20", "--modules", "--count", "3"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert events[-1]["reason"] == "count"
    counted = [e["execution_id"] for e in events if e["type"] == "execution.finished"][:3]
    with_modules = {e["execution_id"] for e in events if e["type"] == "module.result"}
    assert set(counted) <= with_modules


def test_cursor_file_cron_style(sim: Sim, tmp_path: Path) -> None:
    cursor = tmp_path / "state.cur"
    sim.run("watch", "201", "--run")
    first = sim.run("watch", "201", "--no-follow", "--cursor-file", str(cursor))
    assert first.returncode == 0, first.stderr
    ran = [json.loads(x) for x in first.stdout.splitlines()]
    assert any(e["type"] == "execution.finished" for e in ran)
    assert cursor.read_text().startswith("2.")
    again = sim.run("watch", "201", "--no-follow", "--cursor-file", str(cursor))
    assert not [x for x in again.stdout.splitlines() if '"execution.finished"' in x]
    sim.run("watch", "201", "--run")
    third = sim.run("watch", "201", "--no-follow", "--cursor-file", str(cursor))
    assert sum('"execution.finished"' in x for x in third.stdout.splitlines()) == 1
    cursor.write_text("garbage\n")
    bad = sim.run("watch", "201", "--no-follow", "--cursor-file", str(cursor))
    assert bad.returncode == 2 and "--cursor-file" in bad.stderr
    assert cursor.read_text() == "garbage\n"  # never overwritten by a failed run


def test_sim_serve_answers_with_make_shapes(sim: Sim) -> None:
    import httpx

    headers = {"Authorization": f"Token {DEMO_TOKEN}"}
    ok = httpx.get(f"{sim.url}/scenarios", params={"teamId": 1}, headers=headers)
    assert ok.status_code == 200 and "pg" in ok.json() and ok.json()["scenarios"]
    bad = httpx.get(
        f"{sim.url}/scenarios",
        params={"teamId": 1},
        headers={"Authorization": "Token 00000000-0000-4000-8000-000000000000"},
    )
    assert bad.status_code == 401 and set(bad.json()) >= {"detail", "message", "code"}
