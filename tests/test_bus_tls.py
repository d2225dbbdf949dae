"""`--bus rediss://…` against a real redis-server speaking only TLS and asking for a password.

The certificates are made here with openssl: a CA, and a server certificate for ``localhost``
signed by it.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.exceptions import AuthenticationError, RedisError
from redis_server import RedisServer, redis_server

from makestream.bus.connect import client, parse_bus_url

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]
PASSWORD = "tls-test-password"


def make_certificates(directory: Path) -> tuple[Path, Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    directory.mkdir(parents=True, exist_ok=True)
    ca, ca_key = directory / "ca.pem", directory / "ca.key"
    cert, key, csr = directory / "server.pem", directory / "server.key", directory / "server.csr"
    ext = directory / "ext.cnf"
    ext.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    for command in (
        ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca,
         "-days", "2", "-subj", "/CN=makestream test CA"],
        ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr,
         "-subj", "/CN=localhost"],
        ["x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-out",
         cert, "-days", "2", "-extfile", ext],
    ):
        subprocess.run(["openssl", *map(str, command)], check=True, capture_output=True)
    return ca, cert, key


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[RedisServer]:
    tls = make_certificates(tmp_path / "certs")
    with redis_server(tmp_path / "redis", tls=tls, password=PASSWORD) as running:
        yield running


@pytest.fixture
async def ca(tls_redis: RedisServer) -> AsyncIterator[Path]:
    assert tls_redis.tls is not None
    yield tls_redis.tls[0]


async def test_tls_with_the_ca_and_the_password_answers(tls_redis: RedisServer, ca: Path) -> None:
    redis = client(parse_bus_url(tls_redis.url), password=PASSWORD, ca_file=ca)
    try:
        assert await redis.ping()
    finally:
        await redis.aclose()


async def test_a_certificate_from_an_unknown_ca_is_refused(tls_redis: RedisServer) -> None:
    redis = client(parse_bus_url(tls_redis.url), password=PASSWORD)  # the system's CAs only
    try:
        with pytest.raises((RedisError, OSError)) as caught:
            await redis.ping()
        assert "certificate" in str(caught.value).lower()
    finally:
        await redis.aclose()


async def test_a_wrong_password_is_refused(tls_redis: RedisServer, ca: Path) -> None:
    redis = client(parse_bus_url(tls_redis.url), password="wrong", ca_file=ca)
    try:
        with pytest.raises(AuthenticationError):
            await redis.ping()
    finally:
        await redis.aclose()


@pytest.mark.slow
async def test_a_replica_on_a_tls_bus(tmp_path: Path, tls_redis: RedisServer, ca: Path) -> None:
    from test_bus_replicas import Replica, cluster_zone, wait_for_holder

    secret = tmp_path / "bus-password"
    secret.write_text(PASSWORD + "\n")
    with cluster_zone(tmp_path) as (_, env):
        replica = Replica(env, tls_redis.url, tmp_path, 0,
                          extra=["--bus-password-file", str(secret), "--bus-ca", str(ca)])
        try:
            replica.wait_listening()
            assert await wait_for_holder([replica], 10) is replica
            ready = await replica.ready()
            assert ready["bus"] == "up" and ready["status"] == "ready"
        finally:
            replica.stop()
        assert PASSWORD not in replica.log.read_text()
