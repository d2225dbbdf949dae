"""Caps on everything that comes from outside: cursors, files named by the user, Make's answers,
the Make variables, and Retry-After. Each test reproduces a filed finding first.

Every refusal must be a typed one-line error (UsageError: exit 2, PayloadError: exit 6), never a
traceback, a hang, or a changed file that was not the user's to change.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import stat
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from makestream import limits
from makestream.clock import Clock
from makestream.config import load
from makestream.engine.cursor import Cursor, Position
from makestream.errors import ConfigError, ExitCode, PayloadError, UsageError
from makestream.events import ApiThrottled, decode, encode
from makestream.files import read_capped, read_text_capped
from makestream.make import ApiNotice, Budget, MakeClient, Organization, RetryPolicy, Token
from makestream.make.auth import base_url_for
from makestream.make.models import ExecutionLog, Scenario, parse_imt_id
from makestream.make.payloads import depth_over
from makestream.sim.world import load_world

SECRET = "3f2b5c1e-8a4d-4f6b-9c2e-7d1a0b9e4c3f"


def one_line(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text and text.strip() == text and text
    return text


def packed_cursor(body: Any, *, raw: bytes | None = None) -> str:
    data = raw if raw is not None else zlib.compress(orjson.dumps(body))
    return "1." + base64.urlsafe_b64encode(data).rstrip(b"=").decode() + "~s.1"


# --- 1. cursors --------------------------------------------------------------------------------


def test_a_cursor_longer_than_the_cap_is_refused_before_decoding() -> None:
    text = "1." + "A" * limits.CURSOR_MAX_CHARS
    with pytest.raises(UsageError, match=r"invalid cursor: longer than \d+ characters") as info:
        Cursor.decode(text)
    one_line(info.value)


def test_a_zip_bomb_cursor_is_refused_without_inflating_it() -> None:
    # 435 KB of cursor used to inflate to 120 MB; this one is small enough to pass the length
    # cap and inflates far past CURSOR_MAX_INFLATED.
    bomb = zlib.compress(b"[" + b" " * (16 * limits.MiB) + b"]", 9)
    text = packed_cursor(None, raw=bomb)
    assert len(text) <= limits.CURSOR_MAX_CHARS
    with pytest.raises(UsageError, match="invalid cursor: its body inflates to more than"):
        Cursor.decode(text)


def test_a_cursor_listing_too_many_ids_is_refused() -> None:
    # Honest 12-digit ids would hit the inflated-size cap first; short ones reach this cap.
    ids = ["a"] * (limits.CURSOR_MAX_IDS // 2 + 1)
    body = {"1": [0, ids], "2": [0, ids]}
    text = packed_cursor(body, raw=zlib.compress(orjson.dumps(body), 9))
    with pytest.raises(UsageError, match=r"invalid cursor: it lists more than 100000 executions"):
        Cursor.decode(text)


@pytest.mark.parametrize(
    "text",
    [
        "1.eJyrVjJUsopWMlTSUYrVUcpLzE1VslIyNDI2MDA3NjI1Nbc0NDIwMrEwMzUwMDAwNTE2NrEwMzEyNrcwMDBRqgUAQtgMIg~s."
        + "9" * 5000,  # int() past Python's max-str-digits
        packed_cursor({"1": [1e300, []]}),
        packed_cursor({"1": [True, []]}),
        packed_cursor({"1": ["12", []]}),
        packed_cursor({"1": [0, "abc"]}),
        packed_cursor({"1": [0, [1, 2]]}),
        packed_cursor({"1": [0]}),
        packed_cursor({"9" * 5000: [0, []]}),
        packed_cursor({"x": [0, []]}),
        packed_cursor([1, 2]),
        packed_cursor(None, raw=zlib.compress(b'{"1": [' * 2000)),  # deep and cut
        packed_cursor(None, raw=zlib.compress(b'{"1": [0, []]}')[:-3]),  # truncated stream
        "1.!!!!~s.1",
        "1.",
        "2.abc",
        "",
    ],
)
def test_every_damaged_cursor_is_a_one_line_usage_error(text: str) -> None:
    with pytest.raises(UsageError, match="invalid cursor") as info:
        Cursor.decode(text)
    one_line(info.value)
    assert info.value.exit_code == ExitCode.USAGE


def test_a_good_cursor_still_round_trips() -> None:
    cursor = Cursor("abc", 42, {7: Position(1000, {"a1b2c3d4e5": 1200})})
    back = Cursor.decode(cursor.encode())
    assert (back.stream, back.seq, back.positions[7].floor_ms) == ("abc", 42, 1000)
    assert set(back.positions[7].done) == {"a1b2c3d4e5"}


def test_a_version_2_cursor_claiming_too_many_ids_is_refused_before_reading_them() -> None:
    import base64

    # base 0, scenario 1, floor 0, then a count of 200,000 ids and none of their bytes.
    body = bytes([0, 1, 0]) + bytes([0xC0, 0x9A, 0x0C])
    text = "2." + base64.urlsafe_b64encode(body).rstrip(b"=").decode() + "~k.1"
    with pytest.raises(UsageError, match=r"invalid cursor: it lists more than 100000 executions"):
        Cursor.decode(text)


# --- 2. --cursor-file --------------------------------------------------------------------------


def watch_options_for(cursor_file: Path) -> Any:
    from makestream.cli.watch import watch_options

    return watch_options(
        scenarios=[1], team=None, include=[], exclude=[], execution=None, run_=False, data=None,
        since=None, follow=True, count=None, timeout=None, exit_status=False, resume=None,
        cursor_file=cursor_file, interval="1s", api_limit=None, modules=False, now=0.0,
    )


def test_cursor_file_on_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(UsageError, match=r"--cursor-file .*fifo: not a regular file \(a FIFO\)"):
        watch_options_for(fifo)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_cursor_file_on_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"not a regular file \(a directory\)"):
        watch_options_for(tmp_path)


def test_cursor_file_on_dev_zero_and_dev_null_is_refused_and_left_alone() -> None:
    from makestream.cli.watch import write_cursor_file

    for device in ("/dev/zero", "/dev/null"):
        before = os.stat(device)
        with pytest.raises(UsageError, match=r"not a regular file \(a character device\)"):
            watch_options_for(Path(device))
        with pytest.raises(UsageError, match=r"not a regular file \(a character device\)"):
            write_cursor_file(Path(device), "1.abc~s.1")
        after = os.stat(device)
        assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev


def test_cursor_file_on_a_made_device_stays_a_device(tmp_path: Path) -> None:
    from makestream.cli.watch import write_cursor_file

    node = tmp_path / "n"
    try:
        os.mknod(node, 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    except (PermissionError, OSError) as exc:
        pytest.skip(f"cannot mknod here: {exc}")
    with pytest.raises(UsageError, match="not a regular file"):
        watch_options_for(node)
    with pytest.raises(UsageError, match="not a regular file"):
        write_cursor_file(node, "1.abc~s.1")
    assert stat.S_ISCHR(os.stat(node).st_mode)


def test_cursor_file_writes_through_a_symlink_keeping_link_and_mode(tmp_path: Path) -> None:
    from makestream.cli.watch import read_cursor_file, write_cursor_file

    target = tmp_path / "real" / "cursor"
    target.parent.mkdir()
    target.write_text("old\n")
    target.chmod(0o640)
    link = tmp_path / "link"
    link.symlink_to(target)
    cursor = Cursor("s", 3, {1: Position(5)}).encode()
    write_cursor_file(link, cursor)
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_text() == cursor + "\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert read_cursor_file(link) == cursor
    assert sorted(p.name for p in target.parent.iterdir()) == ["cursor"]  # no temp file left


def test_cursor_file_through_a_dangling_symlink_creates_the_target(tmp_path: Path) -> None:
    from makestream.cli.watch import read_cursor_file, write_cursor_file

    link = tmp_path / "link"
    link.symlink_to(tmp_path / "target")
    assert read_cursor_file(link) is None
    write_cursor_file(link, "1.x~s.1")
    assert link.is_symlink() and (tmp_path / "target").read_text() == "1.x~s.1\n"


def test_cursor_file_larger_than_the_cap_is_refused(tmp_path: Path) -> None:
    big = tmp_path / "cursor"
    big.write_text("1." + "A" * limits.CURSOR_FILE_MAX_BYTES)
    with pytest.raises(UsageError, match=r"--cursor-file .*: larger than 65 KiB, the limit"):
        watch_options_for(big)


# --- 3. files named by the user ----------------------------------------------------------------


def test_read_capped_refuses_devices_directories_and_fifos(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for path, kind in ((Path("/dev/zero"), "a character device"), (tmp_path, "a directory"),
                       (fifo, "a FIFO")):
        with pytest.raises(UsageError, match=rf"the thing {path}: not a regular file \({kind}\)"):
            read_capped(path, 10, "the thing")


def test_read_capped_reads_streams_within_the_cap_when_allowed() -> None:
    with pytest.raises(UsageError, match=r"--data file /dev/zero: larger than 5 MiB, the limit"):
        read_capped(Path("/dev/zero"), limits.DATA_MAX_BYTES, "--data file", streams=True)
    assert read_capped(Path("/dev/null"), 10, "x", streams=True) == b""


def test_read_capped_at_the_cap_and_just_over(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x" * 100)
    assert read_capped(path, 100, "f") == b"x" * 100
    with pytest.raises(UsageError, match="larger than 99 bytes"):
        read_capped(path, 99, "f")
    path.write_bytes(b"\xff")
    with pytest.raises(UsageError, match="not UTF-8"):
        read_text_capped(path, 10, "f")


def test_config_on_dev_zero_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match=r"config file /dev/zero: not a regular file"):
        load(Path("/dev/zero"))


def test_config_over_the_cap_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("# " + "x" * limits.CONFIG_MAX_BYTES + "\n")
    with pytest.raises(ConfigError, match=r"larger than 1 MiB"):
        load(path)


def test_token_file_on_dev_zero_is_refused_not_a_memory_error() -> None:
    with pytest.raises(UsageError, match=r"the token file /dev/zero: larger than 64 KiB"):
        Token.from_env_or_file(Path("/dev/zero"), {})


def test_token_file_from_a_pipe_still_works(tmp_path: Path) -> None:
    read, write = os.pipe()
    os.write(write, SECRET.encode() + b"\n")
    os.close(write)
    try:
        token = Token.from_env_or_file(Path(f"/dev/fd/{read}"), {})
    finally:
        os.close(read)
    assert token is not None and token.reveal() == SECRET


def test_token_file_that_is_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"not a regular file \(a directory\)"):
        Token.from_env_or_file(tmp_path, {})


def test_world_on_dev_zero_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"world file /dev/zero: not a regular file"):
        load_world("/dev/zero")


def test_deeply_nested_world_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "w.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ConfigError, match="nested too deeply"):
        load_world(path)


def test_data_file_on_dev_zero_is_refused() -> None:
    from makestream.cli.watch import parse_data

    with pytest.raises(UsageError, match=r"--data file /dev/zero: larger than 5 MiB"):
        parse_data("@/dev/zero")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"a":' + "[" * 100_000 + "]" * 100_000 + "}", "nested too deeply"),
        ('{"a":' + "[" * 100 + "]" * 100 + "}", "nested deeper than 64 levels"),
        ('{"a": ' + "9" * 5000 + "}", "a number too long"),
    ],
)
def test_data_that_nests_too_deeply_is_a_usage_error(text: str, message: str) -> None:
    from makestream.cli.watch import parse_data

    with pytest.raises(UsageError, match=message):
        parse_data(text)


def test_data_from_a_directory_is_refused(tmp_path: Path) -> None:
    from makestream.cli.watch import parse_data

    with pytest.raises(UsageError, match=r"not a regular file \(a directory\)"):
        parse_data(f"@{tmp_path}")


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "NO_COLOR": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-c", "from makestream.cli.root import app; app(prog_name='makestream')",
         *args],
        capture_output=True, text=True, env=full, timeout=50, check=False,
    )


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["thresholds", "check", "/dev/zero"], {}, "not a regular file"),
        (["sim", "serve", "--world", "/dev/zero"], {}, "not a regular file"),
        (["watch", "1", "--token-file", "/dev/zero"], {"MAKE_ZONE": "eu1.make.com"},
         "larger than 64 KiB"),
        (["watch", "1", "--cursor-file", "/dev/zero"], {"MAKE_ZONE": "eu1.make.com",
                                                        "MAKE_API_TOKEN": SECRET},
         "not a regular file"),
        (["watch", "1", "--run", "--data", "@/dev/zero"], {"MAKE_ZONE": "eu1.make.com",
                                                           "MAKE_API_TOKEN": SECRET},
         "larger than 5 MiB"),
    ],
)
def test_the_cli_exits_2_on_dev_zero(args: list[str], env: dict[str, str], message: str) -> None:
    result = run_cli(*args, env=env)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("makestream: error: ")


# --- 4. Make's payloads ------------------------------------------------------------------------


def harness(handler: Any, **kwargs: Any) -> tuple[MakeClient, list[ApiNotice], list[float]]:
    notices: list[ApiNotice] = []
    sleeps: list[float] = []

    class Fast(Clock):
        async def sleep(self, seconds: float) -> None:
            sleeps.append(seconds)

    clock = Fast(speed=1000)
    kwargs.setdefault("retry", RetryPolicy(attempts=1, jitter=0.0))
    client = MakeClient(
        "https://eu1.make.com/api/v2",
        Token(SECRET),
        budget=Budget(100_000, clock=clock),
        clock=clock,
        transport=httpx.MockTransport(handler),
        observer=notices.append,
        **kwargs,
    )
    return client, notices, sleeps


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"scenario":' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested deeper than 64"),
        (b'{"scenario":' + b'{"a":' * 65 + b"1" + b"}" * 65 + b"}", "nested deeper than 64"),
        (b'{"scenario": {"id": 1, "operations": 18446744073709551616}}',
         "operations: Input should be less"),
        (b'{"scenario": {"id": 1, "operations": -1}}', "operations: Input should be greater"),
        (b'{"scenario": {"id": 1e999}}', "id: Input should be a finite number"),
        (b'{"scenario": {"id": 1, "x": ' + b"9" * 5000 + b"}}", "number too long"),
        (b"\xff\xfe", "not JSON"),
    ],
)
async def test_odd_payloads_are_one_line_payload_errors(body: bytes, message: str) -> None:
    client, _, _ = harness(lambda request: httpx.Response(200, content=body))
    async with client:
        with pytest.raises(PayloadError, match=message) as info:
            await client.scenario(1)
    one_line(info.value)
    assert info.value.exit_code == ExitCode.CANNOT_MONITOR


@pytest.mark.anyio
async def test_a_body_over_the_cap_is_refused_while_streaming(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("makestream.make.client.RESPONSE_MAX_BYTES", 1000)
    sent: list[int] = []

    async def chunks() -> Any:
        for _ in range(1000):
            sent.append(1)
            yield b" " * 100

    client, _, _ = harness(lambda request: httpx.Response(200, content=chunks()))
    async with client:
        with pytest.raises(PayloadError, match="with a body over"):
            await client.scenario(1)
    assert len(sent) < 20  # stopped reading soon after the cap


@pytest.mark.anyio
async def test_a_declared_length_over_the_cap_is_refused_unread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("makestream.make.client.RESPONSE_MAX_BYTES", 1000)
    client, _, _ = harness(
        lambda request: httpx.Response(200, content=b" " * 2000, headers={"Content-Length": "2000"})
    )
    async with client:
        with pytest.raises(PayloadError, match="with a body over"):
            await client.scenario(1)


@pytest.mark.anyio
async def test_a_gzip_bomb_is_cut_at_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("makestream.make.client.RESPONSE_MAX_BYTES", 100_000)
    bomb = gzip.compress(b" " * 10_000_000)
    client, _, _ = harness(
        lambda request: httpx.Response(200, content=bomb, headers={"Content-Encoding": "gzip"})
    )
    async with client:
        with pytest.raises(PayloadError, match="with a body over"):
            await client.scenario(1)


@pytest.mark.anyio
async def test_gzip_bodies_and_error_bodies_still_read() -> None:
    ok = gzip.compress(json.dumps({"scenario": {"id": 5, "name": "S"}}).encode())
    client, _, _ = harness(
        lambda request: httpx.Response(200, content=ok, headers={"Content-Encoding": "gzip"})
    )
    async with client:
        assert (await client.scenario(5)).name == "S"
    err = gzip.compress(json.dumps({"detail": "Scenario not found", "code": "IM404"}).encode())
    client, _, _ = harness(
        lambda request: httpx.Response(404, content=err, headers={"Content-Encoding": "gzip"})
    )
    async with client:
        with pytest.raises(Exception, match="IM404: Scenario not found"):
            await client.scenario(5)


def test_models_keep_integers_in_the_exact_json_range() -> None:
    from pydantic import ValidationError

    for field in ("operations", "transfer", "centicredits", "duration"):
        with pytest.raises(ValidationError):
            ExecutionLog.model_validate(
                {"id": "a", "timestamp": "2026-01-01T00:00:00Z", field: 2**64}
            )
    ok = ExecutionLog.model_validate(
        {"id": "a", "timestamp": "2026-01-01T00:00:00Z", "operations": 2**53, "duration": 1000}
    )
    assert ok.operations == 2**53
    with pytest.raises(ValidationError):
        Scenario.model_validate({"id": 2**63})
    with pytest.raises(ValidationError):
        ExecutionLog.model_validate({"id": "a", "timestamp": "9999-12-31T23:59:59Z"})


def test_imt_ids_with_huge_numbers_are_not_parsed() -> None:
    assert parse_imt_id("9" * 30 + "_scenario.1.x.abc") is None
    parsed = parse_imt_id("1700000000000_scenario." + "9" * 30 + ".x.abc")
    assert parsed is not None and parsed[1] is None


def test_depth_over_is_iterative() -> None:
    deep: Any = []
    for _ in range(100_000):
        deep = [deep]
    assert depth_over(deep, 64)
    assert not depth_over({"a": [1, {"b": 2}]}, 3) and depth_over({"a": [1, {"b": []}]}, 3)


# --- 5. MAKE_API_URL and MAKE_ZONE -------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://127.0.0.1:8900/api/v2\n", "whitespace or control characters"),
        ("http://127.0.0.1\n:8900/api/v2", "whitespace or control characters"),
        ("http://[::1", "not a valid URL"),
        ("http://[::1]:99999/api/v2", "not a valid URL"),
        ("http://host:0/api/v2", "invalid port"),
        ("http://host:/api/v2", "invalid port"),
        ("http://user:pass@host/api/v2", "must not contain a user name or password"),
        ("http://@host/api/v2", "must not contain a user name or password"),
        ("http://[zz::1]/api/v2", "not a valid URL"),
        ("http://[v1.x]/api/v2", "invalid IPv6"),
        ("http://ho st/api/v2", "whitespace"),
        ("http://ho%st/api/v2", "invalid host name"),
        ("http://host/api/v2?x=1", "query string"),
        ("ftp://host/api/v2", "must be an http"),
        ("http:///api/v2", "must be an http"),
    ],
)
def test_bad_api_urls_are_usage_errors(url: str, message: str) -> None:
    with pytest.raises(UsageError, match="MAKE_API_URL") as info:
        base_url_for(None, api_url=url)
    assert message in one_line(info.value)


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8900/api/v2", "https://development.make.cloud/api/v2/", "http://[::1]:80/x",
     "http://localhost:65535", "https://eu1.make.com/api/v2"],
)
def test_good_api_urls_pass(url: str) -> None:
    assert base_url_for(None, api_url=url) == url.rstrip("/")


@pytest.mark.parametrize(
    "zone",
    ["eu1.make.com[", "eu1.make.com/evil", "eu1.make.com\n", "eu1.make.com\nus1.make.com",
     "https://eu1.make.com/other", "eu1.make.com:8443", "user@eu1.make.com",
     "http://eu1.make.com", "eu1.make.com\t"],
)
def test_bad_zones_are_usage_errors_not_rewritten(zone: str) -> None:
    with pytest.raises(UsageError, match=r"MAKE_ZONE|unknown Make zone") as info:
        base_url_for(zone)
    one_line(info.value)


def test_cli_exits_2_on_a_bad_api_url() -> None:
    for value in ("http://[::1", "http://h:99999/", "http://u:p@h/api/v2", "http://h/\nx"):
        result = run_cli("state", "1", env={"MAKE_API_URL": value, "MAKE_API_TOKEN": SECRET})
        assert result.returncode == 2, result.stderr
        assert "MAKE_API_URL" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "zone",
    ["evil.example", "eu1.make.com/phish", "eu1.make.com.evil.io", "EU1.make.com\n", "", 5],
)
def test_a_bad_zone_from_make_is_dropped(zone: Any) -> None:
    org = Organization.model_validate({"id": 1, "zone": zone})
    assert org.zone is None


def test_good_zones_from_make_are_kept() -> None:
    for zone in ("eu1.make.com", "us2.make.com", "eu1.make.celonis.com", "local.make.cloud"):
        assert Organization.model_validate({"id": 1, "zone": zone}).zone == zone


# --- 6. Retry-After ----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_huge_retry_after_is_cut_and_reported() -> None:
    answers = iter([
        httpx.Response(429, text="limit", headers={"Retry-After": "3600"}),
        httpx.Response(200, json={"scenario": {"id": 1}}),
    ])
    client, notices, sleeps = harness(
        lambda request: next(answers), retry=RetryPolicy(attempts=3, jitter=0.0)
    )
    async with client:
        await client.scenario(1)
    throttled = [n for n in notices if n.kind == "throttled"]
    assert throttled[0].retry_in_s == limits.RETRY_AFTER_MAX_S
    assert throttled[0].asked_s == 3600.0
    assert max(sleeps) <= limits.RETRY_AFTER_MAX_S


@pytest.mark.anyio
async def test_a_short_retry_after_is_obeyed_and_not_flagged() -> None:
    answers = iter([
        httpx.Response(429, text="limit", headers={"Retry-After": "7"}),
        httpx.Response(200, json={"scenario": {"id": 1}}),
    ])
    client, notices, _ = harness(
        lambda request: next(answers), retry=RetryPolicy(attempts=3, jitter=0.0)
    )
    async with client:
        await client.scenario(1)
    throttled = [n for n in notices if n.kind == "throttled"]
    assert throttled[0].retry_in_s == 7.0 and throttled[0].asked_s is None


@pytest.mark.anyio
async def test_a_server_retry_after_is_cut_too() -> None:
    answers = iter([
        httpx.Response(503, headers={"Retry-After": "86400"}),
        httpx.Response(200, json={"scenario": {"id": 1}}),
    ])
    client, _, sleeps = harness(
        lambda request: next(answers), retry=RetryPolicy(attempts=3, jitter=0.0)
    )
    async with client:
        await client.scenario(1)
    assert sleeps == [limits.RETRY_AFTER_MAX_S]


@pytest.mark.anyio
async def test_the_throttled_event_says_the_server_asked_for_longer() -> None:
    from makestream.engine.watch import Watch, WatchOptions

    client, _, _ = harness(lambda request: httpx.Response(500))
    async with client:
        watch = Watch(client, WatchOptions(scenario_ids=[1]))
        watch.on_notice(ApiNotice("throttled", "GET", "/x", 429, 120.0, "limit", asked_s=3600.0))
        watch.on_notice(ApiNotice("throttled", "GET", "/x", 429, 7.0, "limit"))
        first, second = watch.events.receive_nowait(), watch.events.receive_nowait()
        watch.events.close()
        watch._send.close()
    assert isinstance(first, ApiThrottled) and first.asked_s == 3600.0
    assert isinstance(second, ApiThrottled) and second.asked_s is None
    assert "asked_s" not in orjson.loads(encode(second))  # old consumers see what they saw
    assert decode(encode(first)) == first
