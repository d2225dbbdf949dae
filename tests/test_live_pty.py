"""`makestream watch --demo` on a real pseudo-terminal shows the live view; a pipe gets none;
and names and messages from Make reach the terminal as visible escapes, never as controls."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from makestream.sim.flows import blueprint, module
from makestream.sim.world import Profile, ScenarioSpec, TeamSpec, WorldSpec

pytestmark = pytest.mark.slow


# Retitles the window, rings the bell, clears the screen.
HOSTILE_NAME = "x\x1b]0;pwned\x07\x1b[2J"
# An OSC 8 hyperlink, as an API's error body quoted by Make might carry it.
HOSTILE_ERROR = "\x1b]8;;http://evil\x1b\\CLICK\x1b]8;;\x1b\\ failed"

# Runs `makestream` with `--demo` serving the world in argv[1] and the http module failing with
# the message in argv[2]: the simulator in the same process as the live view, as --demo is.
HOSTILE_BOOT = """
import sys
import makestream.sim as sim
import makestream.sim.runs as runs
from makestream.sim.world import WorldSpec
world = WorldSpec.model_validate_json(open(sys.argv.pop(1), encoding="utf-8").read())
runs._APP_ERRORS["http"] = ("ConnectionError", sys.argv.pop(1))
sim.demo_world = lambda: world
from makestream.cli import main
main()
"""


def _hostile_world() -> WorldSpec:
    return WorldSpec(
        teams=[TeamSpec(id=1, name="Ops")],
        scenarios=[ScenarioSpec(
            id=901, name=HOSTILE_NAME, team_id=1,
            blueprint=blueprint(HOSTILE_NAME, [module(1, "json:ParseJSON"),
                                               module(2, "http:ActionSendData")],
                                max_errors=1_000_000),
            scheduling={"type": "indefinitely", "interval": 60},
            profile=Profile(duration_mean=3, duration_stddev=0, error_rate=1.0,
                            failing_module=2),
        )],
    )


def _read_pty(command: list[str], *, until: tuple[str, ...], timeout: float) -> str:
    main, secondary = pty.openpty()
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "100", "LINES": "45"}
    env.pop("NO_COLOR", None)
    with subprocess.Popen(command, stdout=secondary, stderr=secondary, stdin=secondary,
                          env=env, close_fds=True) as proc:
        os.close(secondary)
        seen = b""
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                ready, _, _ = select.select([main], [], [], 0.2)
                if ready:
                    try:
                        chunk = os.read(main, 65536)
                    except OSError:
                        break
                    if not chunk:
                        break
                    seen += chunk
                text = seen.decode("utf-8", "replace")
                if all(word in text for word in until):
                    break
        finally:
            proc.terminate()
            proc.wait(timeout=10)
            os.close(main)
    return seen.decode("utf-8", "replace")


def test_live_view_shows_progress_rows_and_a_finished_run() -> None:
    screen = _read_pty(
        [sys.executable, "-m", "makestream", "watch", "--demo", "--speed", "20"],
        until=("Running", "~", "success"), timeout=45,
    )
    assert "budget" in screen
    assert "\x1b[" in screen  # a terminal gets colour and cursor control
    assert "Running" in screen and "%" in screen  # a progress row with its estimate
    assert "success" in screen and "Latest finished" in screen


def test_a_pipe_gets_plain_ndjson_without_escape_codes() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "makestream", "watch", "--demo", "--speed", "50", "--count", "2"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "\x1b" not in done.stdout + done.stderr
    assert all(line.startswith('{"v":1,') for line in done.stdout.splitlines())


def test_hostile_names_and_messages_reach_the_terminal_as_visible_escapes(tmp_path: Path) -> None:
    world = tmp_path / "world.json"
    world.write_text(_hostile_world().model_dump_json(), encoding="utf-8")
    screen = _read_pty(
        [sys.executable, "-c", HOSTILE_BOOT, str(world), HOSTILE_ERROR,
         "watch", "--demo", "--speed", "60", "--no-alerts"],
        until=("Latest finished", "x\\x1b]0;pwned", "\\x1b]8;;http://evil"), timeout=45,
    )
    # The view was drawn, with the name and the message shown as escapes...
    assert "Latest finished" in screen and "error" in screen
    assert "x\\x1b]0;pwned\\x07\\x1b[2J" in screen
    assert "\\x1b]8;;http://evil" in screen
    # ...and none of them reached the terminal as a control sequence.
    assert "\x1b]0;" not in screen  # window title
    assert "\x1b]8;" not in screen  # hyperlink
    assert "\x1b]" not in screen  # any OSC at all: rich draws none of its own here
    assert "\x1b[2J" not in screen  # clear screen
    assert "\x07" not in screen
