"""The sink options shared by `watch` and `serve-sse`: labels, Alertmanager credentials and CA,
several Alertmanagers, generatorURL; checked up front, then seen on the wire.

TLS is tested against a real TLS server on 127.0.0.1 with a certificate made by `openssl` (the
Debian package; CI installs it), which is skipped without it unless CI is set.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import certifi
import orjson
import pytest
from test_sinks import FAST, Receiver, raised, resolved, started, until

from makestream.errors import UsageError
from makestream.limits import TOKEN_MAX_BYTES
from makestream.sinks import AlertmanagerSink, WebhookSink, build_sinks, sink_options
from makestream.sinks.credentials import Credentials, ca_context
from makestream.sinks.options import parse_labels

# -- --alert-label ---------------------------------------------------------------------------------


def test_labels_are_taken_in_order() -> None:
    assert parse_labels(["env=prod", "team=ops", "url=https://a=b"]) == {
        "env": "prod", "team": "ops", "url": "https://a=b",
    }


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("env", "--alert-label 'env': expected NAME=VALUE (no '=')"),
        ("1env=x", "--alert-label '1env': not a Prometheus label name"),
        ("e-nv=x", "--alert-label 'e-nv': not a Prometheus label name"),
        ("=x", "--alert-label '': not a Prometheus label name"),
        ("__name__=x", "--alert-label __name__: names starting with __ are reserved"),
        ("severity=low", "--alert-label severity: refused, makestream sets it on every alert"),
        ("alert_id=x", "--alert-label alert_id: refused, makestream sets it on every alert"),
        ("env=", "--alert-label env: the value is empty"),
        ("env=a\nb", "--alert-label env: the value holds a control character"),
    ],
)
def test_bad_labels_are_usage_errors(text: str, error: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_labels([text])
    assert caught.value.message.startswith(error)


def test_a_label_given_twice_is_refused() -> None:
    with pytest.raises(UsageError, match="env: given twice"):
        parse_labels(["env=a", "env=b"])


# -- --alertmanager-auth-file ----------------------------------------------------------------------


def test_bearer_and_basic_credentials() -> None:
    assert Credentials.from_text("Bearer abc.DEF-123\n").authorization == "Bearer abc.DEF-123"
    assert Credentials.from_text("  bearer  t0ken==  ").authorization == "Bearer t0ken=="
    # Basic: RFC 7617, UTF-8, split at the first colon.
    assert Credentials.from_text("ann:pa:ss wörd\n").authorization == \
        "Basic YW5uOnBhOnNzIHfDtnJk"
    assert repr(Credentials.from_text("ann:hunter2")) == "Credentials(basic)"


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("", "the file is empty"),
        ("\n \n", "the file is empty"),
        ("Bearer a\nBearer b", "expected one line"),
        ("Bearer ", "the bearer token is empty"),
        ("Bearer a b", "the bearer token is empty or holds characters"),
        ("justatoken", "expected 'Bearer TOKEN' or 'user:password'"),
        (":password", "the user name before ':' is empty"),
        ("ann:pass\x1bword", "the line holds a control character"),
    ],
)
def test_bad_credentials_are_usage_errors_that_never_quote_them(text: str, error: str) -> None:
    with pytest.raises(UsageError) as caught:
        Credentials.from_text(text)
    assert error in caught.value.message
    for secret in ("password", "pass", "justatoken", "a b"):
        if secret in text:
            assert secret not in caught.value.message


def test_the_auth_file_is_read_within_the_cap(tmp_path: Path) -> None:
    big = tmp_path / "auth"
    big.write_text("Bearer " + "a" * TOKEN_MAX_BYTES)
    with pytest.raises(UsageError, match="larger than"):
        Credentials.from_file(big)
    with pytest.raises(UsageError, match="no such file"):
        Credentials.from_file(tmp_path / "missing")
    with pytest.raises(UsageError, match="not a regular file"):
        Credentials.from_file(tmp_path)


# -- --alertmanager-ca -----------------------------------------------------------------------------


def test_a_ca_bundle_is_loaded_and_anything_else_refused(tmp_path: Path) -> None:
    context = ca_context(Path(certifi.where()))
    assert context.verify_mode == ssl.CERT_REQUIRED and context.cert_store_stats()["x509_ca"] > 10
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate")
    with pytest.raises(UsageError, match="no PEM certificate in it"):
        ca_context(junk)
    junk.write_text("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    with pytest.raises(UsageError, match="not a valid PEM certificate bundle"):
        ca_context(junk)
    with pytest.raises(UsageError, match="no such file"):
        ca_context(tmp_path / "missing.pem")


# -- the options together --------------------------------------------------------------------------


def test_qualifying_options_need_their_url(tmp_path: Path) -> None:
    auth = tmp_path / "auth"
    auth.write_text("ann:pw")
    with pytest.raises(UsageError, match="need an --alertmanager URL"):
        sink_options(alertmanager_auth_file=auth)
    with pytest.raises(UsageError, match="need a --webhook URL"):
        sink_options(webhook_headers=["X-A: b"])
    with pytest.raises(UsageError, match="the same URL given twice"):
        sink_options(alertmanagers=["http://a:9093", "http://a:9093"])
    with pytest.raises(UsageError, match="--alertmanager: alertmanager URL must start with http"):
        build_sinks(sink_options(alertmanagers=["ftp://a"]))
    assert not sink_options()


def test_one_sink_per_url_with_the_labels(tmp_path: Path) -> None:
    auth = tmp_path / "auth"
    auth.write_text("Bearer t")
    options = sink_options(
        webhooks=["http://hook"], webhook_format="alertmanager",
        alertmanagers=["http://am1:9093", "http://am2:9093"], alertmanager_auth_file=auth,
        alert_labels=["env=prod"],
    )
    sinks = build_sinks(options, generator_url="http://host:8787/")
    assert [type(s).__name__ for s in sinks] == ["WebhookSink", "AlertmanagerSink",
                                                 "AlertmanagerSink"]
    hook, *ams = sinks
    assert isinstance(hook, WebhookSink) and hook.labels == {"env": "prod"}
    assert [a.url for a in ams if isinstance(a, AlertmanagerSink)] == [
        "http://am1:9093/api/v2/alerts", "http://am2:9093/api/v2/alerts"]
    for sink in sinks:
        sink.outbox.dispose()


# -- on the wire -----------------------------------------------------------------------------------

@pytest.mark.anyio
async def test_an_ha_pair_gets_every_alert_with_credentials_labels_and_links(
        tmp_path: Path) -> None:
    auth = tmp_path / "auth"
    auth.write_text("ann:s3cret\n")
    async with Receiver().running() as one, Receiver().running() as two:
        options = sink_options(alertmanagers=[one.url, two.url], alertmanager_auth_file=auth,
                               alert_labels=["env=prod"])
        sinks = build_sinks(options, generator_url="http://box:8787/")
        async with sinks[0], sinks[1]:
            for sink in sinks:
                sink.offer(raised(1, url="https://eu1.make.com/7/scenarios/1/logs/abc"))
                sink.offer(raised(2))
                sink.offer(raised(3, replayed=True))  # the catch-up's: never sent
            await until(lambda: len(one.accepted) >= 1 and len(two.accepted) >= 1)
    for receiver in (one, two):
        [post] = [orjson.loads(b) for b in receiver.accepted[:1]]
        assert [(a["labels"]["alert_id"], a["labels"]["env"], a["generatorURL"]) for a in post] \
            == [("consecutive_failures:1", "prod", "https://eu1.make.com/7/scenarios/1/logs/abc"),
                ("consecutive_failures:2", "prod", "http://box:8787/")]
        assert receiver.heads[0]["authorization"] == "Basic YW5uOnMzY3JldA=="
        assert receiver.requests[0][0] == "/api/v2/alerts"


@pytest.mark.anyio
async def test_a_refused_credential_is_reported_with_a_hint() -> None:
    errors: list[str] = []
    async with Receiver().running() as receiver:
        receiver.status = 401
        am = AlertmanagerSink(receiver.url, on_error=errors.append, backoff=FAST,
                              credentials=Credentials.from_text("Bearer wrong"))
        async with started(am):
            am.offer(raised(1))
            await until(lambda: bool(errors))
    assert receiver.heads[0]["authorization"] == "Bearer wrong"
    assert errors[0].endswith("HTTP 401 (the credentials were refused: check "
                              "--alertmanager-auth-file): 1 alerts rejected, not retried")
    assert "wrong" not in errors[0]


# -- TLS -------------------------------------------------------------------------------------------

OPENSSL = shutil.which("openssl")


def make_certificate(directory: Path) -> tuple[Path, Path]:
    if OPENSSL is None:
        if os.environ.get("CI") == "true":
            pytest.fail("openssl is missing, and CI must run the TLS tests (.ci/run installs it)")
        pytest.skip("openssl is not installed")
    cert, key = directory / "am.pem", directory / "am.key"
    subprocess.run(
        [OPENSSL, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj",
         "/CN=makestream test CA", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=30,
    )
    return cert, key


class TlsReceiver(Receiver):
    """`Receiver` behind TLS, with the given certificate."""

    def __init__(self, cert: Path, key: Path) -> None:
        super().__init__()
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(cert, key)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Receiver]:
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=self.context)
        self.port = server.sockets[0].getsockname()[1]
        try:
            yield self
        finally:
            server.close()
            for task in list(self._handlers):
                task.cancel()
            await asyncio.gather(*self._handlers, return_exceptions=True)
            await server.wait_closed()


@pytest.mark.anyio
async def test_an_https_alertmanager_is_trusted_with_its_ca_and_not_without(
        tmp_path: Path) -> None:
    cert, key = make_certificate(tmp_path)
    async with TlsReceiver(cert, key).running() as receiver:
        errors: list[str] = []
        untrusting = AlertmanagerSink(receiver.url, on_error=errors.append, backoff=FAST)
        async with started(untrusting):
            untrusting.offer(raised(1))
            await until(lambda: bool(errors))
        assert "CERTIFICATE_VERIFY_FAILED" in errors[0] and "retrying" in errors[0]
        assert receiver.accepted == []
        [trusting] = build_sinks(sink_options(alertmanagers=[receiver.url],
                                              alertmanager_ca=cert))
        async with trusting:
            trusting.offer(raised(1))
            trusting.offer(resolved(1))
            await until(lambda: bool(receiver.accepted))
    [post] = [orjson.loads(b) for b in receiver.accepted[:1]]
    assert [a["labels"]["alert_id"] for a in post] == ["consecutive_failures:1"]
