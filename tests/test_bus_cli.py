"""`serve-sse --bus`: its options checked before anything starts, and a Redis that is not there."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_cli_e2e import free_port

from makestream.cli.serve import bus_choice
from makestream.errors import UsageError
from makestream.server.cluster import decode_state, encode_state, set_name


def test_without_bus_nothing_changes() -> None:
    assert bus_choice(None, None, None, "10s") is None


def test_a_bus_with_a_password_file_and_a_ca(tmp_path: Path) -> None:
    secret, ca = tmp_path / "pw", tmp_path / "ca.pem"
    secret.write_text("s3cret\n")
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    choice = bus_choice("rediss://cache.example:6380/2", secret, ca, "4s")
    assert choice is not None
    assert (choice.url.tls, choice.url.host, choice.url.port, choice.url.db) == (
        True, "cache.example", 6380, 2)
    assert choice.password == "s3cret" and choice.ca_file == ca and choice.lease_s == 4
    assert "s3cret" not in str(choice.url)


@pytest.mark.parametrize(("url", "password", "ca", "lease", "message"), [
    ("http://x", None, None, "10s", "expected redis://"),
    ("redis://:pw@host", None, None, "10s", "does not belong in the URL"),
    ("redis://host", "missing", None, "10s", "--bus-password-file"),
    ("redis://host", "empty", None, "10s", "the file is empty"),
    ("redis://host", None, "ca", "10s", "--bus-ca needs a rediss:// URL"),
    ("rediss://host", None, "missing", "10s", "not a readable file"),
    ("redis://host", None, None, "500ms", "--lease must be at least 1s"),
    ("redis://host", None, None, "soon", "--lease"),
    (None, "empty", None, "10s", "go with --bus"),
])
def test_bus_mistakes(tmp_path: Path, url: str | None, password: str | None, ca: str | None,
                      lease: str, message: str) -> None:
    (tmp_path / "empty").write_text("\n")
    (tmp_path / "ca").write_text("x")
    with pytest.raises(UsageError) as caught:
        bus_choice(url, tmp_path / password if password else None,
                   tmp_path / ca if ca else None, lease)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_sets_are_named_by_account_and_scenarios() -> None:
    one = set_name("https://eu1.make.com/api/v2 token ab", [2, 1], None)
    assert one == set_name("https://eu1.make.com/api/v2 token ab", [1, 2], None)
    assert one != set_name("https://eu1.make.com/api/v2 token cd", [1, 2], None)
    assert one != set_name("https://eu1.make.com/api/v2 token ab", [1, 2], 7)


def test_a_shared_state_that_is_not_one_is_ignored() -> None:
    raw = encode_state([], {}, {}, "2.x~e.1", {"remaining": 3})
    state = decode_state(raw)
    assert state is not None and state.cursor == "2.x~e.1" and state.budget == {"remaining": 3}
    for bad in (b"", b"[]", b"{}", b'{"scenarios": 1}', b"\xff",
                b'{"budget": {}, "scenarios": [{"id": "x"}], "logs": {}, "queues": {},'
                b' "cursor": null}'):
        assert decode_state(bad) is None


def run_serve(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "makestream", "serve-sse", *args], env=env,
                          capture_output=True, text=True, timeout=60)


def test_bus_with_demo_is_refused_in_one_line() -> None:
    env = {**os.environ, "MAKESTREAM_BUS": "redis://127.0.0.1:1/0"}
    done = run_serve("--demo", env=env)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "makestream sim serve" in done.stderr


def test_an_unreachable_bus_is_exit_6_naming_it(tmp_path: Path) -> None:
    env = {**os.environ, "MAKE_API_TOKEN": "t", "MAKE_API_URL": "http://127.0.0.1:9/api/v2",
           "MAKESTREAM_BUDGET_DIR": str(tmp_path)}
    url = f"redis://127.0.0.1:{free_port()}/0"
    done = run_serve("7", "--bus", url, "--no-store", env=env)
    assert done.returncode == 6
    assert done.stderr.count("\n") == 1
    assert f"--bus {url}: cannot reach Redis" in done.stderr


def test_bus_with_scenarios_and_a_team_is_refused(tmp_path: Path) -> None:
    env = {**os.environ, "MAKE_API_TOKEN": "t", "MAKE_API_URL": "http://127.0.0.1:9/api/v2",
           "MAKESTREAM_BUDGET_DIR": str(tmp_path)}
    done = run_serve("7", "--team", "1", "--bus", "redis://127.0.0.1:1/0", "--no-store",
                     env=env)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "--team alone" in done.stderr
