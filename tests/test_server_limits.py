"""serve-sse against a hostile client: oversized and unfinished request heads, cursor bombs,
foreign Host headers, absurd ids, descriptor exhaustion, token files that never end.

Servers run in process on free loopback ports (`test_server.sse_server`) with test-sized
timeouts; raw sockets send what no HTTP client library would. Memory is the peak RSS of this
process (server and clients together) over a block, with the peak reset through
/proc/self/clear_refs first.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from test_server import sse_server
from test_server_cli import free_port, isolated_env, makestream

from makestream.errors import UsageError
from makestream.limits import CURSOR_MAX_CHARS, FILTER_MAX_IDS, HEADERS_MAX_BYTES, MAKE_INT_MAX
from makestream.server import runner
from makestream.server.app import canonical_host, split_host
from makestream.server.hub import UPSTREAM_FAILED

FAST = runner.ConnectionLimits(headers_timeout_s=0.3, idle_timeout_s=0.3)
# Waits long enough that a test about sizes cannot pass by a timeout instead.
PATIENT = runner.ConnectionLimits(headers_timeout_s=20, idle_timeout_s=20)
MiB = 1 << 20


# -- raw HTTP ------------------------------------------------------------------------------------


@dataclass
class Answer:
    status: int | None  # None: the connection closed without a response
    head: bytes
    body: bytes
    seconds: float  # from connecting to the end of the connection

    def json(self) -> Any:
        return json.loads(self.body)


def _address(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


def _answer(data: bytes, started: float) -> Answer:
    head, _, body = data.partition(b"\r\n\r\n")
    match = re.match(rb"HTTP/1\.1 (\d{3}) ", head)
    return Answer(int(match[1]) if match else None, head, body, time.monotonic() - started)


def exchange(url: str, request: bytes, timeout: float = 10.0) -> Answer:
    """Send `request` (as far as the server takes it) and read until the server closes."""
    started = time.monotonic()
    with socket.create_connection(_address(url), timeout=timeout) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(request)
        data = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(1 << 16):
                data += chunk
    return _answer(data, started)


def get(path: str, host: str = "127.0.0.1", headers: bytes = b"") -> bytes:
    return (f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n".encode()
            + headers + b"\r\n")


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        match = re.search(rf"^{field}:\s+(\d+) kB", status.read(), re.MULTILINE)
    assert match is not None
    return int(match[1])


@contextlib.contextmanager
def peak_rss_growth() -> Iterator[list[float]]:
    """The peak RSS of this process over the block, less its RSS before, in MiB (appended to
    the yielded list at the end)."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")  # resets VmHWM to the current RSS
    except OSError:
        pytest.skip("the peak RSS cannot be reset here (/proc/self/clear_refs)")
    before = _status_kib("VmRSS")
    growth: list[float] = []
    yield growth
    growth.append((_status_kib("VmHWM") - before) / 1024)


async def in_threads(count: int, call: Any, *args: Any) -> list[Any]:
    results: list[Any] = []

    async def one() -> None:
        results.append(await anyio.to_thread.run_sync(call, *args))

    async with anyio.create_task_group() as tg:
        for _ in range(count):
            tg.start_soon(one)
    return results


