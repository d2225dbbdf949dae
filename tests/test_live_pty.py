"""`makestream watch --demo` on a real pseudo-terminal shows the live view; a pipe gets none."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.slow


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
