"""The exit-status table, end to end: every way a watch ends × alert sinks × output format.

Each ending runs `makestream watch` as a subprocess against one `makestream sim serve`, once per
sink variant (none; a `--webhook` or `--alertmanager` receiver that answers; one on a dead port)
and output format (an ending that raises no alert skips the dead receivers' NDJSON variants: see
DEAD_NDJSON). The variants of one ending run at once, so the matrix costs about one process
start-up per ending. Every run must end with the table's code, a final `stream.closed` that
states the same code (NDJSON), and no traceback on stderr.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
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


class Receiver:
    """A webhook receiver and Alertmanager stand-in that answers every POST with 200."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        self.posts: list[tuple[str, dict[str, str], bytes]] = []  # path, headers, body
        lock = threading.Lock()
        paths, posts = self.paths, self.posts

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with lock:
                    paths.append(self.path)
                    posts.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Zone:
    env: dict[str, str]
    receiver: Receiver
    dead: str  # a loopback URL nothing listens on
    config: Path = field(default_factory=Path)


@pytest.fixture(scope="module")
def zone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Zone]:
    tmp = tmp_path_factory.mktemp("matrix")
    world = tmp / "world.json"
    spec = outcome_world(api_limit=6000)
    for scenario in spec.scenarios:
        # Every ending's variants fail 203 at once: Make would deactivate it after maxErrors.
        scenario.blueprint["metadata"]["scenario"]["maxErrors"] = 10_000  # type: ignore[index]
    world.write_text(json.dumps(spec.model_dump(mode="json")))
    port = free_port()
    env = {
        **os.environ,
        "MAKESTREAM_CLOCK": Clock(SPEED).spec(),
        "MAKE_API_TOKEN": DEMO_TOKEN,
        "MAKE_API_URL": f"http://127.0.0.1:{port}/api/v2",
        "XDG_CONFIG_HOME": str(tmp / "config"),
        "NO_COLOR": "1",
    }
    env.pop("MAKE_ZONE", None)
    # One failed run is a critical alert here, so --fail-on-alert has something to end on.
    subprocess.run(
        makestream("thresholds", "set", "consecutive_failures", "1"),
        env=env,
        check=True,
        capture_output=True,
        timeout=30,
    )
    receiver = Receiver()
    log = tmp / "sim.log"
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
            yield Zone(env, receiver, f"http://127.0.0.1:{free_port()}")
        finally:
            server.terminate()
            server.wait(timeout=10)
            receiver.close()


# Sink variants: option lists built from the zone.
SINKS: dict[str, Callable[[Zone], list[str]]] = {
    "none": lambda z: [],
    "webhook": lambda z: ["--webhook", f"{z.receiver.url}/hook"],
    "webhook-dead": lambda z: ["--webhook", f"{z.dead}/hook"],
    "alertmanager": lambda z: ["--alertmanager", z.receiver.url],
    "alertmanager-dead": lambda z: ["--alertmanager", z.dead],
}
# Every sink variant with NDJSON; compact with the variants most likely to differ.
VARIANTS = [(sink, "ndjson") for sink in SINKS] + [
    ("none", "compact"),
    ("webhook-dead", "compact"),
    ("alertmanager", "compact"),
]
# A sink is offered alert events only (`Sink.offer`): in an ending that raises no alert, a sink
# whose receiver is dead does exactly what one whose receiver answers does (it starts, is never
# offered anything, and closes), so those endings skip the dead-receiver NDJSON variants, and
# their other NDJSON variants check that the stream indeed holds no alert event.
DEAD_NDJSON = [("webhook-dead", "ndjson"), ("alertmanager-dead", "ndjson")]


@dataclass
class Ending:
    """One way a watch ends: its arguments, the code the table gives, and how it is driven."""

    args: list[str]
    code: int
    reason: str | None = None  # stream.closed's reason, where the ending fixes it
    env: dict[str, str] = field(default_factory=dict)
    signal: int | None = None  # sent once stream.opened is out
    close_pipe: bool = False  # stdout closed after the first line, as `| head -1` does
    alert_free: bool = False  # raises no alert: see DEAD_NDJSON

    def variants(self) -> list[tuple[str, str]]:
        if self.alert_free:
            return [v for v in VARIANTS if v not in DEAD_NDJSON]
        return VARIANTS


ENDINGS = {
    "success": Ending(["201", "--run", "--exit-status"], 0, "finished", alert_free=True),
    "warning": Ending(["202", "--run", "--exit-status"], 3, "finished", alert_free=True),
    "error": Ending(["203", "--run", "--exit-status"], 1, "finished"),
    "error-unasked": Ending(["203", "--run"], 0, "finished"),
    "timeout": Ending(["201", "--timeout", "2s"], 5, "timeout", alert_free=True),
    "count": Ending(["201", "--run", "--count", "1"], 0, alert_free=True),
    "fail-on-alert": Ending(["203", "--run", "--fail-on-alert", "critical"], 4, "alert"),
    "revoked-token": Ending(
        ["201"], 6, "error", env={"MAKE_API_TOKEN": "00000000-0000-4000-8000-000000000000"},
        alert_free=True,
    ),
    "unreachable": Ending(["101", "102", "--no-follow"], 6, "error", env={"MAKE_API_URL": ""},
                          alert_free=True),
    "sigint": Ending(["201"], 130, "interrupted", signal=signal.SIGINT, alert_free=True),
    "sigterm": Ending(["201"], 143, signal=signal.SIGTERM, alert_free=True),
    # Its stdout is closed early, so no stream to check for alerts: every variant runs.
    "closed-pipe": Ending(["201", "202"], 0, close_pipe=True),
}