@pytest.fixture(params=["httptools", "h11"])
def protocol(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both of uvicorn's HTTP implementations (httptools is the one serve-sse uses)."""
    if request.param == "h11":
        monkeypatch.setattr(runner, "_protocol", lambda: runner._ConnectedH11)
    return str(request.param)


# -- request heads -------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_huge_unfinished_head_is_refused_without_holding_it(protocol: str) -> None:
    # Twenty clients each sending 2 MiB of one header that never ends: 40 MiB if buffered.
    request = get("/healthz").removesuffix(b"\r\n") + b"X-Pad: " + b"a" * (2 * MiB)
    async with sse_server(limits=PATIENT) as srv:
        assert (await anyio.to_thread.run_sync(exchange, srv.url, get("/healthz"))).status == 200
        with peak_rss_growth() as growth:
            answers = await in_threads(20, exchange, srv.url, request)
        for answer in answers:
            assert answer.status in (431, None), answer.head
            assert answer.seconds < 5
            if answer.status == 431:
                assert answer.json() == {"error": "request head larger than 96 KiB"}
        assert any(a.status == 431 for a in answers)
        assert growth[0] < 10, f"peak RSS grew by {growth[0]:.1f} MiB"
        # The server is fine afterwards.
        assert (await anyio.to_thread.run_sync(exchange, srv.url, get("/healthz"))).status == 200


@pytest.mark.anyio
async def test_a_head_near_the_cap_is_served_and_one_past_it_is_not(protocol: str) -> None:
    async with sse_server(limits=PATIENT) as srv:
        near = get("/healthz", headers=b"X-Pad: " + b"a" * (HEADERS_MAX_BYTES - 200) + b"\r\n")
        past = get("/healthz", headers=b"X-Pad: " + b"a" * (HEADERS_MAX_BYTES + 10) + b"\r\n")
        assert len(near) <= HEADERS_MAX_BYTES < len(past)
        assert (await anyio.to_thread.run_sync(exchange, srv.url, near)).status == 200
        assert (await anyio.to_thread.run_sync(exchange, srv.url, past)).status in (431, None)


@pytest.mark.anyio
async def test_a_half_sent_head_is_closed_after_the_head_timeout(protocol: str) -> None:
    async with sse_server(limits=FAST) as srv:
        half = get("/healthz").removesuffix(b"\r\n")  # no blank line: the head never ends
        answer = await anyio.to_thread.run_sync(exchange, srv.url, half)
        assert answer.status == 408
        assert answer.json() == {"error": "the request head was not sent in time"}
        assert 0.25 <= answer.seconds < 2
        # Nothing at all, after connecting: the same.
        silent = await anyio.to_thread.run_sync(exchange, srv.url, b"")
        assert silent.status == 408 and 0.25 <= silent.seconds < 2


def _drip(url: str, seconds: float) -> tuple[float, bytes]:
    """A head sent a byte every 20 ms, never finished; when the server closed, and what it
    said."""
    started = time.monotonic()
    with socket.create_connection(_address(url), timeout=5) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        sock.settimeout(0.02)
        while time.monotonic() - started < seconds:
            try:
                sock.sendall(b"a")
                data = sock.recv(1 << 16)
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                data = b""
            try:
                while data and (more := sock.recv(1 << 16)):
                    data += more
            except (TimeoutError, ConnectionResetError):
                # (closing with our unread drip in its buffer, the server's kernel may answer
                # the rest with a reset: the answer is what came before it)
                pass
            return time.monotonic() - started, data
    return time.monotonic() - started, b""


@pytest.mark.anyio
async def test_a_trickled_head_is_closed_by_the_head_timeout_whatever_it_keeps_sending(
    protocol: str,
) -> None:
    async with sse_server(limits=FAST) as srv:
        closed_after, said = await anyio.to_thread.run_sync(_drip, srv.url, 5.0)
        assert 0.25 <= closed_after < 2
        assert said.startswith(b"HTTP/1.1 408 ")


def _keep_alive(url: str) -> tuple[list[bytes], float]:
    """Two requests on one connection, 0.1 s apart; then how long from the second answer until
    the server closes."""
    with socket.create_connection(_address(url), timeout=5) as sock:
        answers = []
        idle_from = 0.0
        for _ in range(2):
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            data = b""
            while not data.endswith(b'{"status":"ok"}'):
                data += sock.recv(1 << 16)
            # (Timed from the answer, not from the sleep: on a loaded machine a sleep of 0.1 s
            # can take twice that.)
            idle_from = time.monotonic()
            answers.append(data)
            time.sleep(0.1)
        assert sock.recv(1 << 16) == b""
        return answers, time.monotonic() - idle_from


@pytest.mark.anyio
async def test_keep_alive_works_and_an_idle_connection_is_closed(protocol: str) -> None:
    async with sse_server(limits=FAST) as srv:
        answers, idle = await anyio.to_thread.run_sync(_keep_alive, srv.url)
        assert all(a.startswith(b"HTTP/1.1 200 ") for a in answers)
        assert 0.25 <= idle < 2


def _stream_for(url: str, seconds: float) -> bytes:
    data = b""
    with socket.create_connection(_address(url), timeout=5) as sock:
        sock.sendall(get("/v1/events?type=module.result"))
        sock.settimeout(0.05)
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            try:
                chunk = sock.recv(1 << 16)
            except TimeoutError:
                continue
            assert chunk, "the server closed the stream"
            data += chunk
    return data


@pytest.mark.anyio
async def test_streams_and_normal_requests_outlive_the_short_timeouts(protocol: str) -> None:
    # The head timer stops with the head, and the idle timer waits for the response's end.
    async with sse_server(limits=FAST, app={"heartbeat_s": 0.1}) as srv:
        data = await anyio.to_thread.run_sync(_stream_for, srv.url, 1.2)
        assert data.startswith(b"HTTP/1.1 200 ") and b" 408 " not in data
        assert data.count(b": ping") >= 6
        http = srv.http()
        assert (await http.get("/healthz")).json() == {"status": "ok"}
        assert (await http.get("/v1/state?scenario=101")).status_code == 200


# -- cursors -------------------------------------------------------------------------------------


def _bomb(inflated: int) -> str:
    """A well-formed cursor whose body inflates to `inflated` bytes of zeros."""
    packer = zlib.compressobj(9)
    chunk = b"\0" * MiB
    packed = b"".join(packer.compress(chunk) for _ in range(inflated // MiB)) + packer.flush()
    return "1." + base64.urlsafe_b64encode(packed).rstrip(b"=").decode() + "~abc.1"


@pytest.mark.anyio
async def test_a_cursor_bomb_is_refused_with_400_and_costs_no_memory() -> None:
    bomb = _bomb(40 * MiB)
    assert len(bomb) <= CURSOR_MAX_CHARS  # only inflating tells it apart
    huge = "1." + "A" * 435_000  # the tester's 435 KB Last-Event-ID
    async with sse_server(limits=PATIENT) as srv:
        http = srv.http()
        await http.get("/healthz")
        with peak_rss_growth() as growth:
            started = time.monotonic()
            answers = await in_threads(10, exchange, srv.url,
                                       get("/v1/events", headers=f"Last-Event-ID: {huge}\r\n"
                                           .encode()))
            head_seconds = time.monotonic() - started
            bombs = [await http.get("/v1/events", headers={"Last-Event-ID": bomb})
                     for _ in range(10)]
        assert all(a.status in (431, None) for a in answers)  # larger than a request head
        assert head_seconds < 5
        for response in bombs:
            assert response.status_code == 400
            assert response.json()["error"].startswith(
                "invalid cursor: its body inflates to more than 1048576 bytes")
        assert growth[0] < 50, f"peak RSS grew by {growth[0]:.1f} MiB"


@pytest.mark.anyio
async def test_a_cursor_longer_than_the_cap_is_refused_unread() -> None:
    long = "1." + "A" * (CURSOR_MAX_CHARS + 10)
    async with sse_server() as srv:
        request = get("/v1/events", headers=f"Last-Event-ID: {long}\r\n".encode())
        answer = await anyio.to_thread.run_sync(exchange, srv.url, request)
        assert answer.status == 400
        assert answer.json() == {
            "error": f"invalid cursor: longer than {CURSOR_MAX_CHARS} characters, the limit"}
        # In the query it makes a URL longer than httptools parses (64 KiB): 400 as well.
        answer = await anyio.to_thread.run_sync(exchange, srv.url,
                                                get(f"/v1/events?cursor={long}"))
        assert answer.status == 400 and b"\n" not in answer.body


def _packed(body: bytes) -> str:
    return base64.urlsafe_b64encode(zlib.compress(body)).rstrip(b"=").decode()


@pytest.mark.anyio
@pytest.mark.parametrize("cursor", [
    "1.", "1.~", "1.!!!!", "1.é~x.1", "1." + _packed(b"[]"), "1." + _packed(b'{"1":[1]}'),
    "1." + _packed(b'{"' + b"9" * 30 + b'":[1,[]]}'), "1." + _packed(b'{"1":[1e999,[]]}'),
    "1." + _packed(b'{"1":[1,[' + b"[" * 10_000 + b"]]}"), "1." + _packed(b"\xff\xfe"),
    "1.eJzLSM3JyQcABiwCFQ", "1." + _packed(b"{}") + "~x." + "9" * 40, "2.abc", "\x00",
])
async def test_a_damaged_cursor_is_a_400_never_a_500(cursor: str) -> None:
    async with sse_server() as srv:
        response = await srv.http().get("/v1/events", params={"cursor": cursor})
        assert response.status_code == 400, response.text
        assert response.json()["error"].startswith("invalid cursor")
        assert "\n" not in response.text


# -- ids -----------------------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(("query", "error"), [
    ("scenario=" + "9" * 4300, "scenario: '" + "9" * 40 + "...' is not a scenario id"),
    ("scenario=" + "1" * 20, "scenario: '" + "1" * 20 + "' is not a scenario id"),
    (f"scenario={MAKE_INT_MAX + 1}", f"scenario: '{MAKE_INT_MAX + 1}' is not a scenario id"),
    ("scenario=%D9%A1", "scenario: '\u0661' is not a scenario id"),  # an Arabic-Indic 1
    ("scenario=-5", "scenario: '-5' is not a scenario id"),
    ("scenario=0", "scenario: '0' is not a scenario id"),
    ("scenario=1e3", "scenario: '1e3' is not a scenario id"),
    ("scenario=" + ",".join(["101"] * (FILTER_MAX_IDS + 1)),
     f"scenario: {FILTER_MAX_IDS + 1} ids, more than the {FILTER_MAX_IDS} one request may name"),
    ("type=" + "x" * 5000,
     "type: '" + "x" * 40 + "...' is not an event type (see `makestream schema`)"),
])
@pytest.mark.parametrize("path", ["/v1/events", "/v1/state"])
async def test_bad_ids_are_a_400_naming_the_parameter(path: str, query: str, error: str) -> None:
    async with sse_server() as srv:
        response = await srv.http().get(f"{path}?{query}")
        assert response.status_code == 400, response.text
        assert response.json() == {"error": error}


@pytest.mark.anyio
async def test_ids_at_the_limits_are_taken() -> None:
    async with sse_server() as srv:
        http = srv.http()
        many = ",".join(["101"] * FILTER_MAX_IDS)
        assert (await http.get(f"/v1/state?scenario={many}")).status_code == 200
        largest = await http.get(f"/v1/state?scenario={MAKE_INT_MAX}")
        assert largest.status_code == 403  # a valid id, just not one served here
        last = await http.get("/v1/state?last=" + "1" * 5000)
        assert last.status_code == 400
        assert last.json()["error"] == f"last: '{'1' * 40}...' is not a number from 1 to 50"


# -- hosts (DNS rebinding) -----------------------------------------------------------------------


def test_host_headers_are_parsed_strictly() -> None:
    assert split_host("LocalHost.:8787") == ("localhost", "8787")
    assert split_host("[0:0::1]:80") == ("[::1]", "80")
    assert split_host("127.0.0.1") == ("127.0.0.1", None)
    for bad in ("", "a b", "[::1", "::1", "[nope]", "x:99999999", "evil.example@localhost",
                "localhost:8787/x", "."):
        assert split_host(bad) is None, bad
    assert canonical_host("::1") == canonical_host("[::1]") == "[::1]"
    assert canonical_host("Dash.Example.") == "dash.example"
    assert canonical_host("dash.example:443") is None


def _status(url: str, host: str, path: str = "/v1/state") -> int | None:
    return exchange(url, get(path, host=host)).status


REBIND = "rebind.attacker.example:8787"


@pytest.mark.anyio
async def test_without_a_token_only_this_servers_names_are_answered() -> None:
    async with sse_server(scenarios=[101], team=1) as srv:
        for path in ("/v1/state", "/v1/events?scenario=102", "/", "/metrics", "/static/app.js"):
            answer = await anyio.to_thread.run_sync(exchange, srv.url, get(path, host=REBIND))
            assert answer.status == 421, (path, answer.head)
            assert answer.json()["error"].startswith("misdirected request: the Host header")
            assert b"\n" not in answer.body
        assert not srv.hub._added  # ?scenario=102 started no polling
        for host in ("localhost:1234", "LOCALHOST.", "127.0.0.1", "127.0.0.2:80", "[::1]:8787",
                     "[0:0::1]"):
            assert await anyio.to_thread.run_sync(_status, srv.url, host) == 200, host
        for host in ("", "a b", "[::1", "10.0.0.1", "localhost.attacker.example"):
            assert await anyio.to_thread.run_sync(_status, srv.url, host) == 421, host
        no_host = await anyio.to_thread.run_sync(exchange, srv.url,
                                                 b"GET /v1/state HTTP/1.0\r\n\r\n")
        assert no_host.status == 421
        # Health checks answer whatever name a probe uses.
        assert await anyio.to_thread.run_sync(_status, srv.url, REBIND, "/healthz") == 200
        assert await anyio.to_thread.run_sync(_status, srv.url, REBIND, "/readyz") == 200
        assert srv.metrics.registry.get_sample_value(
            "makestream_sse_rejected_total", {"reason": "unknown host"}) == 5 + 5 + 1
        # What the refused request would have done, from a name the server answers to:
        assert await anyio.to_thread.run_sync(
            _status, srv.url, "localhost", "/v1/state?scenario=102") == 200


@pytest.mark.anyio
async def test_allowed_and_bound_hosts() -> None:
    async with sse_server(app={"allow_hosts": ["dash.example"], "host": "box.lan"}) as srv:
        for host, status in (("dash.example:443", 200), ("DASH.EXAMPLE.", 200),
                             ("box.lan:8787", 200), ("other.example", 421),
                             ("10.1.2.3", 421), ("localhost", 200)):
            assert await anyio.to_thread.run_sync(_status, srv.url, host) == status, host
    # Bound to every address: any address names it, names still must be known.
    async with sse_server(app={"host": "0.0.0.0"}) as srv:
        for host, status in (("10.1.2.3:8787", 200), ("[2001:db8::1]", 200),
                             ("box.lan", 421), ("0.0.0.0.attacker.example", 421)):
            assert await anyio.to_thread.run_sync(_status, srv.url, host) == status, host


@pytest.mark.anyio
async def test_with_a_token_any_host_unless_allow_hosts_is_given() -> None:
    token = "s3cret"
    bearer = f"Authorization: Bearer {token}\r\n".encode()
    async with sse_server(app={"token": token}) as srv:
        assert (await anyio.to_thread.run_sync(
            exchange, srv.url, get("/v1/state", host=REBIND, headers=bearer))).status == 200
        assert await anyio.to_thread.run_sync(_status, srv.url, REBIND) == 401
    async with sse_server(app={"token": token, "allow_hosts": ["dash.example"]}) as srv:
        for host, status in ((REBIND, 421), ("dash.example", 200), ("127.0.0.1", 200)):
            answer = await anyio.to_thread.run_sync(
                exchange, srv.url, get("/v1/state", host=host, headers=bearer))
            assert answer.status == status, host


def _serve_options(**kw: Any) -> Any:
    from makestream.cli.serve import serve_options

    values: dict[str, Any] = dict(
        scenarios=[], team=None, host="127.0.0.1", port=8787, auth_token_file=None,
        insecure_no_auth=False, allow_origin=[], max_clients=10_000, max_per_address=1000,
        idle_stop="60s", heartbeat="15s", send_timeout="10s", queue=1000, replay=10_000,
        interval="1s", api_limit=None, alerts=True, env={},
    )
    values.update(kw)
    return serve_options(**values)


def test_allow_host_option() -> None:
    opts = _serve_options(allow_host=["Dash.Example.", "::1", "10.0.0.5"])
    assert opts.allow_hosts == ["dash.example", "[::1]", "10.0.0.5"]
    for bad in ("dash.example:443", "http://dash.example", "a b", ""):
        with pytest.raises(UsageError) as caught:
            _serve_options(allow_host=[bad])
        assert caught.value.message.startswith(f"--allow-host {bad!r}: expected a host name")


# -- tokens: never echoed ------------------------------------------------------------------------


@pytest.mark.anyio
async def test_no_redirect_and_no_log_line_carries_the_access_token(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
) -> None:
    token = "t0ken-in-the-query"
    in_query = b"GET /v1/events?access_token=" + token.encode()
    # A fresh flood window, so that uvicorn's warning below is let through.
    monkeypatch.setattr(runner._FLOODS["uvicorn.error"], "_last", {})
    uvicorn_logger = logging.getLogger("uvicorn")
    caplog.set_level(logging.DEBUG)
    async with sse_server(app={"token": token}) as srv:
        http = srv.http()
        await http.get("/healthz")  # uvicorn has started, and replaced its loggers' handlers
        uvicorn_logger.addHandler(caplog.handler)
        try:
            for path in ("/v1/events/", "/v1/state/", "/static/app.js/", "/metrics/"):
                response = await http.get(f"{path}?access_token={token}", follow_redirects=False)
                assert response.status_code == 404, path
                assert "location" not in response.headers
                assert token not in response.text
            # Requests uvicorn refuses (and logs) with the token in their line.
            for bad in (in_query + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nBad Header\r\n\r\n",
                        in_query + b"\x01 HTTP/1.1\r\n\r\n"):
                assert (await anyio.to_thread.run_sync(exchange, srv.url, bad)).status == 400
        finally:
            uvicorn_logger.removeHandler(caplog.handler)
    # The server's side of the log (the test's own HTTP client logs its URLs).
    served = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    assert any(r.getMessage() == "Invalid HTTP request received." for r in served)
    assert not [r for r in served if token in r.getMessage()]


@pytest.mark.anyio
async def test_readyz_gives_a_fixed_reason_not_makes_words() -> None:
    async with sse_server() as srv:
        srv.hub._failure = "Make said: <script>alert(1)</script>\nsecret internals"
        ready = await srv.http().get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["status"] == "failed"
        assert ready.json()["error"] == UPSTREAM_FAILED == "upstream unreachable"
        assert "script" not in ready.text and "secret" not in ready.text


# -- token files ---------------------------------------------------------------------------------


def test_auth_token_files_are_read_within_the_cap(tmp_path: Path) -> None:
    cases = {
        Path("/dev/zero"): "--auth-token-file /dev/zero: larger than 64 KiB, the limit for it",
        tmp_path: f"--auth-token-file {tmp_path}: not a regular file (a directory)",
    }
    big = tmp_path / "big"
    big.write_bytes(b"x" * (64 * 1024 + 1))
    cases[big] = f"--auth-token-file {big}: larger than 64 KiB, the limit for it"
    missing = tmp_path / "missing"
    cases[missing] = f"--auth-token-file {missing}: cannot read (No such file or directory)"
    for path, message in cases.items():
        started = time.monotonic()
        with pytest.raises(UsageError) as caught:
            _serve_options(auth_token_file=path)
        assert caught.value.message == message
        assert time.monotonic() - started < 2
    # A pipe is fine (`--auth-token-file <(pass show sse)`).
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)

    def write() -> None:
        with open(fifo, "w") as pipe:
            pipe.write("piped-token\n")

    writer = threading.Thread(target=write)
    writer.start()
    try:
        assert _serve_options(auth_token_file=fifo).token == "piped-token"
    finally:
        writer.join(timeout=5)


