"""Every ```sh block in the README runs, against the simulated Make zone, and ends as it says.

Each block runs as one `bash` script (`set -eo pipefail`) in a fresh directory and home, with
`makestream` on PATH running this checkout, and with MAKE_API_URL, MAKE_API_TOKEN and a fast
MAKESTREAM_CLOCK pointing at a `makestream sim serve` that the module starts on a free port. So
the tour's commands run exactly as printed, thirty times faster than real time.

HTML comments right before a block say how to judge it:

    <!-- not-run: REASON -->    skipped, with the reason shown in the test report
    <!-- follows: WHY -->       runs until interrupted: with its output on a terminal (as a
                                reader would run it), it passes once it has printed a line
                                without failing, and is then stopped with SIGTERM
    <!-- exit: 0 1 3 (WHY) -->  the exit statuses it may end with (default 0)
    <!-- free-port: 8787 -->    the test replaces this port with a free one, so that a server
                                the block starts cannot collide with anything else

A block that uses jq or curl is skipped when the tool is missing.
"""

from __future__ import annotations

import os
import pty
import re
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from makestream.clock import Clock
from makestream.sim import DEMO_TOKEN

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
SPEED = 30.0
TIMEOUT_S = 120.0  # a finite block: the slowest (a 30-minute --timeout at SPEED) takes a minute
FOLLOW_S = 60.0  # a following block must print within this

_FENCE = re.compile(r"^```sh\n(.*?)^```", re.DOTALL | re.MULTILINE)
_DIRECTIVE = re.compile(r"<!--\s*([a-z-]+)(?::\s*(.*?))?\s*-->")
# The README's first command installs makestream into .venv and then runs it. The suite runs in
# an environment installed the same way (the README's second command does it), so the test runs
# the part after the install, with this checkout's makestream.
_INSTALL = re.compile(
    r"^python3 -m venv \.venv && \.venv/bin/pip install -q \S+ && \.venv/bin/(makestream .*)$"
)


@dataclass
class Block:
    """One ```sh block of the README and the directives before it."""

    line: int
    code: str
    directives: dict[str, str] = field(default_factory=dict)

    @property
    def exit_codes(self) -> set[int]:
        text = self.directives.get("exit", "0")
        return {int(n) for n in re.findall(r"^\d+|(?<=\s)\d+(?=\s|$)", text.split("(")[0])}


def readme_blocks() -> list[Block]:
    text = README.read_text(encoding="utf-8")
    blocks = []
    for match in _FENCE.finditer(text):
        directives: dict[str, str] = {}
        before = text[: match.start()].rstrip("\n").split("\n")
        # The comments directly above the fence, nearest last.
        while before and (found := _DIRECTIVE.fullmatch(before[-1].strip())):
            directives.setdefault(found.group(1), found.group(2) or "")
            before.pop()
        line = text.count("\n", 0, match.start()) + 1
        blocks.append(Block(line, match.group(1), directives))
    return blocks


BLOCKS = readme_blocks()


def test_the_readme_has_runnable_blocks() -> None:
    runnable = [b for b in BLOCKS if "not-run" not in b.directives]
    assert len(runnable) >= 8
    for block in BLOCKS:
        unknown = set(block.directives) - {"not-run", "follows", "exit", "free-port"}
        assert not unknown, f"README.md:{block.line}: unknown directive {unknown}"
        if "not-run" in block.directives:
            assert block.directives["not-run"], f"README.md:{block.line}: not-run needs a reason"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def bin_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with a `makestream` that runs this checkout, first on the blocks' PATH."""
    directory = tmp_path_factory.mktemp("bin")
    shim = directory / "makestream"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m makestream "$@"\n')
    shim.chmod(0o755)
    return directory