def start(zone: Zone, ending: Ending, sink: str, fmt: str) -> subprocess.Popen[str]:
    env = {**zone.env, **ending.env}
    if "MAKE_API_URL" in ending.env:
        env["MAKE_API_URL"] = f"{zone.dead}/api/v2"
    return subprocess.Popen(
        makestream("watch", *ending.args, *SINKS[sink](zone), "--format", fmt),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(ending: Ending, watch: subprocess.Popen[str], fmt: str) -> tuple[int, str, str]:
    """Drive one watch to its ending; its exit code, stdout and stderr."""
    if ending.signal is not None:
        assert watch.stdout is not None
        first = watch.stdout.readline()
        if fmt == "ndjson":
            assert json.loads(first)["type"] == "stream.opened"
        watch.send_signal(ending.signal)
        out, err = watch.communicate(timeout=30)
        return watch.returncode, first + out, err
    out, err = watch.communicate(timeout=45)
    return watch.returncode, out, err


def close_pipes(zone: Zone, watches: list[subprocess.Popen[str]]) -> None:
    """Read one line from each watch and close its stdout, then give each a run to report.

    A writer learns that its reader went away only on its next write, so a run of 201 follows.
    """
    for watch in watches:
        assert watch.stdout is not None
        assert watch.stdout.readline()
        watch.stdout.close()
    subprocess.run(
        makestream("watch", "201", "--run"),
        env=zone.env,
        capture_output=True,
        timeout=30,
        check=True,
    )
    for watch in watches:
        watch.wait(timeout=30)
        watch.stdout = None  # closed above; communicate() reads stderr alone


@pytest.mark.parametrize("name", list(ENDINGS))
def test_every_ending_gives_the_tables_code(zone: Zone, name: str) -> None:
    ending = ENDINGS[name]
    watches = {(sink, fmt): start(zone, ending, sink, fmt) for sink, fmt in ending.variants()}
    if ending.close_pipe:
        close_pipes(zone, list(watches.values()))
    results = {key: finish(ending, watch, key[1]) for key, watch in watches.items()}
    for (sink, fmt), (code, out, err) in results.items():
        where = f"{name} with sink {sink}, format {fmt}: stderr {err!r}"
        assert code == ending.code, where
        assert "Traceback" not in err and "Error:" not in err, where
        assert all(line.startswith("makestream: ") for line in err.splitlines()), where
        if sink in ("none", "webhook", "alertmanager") and ending.code != 6:
            assert err == "", where  # nothing failed, so nothing to say
        if fmt == "ndjson" and not ending.close_pipe:
            last = json.loads(out.splitlines()[-1])
            assert last["type"] == "stream.closed", where
            assert last["exit_code"] == ending.code, where
            if ending.reason is not None:
                assert last["reason"] == ending.reason, where
            if ending.alert_free:
                types = {json.loads(line)["type"] for line in out.splitlines()}
                assert not types & {"alert.raised", "alert.resolved"}, (
                    f"{where}: an alert in an ending marked alert_free, whose dead-receiver "
                    "variants are skipped (see DEAD_NDJSON)")
    if name == "fail-on-alert":
        # The alert reached the live receivers, by each sink's own protocol.
        assert any(path == "/hook" for path in zone.receiver.paths)
        assert any(path == "/api/v2/alerts" for path in zone.receiver.paths)


def test_a_signed_slack_webhook_with_headers_reaches_the_receiver(
    zone: Zone, tmp_path: Path
) -> None:
    from standardwebhooks import Webhook

    secret = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    secret_file = tmp_path / "secret"
    secret_file.write_text(secret + "\n")
    result = subprocess.run(
        makestream(
            "watch", "203", "--run", "--fail-on-alert", "critical", "--format", "ndjson",
            "--webhook", f"{zone.receiver.url}/slack", "--webhook-format", "slack",
            "--webhook-header", "X-Team: ops", "--webhook-secret-file", str(secret_file),
        ),
        env=zone.env, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 4, result.stderr
    [(_, headers, body)] = [p for p in zone.receiver.posts if p[0] == "/slack"][:1]
    message = json.loads(body)
    assert isinstance(message["text"], str) and message["blocks"]
    assert headers["x-team"] == "ops"
    Webhook(secret).verify(body, headers)  # raises if the signature is wrong


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--webhook-header", "X-Team ops"], "--webhook-header"),
        (["--webhook-header", "Host: evil"], "--webhook-header"),
        (["--webhook-format", "xml"], "--webhook-format"),
        (["--webhook-secret-file", "/nonexistent/secret"], "--webhook-secret-file"),
    ],
)
def test_bad_webhook_options_are_one_line_and_exit_2(
    zone: Zone, args: list[str], error: str
) -> None:
    result = subprocess.run(
        makestream("watch", "201", "--webhook", f"{zone.receiver.url}/x", *args),
        env=zone.env, capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and error in result.stderr, result.stderr
    assert result.stdout == ""