@pytest.mark.slow
def test_an_endless_token_file_is_a_one_line_error(tmp_path: Path) -> None:
    done = subprocess.run(makestream("serve-sse", "--demo", "--auth-token-file", "/dev/zero"),
                          env=isolated_env(tmp_path), capture_output=True, text=True,
                          timeout=30, check=False)
    assert done.returncode == 2
    assert done.stderr == ("makestream: error: --auth-token-file /dev/zero: larger than 64 KiB,"
                           " the limit for it\n")


# -- descriptor exhaustion -----------------------------------------------------------------------


def test_a_flood_of_one_log_message_is_one_line_per_interval() -> None:
    now = [100.0]
    throttle = runner.ThrottledLog({"socket.accept() out of": "accept failed"}, interval_s=10,
                                   clock=lambda: now[0])
    logger = logging.getLogger("test_server_limits.flood")
    logger.propagate = False
    seen: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = seen.append  # type: ignore[method-assign]
    logger.addHandler(handler)
    logger.addFilter(throttle)
    try:
        try:
            raise OSError(24, "Too many open files")
        except OSError:
            for _ in range(1000):
                logger.error("socket.accept() out of system resource\nsocket: <fd=3>",
                             exc_info=True)
        logger.error("something else")
        now[0] += 10.5
        try:
            raise OSError(24, "Too many open files")
        except OSError:
            logger.error("socket.accept() out of system resource", exc_info=True)
    finally:
        logger.removeHandler(handler)
    lines = [r.getMessage() for r in seen]
    assert lines == ["accept failed ([Errno 24] Too many open files)", "something else",
                     "accept failed ([Errno 24] Too many open files); 999 more like it in the "
                     "last 10 s not shown"]
    assert all(r.exc_info is None for r in seen if r.getMessage().startswith("accept"))