@pytest.fixture(scope="module")
def sim_env(bin_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The environment of the blocks, with a simulated zone serving on a free port."""
    port = free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("MAKE", "XDG_", "_MAKESTREAM")) and key != "NO_COLOR"
    }
    env.update(
        PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
        MAKE_API_URL=f"http://127.0.0.1:{port}/api/v2",
        MAKE_API_TOKEN=DEMO_TOKEN,
        MAKESTREAM_CLOCK=Clock(SPEED).spec(),
        NO_COLOR="1",
    )
    log = tmp_path_factory.mktemp("sim") / "sim.log"
    with log.open("w") as stderr, subprocess.Popen(
        [sys.executable, "-m", "makestream", "sim", "serve", "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=stderr,
    ) as server:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the simulator did not start: {log.read_text()}")
                time.sleep(0.1)
        try:
            yield env
        finally:
            server.terminate()
            server.wait(timeout=10)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """End the block and everything it started (servers in the background included)."""
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _first_line(fd: int, process: subprocess.Popen[bytes], deadline: float) -> bytes:
    """Wait for a first line on `fd`, or for the block to end, or for the deadline."""
    buffer = b""
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while b"\n" not in buffer and time.monotonic() < deadline:
            if not selector.select(timeout=0.5):
                if process.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # EIO: the terminal's last writer is gone
                break
            if not chunk:
                break
            buffer += chunk
    return buffer


@pytest.mark.timeout(TIMEOUT_S + 30)
@pytest.mark.parametrize("block", BLOCKS, ids=[f"README.md:{b.line}" for b in BLOCKS])
def test_readme_block(block: Block, sim_env: dict[str, str], tmp_path: Path) -> None:
    if "not-run" in block.directives:
        pytest.skip(f"README.md:{block.line}: {block.directives['not-run']}")
    for tool in ("jq", "curl"):
        if re.search(rf"\b{tool}\b", block.code) and shutil.which(tool) is None:
            pytest.skip(f"README.md:{block.line} uses {tool}, which is not installed")
    code = "\n".join(
        (m.group(1) if (m := _INSTALL.match(line)) else line) for line in block.code.split("\n")
    )
    if port := block.directives.get("free-port"):
        assert code.count(port) >= 2, f"README.md:{block.line}: name port {port} everywhere"
        code = code.replace(port, str(free_port()))
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    env = {**sim_env, "HOME": str(home)}
    argv = ["bash", "-c", "set -eo pipefail\n" + code]
    if "follows" in block.directives:
        _judge_following(block, argv, env, work)
        return
    with subprocess.Popen(
        argv, cwd=work, env=env,
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group, so that _stop() reaches every child
    ) as process:
        try:
            _judge(block, code, process)
        finally:
            _stop(process)


def _judge_following(block: Block, argv: list[str], env: dict[str, str], cwd: Path) -> None:
    where = f"README.md:{block.line}"
    # A following pipeline is meant for a terminal ("as they happen"): give it one, so that
    # the last command in it (jq, curl) writes each line at once instead of filling a buffer.
    reader, writer = pty.openpty()
    try:
        with subprocess.Popen(
            argv, cwd=cwd, env=env,
            stdin=subprocess.DEVNULL, stdout=writer, stderr=subprocess.PIPE,
            start_new_session=True,
        ) as process:
            os.close(writer)
            writer = -1
            try:
                first = _first_line(reader, process, time.monotonic() + FOLLOW_S)
                status = process.poll()
                assert status is None, (
                    f"{where} ended with {status} instead of following: "
                    f"{process.stderr.read().decode() if process.stderr else ''}"
                )
                assert b"\n" in first, f"{where} printed nothing in {FOLLOW_S:g}s"
            finally:
                _stop(process)
    finally:
        os.close(reader)
        if writer >= 0:
            os.close(writer)


def _judge(block: Block, code: str, process: subprocess.Popen[bytes]) -> None:
    where = f"README.md:{block.line}"
    try:
        stdout, stderr = process.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{where} still running after {TIMEOUT_S:g}s")
    assert process.returncode in block.exit_codes, (
        f"{where} exited {process.returncode}, expected one of {sorted(block.exit_codes)}\n"
        f"stderr:\n{stderr.decode()}"
    )
    # A block that writes only to files says so with a redirection.
    assert stdout or "> " in code, f"{where} printed nothing"
