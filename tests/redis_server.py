"""A real redis-server for tests: on a free loopback port, in a temporary folder, no persistence.

Skipped where Debian's redis-server is not installed, unless CI is set: CI installs it
(.ci/run) and must run these tests.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

BINARY = shutil.which("redis-server")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """One redis-server process that can be stopped and started again on the same port."""

    def __init__(self, directory: Path, *, tls: tuple[Path, Path, Path] | None = None,
                 password: str | None = None) -> None:
        if BINARY is None:
            if os.environ.get("CI") == "true":
                pytest.fail("redis-server is missing, and CI must run this test (.ci/run "
                            "installs the Debian package redis-server)")
            pytest.skip("redis-server is not installed (Debian package redis-server)")
        self.directory = directory
        self.port = free_port()
        # With TLS (CA, certificate, key): the only port speaks TLS, and is named by a host name
        # that the certificate carries.
        self.tls = tls
        self.password = password
        self.url = (f"rediss://localhost:{self.port}/0" if tls
                    else f"redis://127.0.0.1:{self.port}/0")
        self.process: subprocess.Popen[bytes] | None = None

    def _options(self) -> list[str]:
        options = ["--port", str(self.port)]
        if self.tls is not None:
            ca, cert, key = self.tls
            options = ["--port", "0", "--tls-port", str(self.port), "--tls-cert-file", str(cert),
                       "--tls-key-file", str(key), "--tls-ca-cert-file", str(ca),
                       "--tls-auth-clients", "no"]
        if self.password is not None:
            options += ["--requirepass", self.password]
        return options

    def _answers(self) -> bool:
        try:
            with contextlib.ExitStack() as stack:
                sock = stack.enter_context(
                    socket.create_connection(("127.0.0.1", self.port), timeout=0.5))
                if self.tls is not None:
                    context = ssl.create_default_context(cafile=str(self.tls[0]))
                    sock = stack.enter_context(
                        context.wrap_socket(sock, server_hostname="localhost"))
                sock.sendall(b"PING\r\n")
                # Without the password PING is refused, which still says it is up.
                return sock.recv(16).startswith((b"+PONG", b"-NOAUTH"))
        except OSError:
            return False

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        assert BINARY is not None
        self.process = subprocess.Popen(
            [BINARY, *self._options(), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.directory), "--loglevel", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 20
        while True:
            if self._answers():
                return
            if self.process.poll() is not None or time.monotonic() > deadline:
                assert self.process.stderr is not None
                pytest.fail(f"redis-server did not start: {self.process.stderr.read().decode()}")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.kill()
        self.process.wait(timeout=10)
        assert self.process.stderr is not None
        self.process.stderr.close()
        self.process = None


@contextmanager
def redis_server(directory: Path, *, tls: tuple[Path, Path, Path] | None = None,
                 password: str | None = None) -> Iterator[RedisServer]:
    server = RedisServer(directory, tls=tls, password=password)
    server.start()
    try:
        yield server
    finally:
        server.stop()