def _descriptors(limit: int) -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))


def _recv_for(sock: socket.socket, seconds: float) -> bytes:
    sock.settimeout(0.05)
    data = b""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        with contextlib.suppress(TimeoutError):
            data += sock.recv(1 << 16)
    return data


@pytest.mark.slow
@pytest.mark.timeout(30)
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_NOFILE as on Linux")
def test_at_the_descriptor_limit_existing_streams_go_on_and_stderr_stays_short(
    tmp_path: Path,
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        makestream("serve-sse", "--demo", "--port", str(port), "--heartbeat", "100ms"),
        env=isolated_env(tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        preexec_fn=lambda: _descriptors(64),
    )
    waiting: list[socket.socket] = []
    try:
        deadline = time.monotonic() + 20
        while True:
            assert server.poll() is None and time.monotonic() < deadline, "did not start"
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            time.sleep(0.05)
        stream = socket.create_connection(("127.0.0.1", port), timeout=5)
        stream.sendall(get("/v1/events?type=module.result"))
        assert _recv_for(stream, 0.3).startswith(b"HTTP/1.1 200 ")
        for _ in range(150):  # far more connections than descriptors are left
            pending = socket.socket()
            pending.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                pending.connect(("127.0.0.1", port))
            waiting.append(pending)
        time.sleep(0.5)
        assert len(os.listdir(f"/proc/{server.pid}/fd")) == 64  # at the limit
        # Through two of asyncio's one-second accept retries, the open stream goes on: pings
        # every 100 ms, counted over at least 2.5 s (and longer on a machine too busy to send
        # ten in that time, up to 10 s; a stalled stream sends none).
        received, started = b"", time.monotonic()
        while time.monotonic() - started < 2.5 or (
                received.count(b": ping") < 10 and time.monotonic() - started < 10):
            received += _recv_for(stream, 0.25)
        assert received.count(b": ping") >= 10
        for pending in waiting:
            pending.close()
        waiting.clear()
        deadline = time.monotonic() + 10
        while True:  # new clients are served again once descriptors are free
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            assert time.monotonic() < deadline, "not serving after the descriptors came back"
            time.sleep(0.1)
        stream.close()
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=15) == 0
        assert server.stderr is not None
        lines = server.stderr.read().decode().splitlines()
    finally:
        for pending in waiting:
            pending.close()
        if server.poll() is None:
            server.kill()
            server.wait()
        if server.stderr is not None:
            server.stderr.close()
    assert lines[0].startswith("makestream serve-sse: listening on")
    accepts = [line for line in lines if line.startswith("socket.accept() out of system")]
    assert accepts == ["socket.accept() out of system resource: new connections wait until "
                       "descriptors are free ([Errno 24] Too many open files)"]
    assert not any("Traceback" in line for line in lines)
    assert len(lines) <= 3, lines  # listening, one accept line, maybe asyncio's retry at exit
