"""The Make client over a mock transport: requests, shapes, error mapping, retries, secrecy."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest

from makestream import __version__
from makestream.clock import Clock
from makestream.errors import (
    ApiError,
    AuthError,
    CdnBlockedError,
    MakestreamError,
    NotFoundError,
    PayloadError,
    RateLimitError,
    ServerError,
    TransportError,
    UsageError,
)
from makestream.make import (
    ZONES,
    ApiNotice,
    Budget,
    ExecStatus,
    MakeClient,
    Priority,
    RetryPolicy,
    Token,
    base_url_for,
    errors_from_response,
)
from makestream.make.client import ONE_SHOT

# Make's example payloads, kept with their LICENSE
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "make"
BASE = "https://eu1.make.com/api/v2"
SECRET = "3f2b5c1e-8a4d-4f6b-9c2e-7d1a0b9e4c3f"  # a UUIDv4, as Make's API tokens are
Handler = Callable[[httpx.Request], httpx.Response]
CDN_MESSAGE = (
    "a CDN in front of Make refused the request (HTTP 403, not Make's JSON) (GET /scenarios/99)"
)


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


class RecordingClock(Clock):
    """A fast clock that remembers every sleep it was asked for (in clock seconds)."""

    def __init__(self) -> None:
        super().__init__(speed=1000)
        self.sleeps: list[float] = []
        self.fixed_now: float | None = None

    def now(self) -> float:
        return super().now() if self.fixed_now is None else self.fixed_now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        await super().sleep(seconds)


class CountingBudget(Budget):
    """A roomy budget that counts acquire() calls."""

    def __init__(self, clock: Clock) -> None:
        super().__init__(100_000, clock=clock)
        self.acquired: list[Priority] = []

    async def acquire(self, priority: Priority = Priority.NORMAL) -> None:
        self.acquired.append(priority)
        await super().acquire(priority)


class Harness:
    """A client on a mock transport, with its requests, notices and sleeps on record."""

    def __init__(self, handler: Handler, *, token: str | None = SECRET, **kwargs: Any) -> None:
        self.requests: list[httpx.Request] = []
        self.notices: list[ApiNotice] = []
        self.clock = RecordingClock()
        self.budget = CountingBudget(self.clock)

        def record(request: httpx.Request) -> httpx.Response:
            self.requests.append(request)
            return handler(request)

        kwargs.setdefault("retry", RetryPolicy(jitter=0.0))
        self.client = MakeClient(
            BASE,
            Token(token) if token else None,
            budget=self.budget,
            clock=self.clock,
            transport=httpx.MockTransport(record),
            observer=self.notices.append,
            **kwargs,
        )

    async def __aenter__(self) -> Harness:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.aclose()

    def query(self, index: int = -1) -> list[tuple[str, str]]:
        return parse_qsl(self.requests[index].url.query.decode(), keep_blank_values=True)

    def backoffs(self) -> list[float]:
        # The budget sleeps too (tiny pacing waits); the client's backoffs are the long ones.
        return [s for s in self.clock.sleeps if s >= 0.5]


def respond(status: int = 200, body: Any = None, **kwargs: Any) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        if body is None:
            return httpx.Response(status, **kwargs)
        return httpx.Response(status, json=body, **kwargs)

    return handler


def routes(table: dict[str, Any]) -> Handler:
    """Answer by path (relative to /api/v2) with a JSON body or a Response."""

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/api/v2")
        answer = table.get(path)
        if answer is None:
            return httpx.Response(404, json={"detail": f"no route {path}", "code": "SC404"})
        if isinstance(answer, httpx.Response):
            return answer
        return httpx.Response(200, json=answer)

    return handler


def sequence(*answers: httpx.Response | Exception) -> Handler:
    """Answer the n-th request with the n-th answer (the last one repeats)."""
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        answer = answers[min(calls, len(answers) - 1)]
        calls += 1
        if isinstance(answer, Exception):
            raise answer
        return answer

    return handler


# --- configuration ---------------------------------------------------------------------------


def test_base_url_for_zones() -> None:
    assert base_url_for("eu1.make.com") == "https://eu1.make.com/api/v2"
    assert base_url_for("https://us2.make.com/") == "https://us2.make.com/api/v2"
    assert base_url_for(" EU2.make.com ") == "https://eu2.make.com/api/v2"
    assert base_url_for("https://eu1.make.celonis.com/api/v2") == (
        "https://eu1.make.celonis.com/api/v2"
    )
    assert set(ZONES) >= {"eu1.make.com", "eu2.make.com", "us1.make.com", "us2.make.com"}


def test_api_url_wins() -> None:
    url = "http://127.0.0.1:8900/api/v2/"
    assert base_url_for("eu1.make.com", api_url=url) == "http://127.0.0.1:8900/api/v2"
    assert base_url_for(None, api_url="https://development.make.cloud/api/v2") == (
        "https://development.make.cloud/api/v2"
    )


def test_bad_zone_or_url_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match=r"unknown Make zone 'eu9\.make\.com'.*MAKE_API_URL"):
        base_url_for("eu9.make.com")
    with pytest.raises(UsageError, match="no Make zone given: set MAKE_ZONE"):
        base_url_for(None)
    with pytest.raises(UsageError, match="MAKE_API_URL must be an http"):
        base_url_for(None, api_url="eu1.make.com/api/v2")


def test_token_header_and_secrecy() -> None:
    token = Token(SECRET)
    assert token.header() == f"Token {SECRET}"
    assert Token("eyJhbGciOi.jwt.value").header() == "Bearer eyJhbGciOi.jwt.value"
    for shown in (repr(token), str(token), f"{token}", f"{token!r}", repr([token])):
        assert SECRET not in shown
        assert "****" in shown
    with pytest.raises(UsageError, match="empty"):
        Token("  \n")
    with pytest.raises(UsageError, match="spaces, control or non-ASCII characters") as info:
        Token("abc def")
    assert "abc" not in str(info.value)


def test_token_from_env_or_file(tmp_path: Path) -> None:
    env = {"MAKE_API_TOKEN": SECRET}
    from_env = Token.from_env_or_file(None, env)
    assert from_env is not None and from_env.reveal() == SECRET
    assert Token.from_env_or_file(None, {}) is None
    assert Token.from_env_or_file(None, {"MAKE_API_TOKEN": "  "}) is None
    file = tmp_path / "token"
    file.write_text("file-token\n")
    from_file = Token.from_env_or_file(file, env)  # an explicit file wins over the variable
    assert from_file is not None and from_file.reveal() == "file-token"
    missing = tmp_path / "missing"
    with pytest.raises(UsageError, match=f"cannot read the token file {missing}"):
        Token.from_env_or_file(missing, env)
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(UsageError, match="is empty"):
        Token.from_env_or_file(empty, env)


# --- requests --------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_headers() -> None:
    async with Harness(respond(200, {"authUser": {"id": 1}})) as h:
        user = await h.client.me()
    assert user.id == 1
    sent = h.requests[0]
    assert sent.headers["authorization"] == f"Token {SECRET}"
    assert sent.headers["user-agent"] == f"makestream/{__version__}"
    assert sent.headers["accept"] == "application/json"
    assert str(sent.url) == f"{BASE}/users/me"


@pytest.mark.anyio
async def test_no_token_sends_no_authorization() -> None:
    async with Harness(respond(200, {"authUser": {"id": 1}}), token=None) as h:
        await h.client.me()
    assert "authorization" not in h.requests[0].headers


@pytest.mark.anyio
async def test_scenarios_pages_until_a_short_page() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        query = dict(parse_qsl(request.url.query.decode()))
        offset, limit = int(query["pg[offset]"]), int(query["pg[limit]"])
        ids = range(1, 6)[offset : offset + limit]
        return httpx.Response(200, json={"scenarios": [{"id": i} for i in ids], "pg": {}})

    async with Harness(handler) as h:
        found = await h.client.scenarios(team_id=7, page_size=2, priority=Priority.LOW)
    assert [s.id for s in found] == [1, 2, 3, 4, 5]
    assert [dict(h.query(i))["pg[offset]"] for i in range(3)] == ["0", "2", "4"]
    assert dict(h.query(0))["teamId"] == "7"
    assert dict(h.query(0))["pg[sortBy]"] == "id"
    assert h.budget.acquired == [Priority.LOW] * 3
    assert b"pg%5Boffset%5D=0" in h.requests[0].url.query


@pytest.mark.anyio
async def test_scenarios_by_ids_use_repeated_brackets() -> None:
    async with Harness(respond(200, {"scenarios": [{"id": 3}, {"id": 4}]})) as h:
        found = await h.client.scenarios(organization_id=9, ids=[3, 4, 3])
    assert [s.id for s in found] == [3, 4]
    assert [v for k, v in h.query() if k == "id[]"] == ["3", "4"]
    assert dict(h.query())["organizationId"] == "9"
    assert b"id%5B%5D=3&id%5B%5D=4" in h.requests[0].url.query


@pytest.mark.anyio
@pytest.mark.parametrize("by_ids", [False, True])
async def test_scenarios_page_on_where_the_server_caps_the_page_and_says_so(by_ids: bool) -> None:
    """The largest `pg[limit]` Make accepts is unknown; a server answering 50 of the 100 asked
    for, with `pg.limit` 50, has more."""
    every = list(range(1, 121))

    def handler(request: httpx.Request) -> httpx.Response:
        query = parse_qsl(request.url.query.decode())
        params = dict(query)
        wanted = [int(v) for k, v in query if k == "id[]"] or every
        offset, limit = int(params["pg[offset]"]), min(50, int(params["pg[limit]"]))
        ids = [i for i in every if i in wanted][offset : offset + limit]
        return httpx.Response(200, json={"scenarios": [{"id": i} for i in ids],
                                         "pg": {"limit": limit, "offset": offset}})

    async with Harness(handler) as h:
        if by_ids:
            found = await h.client.scenarios(organization_id=9, ids=every[:99])
        else:
            found = await h.client.scenarios(team_id=7)
    assert [s.id for s in found] == (every[:99] if by_ids else every)
    assert len(h.requests) == (2 if by_ids else 3)


@pytest.mark.anyio
async def test_scenarios_stop_when_the_server_ignores_the_offset() -> None:
    page = {"scenarios": [{"id": 1}, {"id": 2}]}
    async with Harness(respond(200, page)) as h:
        found = await h.client.scenarios(team_id=1, page_size=2)
    assert [s.id for s in found] == [1, 2]
    assert len(h.requests) == 2


@pytest.mark.anyio
async def test_scenarios_need_exactly_one_owner() -> None:
    async with Harness(respond(200, {"scenarios": []})) as h:
        with pytest.raises(UsageError, match="exactly one of team_id or organization_id"):
            await h.client.scenarios()
        with pytest.raises(UsageError, match="exactly one of team_id or organization_id"):
            await h.client.scenarios(team_id=1, organization_id=2)
    assert h.requests == []


@pytest.mark.anyio
async def test_logs_query_and_page() -> None:
    async with Harness(respond(200, fixture("executions/list.json"))) as h:
        page = await h.client.logs(
            1229,
            from_ms=1632371744000,
            to_ms=1632371745000,
            status=3,
            limit=20,
            last="1632371803593_scenario.1229.auto.3cf2",
            show_last=False,
            sort_dir="asc",
            show_check_runs=True,
            priority=Priority.HIGH,
        )
    assert h.requests[0].url.path == "/api/v2/scenarios/1229/logs"
    assert dict(h.query()) == {
        "pg[limit]": "20",
        "from": "1632371744000",
        "to": "1632371745000",
        "status": "3",
        "pg[last]": "1632371803593_scenario.1229.auto.3cf2",
        "pg[showLast]": "false",
        "pg[sortDir]": "asc",
        "showCheckRuns": "true",
    }
    assert page.items[0].scenario_id == 1229
    assert page.pg is not None and page.pg.last is not None
    assert h.budget.acquired == [Priority.HIGH]


@pytest.mark.anyio
async def test_one_call_per_endpoint() -> None:
    table = {
        "/organizations": fixture("organizations/list.json"),
        "/organizations/10": fixture("organizations/get.json"),
        "/teams": fixture("teams/list.json"),
        "/scenarios/925": fixture("scenarios/get.json"),
        "/scenarios/925/blueprint": fixture("blueprints/get.json"),
        "/scenarios/925/triggers": fixture("hooks/list.json"),
        "/scenarios/925/interface": fixture("scenarios/interface.json"),
        "/scenarios/5/logs/cc1c49323b344687a324888762206003": fixture("executions/get.json"),
        "/scenarios/5/executions/cc1c49323b344687a324888762206003": fixture(
            "executions/get-detail.json"
        ),
        "/scenarios/112/modules/2/logs": {
            "moduleLogs": [
                {"executionId": "e1", "timestamp": "2021-09-23T04:35:44.497Z", "status": 1}
            ],
            "pg": {"last": "x", "limit": 50},
        },
        "/dlqs": fixture("incomplete-executions/list.json"),
        "/dlqs/ada8/bundle": fixture("incomplete-executions/bundle.json"),
    }
    eid = "cc1c49323b344687a324888762206003"
    async with Harness(routes(table)) as h:
        c = h.client
        assert [o.id for o in await c.organizations()] == [5, 6]
        assert (await c.organization(10)).zone == "local.make.cloud"
        assert [t.id for t in await c.teams(5)] == [5]
        assert dict(h.query())["organizationId"] == "5"
        assert (await c.scenario(925)).name == "New scenario"
        assert (await c.blueprint(925)).name == "Empty integration"
        assert [t.id for t in await c.triggers(925)] == [11, 58]
        assert [f.name for f in (await c.interface(925)).input] == ["email"]
        assert (await c.log(5, eid)).operations == 2
        assert (await c.execution(5, eid)).status is ExecStatus.SUCCESS
        module_page = await c.module_logs(112, 2, limit=10, last="y")
        assert module_page.items[0].execution_id == "e1"
        assert dict(h.query()) == {"pg[limit]": "10", "pg[last]": "y"}
        assert [d.id for d in await c.dlqs(3)] == [
            "ada87173334b44d1907270064edbd7dd",
            "c29c4bf027c74bfc848e1803bf764447",
        ]
        assert dict(h.query())["scenarioId"] == "3"
        assert set(await c.dlq_bundle("ada8")) == {"1", "3"}
    assert len(h.budget.acquired) == len(h.requests) == 12


@pytest.mark.anyio
async def test_execution_ids_stay_one_path_segment() -> None:
    async with Harness(respond(200, {"status": "RUNNING"})) as h:
        await h.client.execution(5, "../../users/me")
    assert h.requests[0].url.raw_path == b"/api/v2/scenarios/5/executions/..%2F..%2Fusers%2Fme"


@pytest.mark.anyio
@pytest.mark.parametrize(
    "body",
    [
        {
            "code": "OK",
            "response": {"blueprint": {"name": "B", "flow": [{"id": 1, "module": "a:b"}]}},
        },
        {"response": {"blueprint": {"name": "B", "flow": [{"id": 1, "module": "a:b"}]}}},
        {"blueprint": {"name": "B", "flow": [{"id": 1, "module": "a:b"}]}},
    ],
)
async def test_blueprint_shapes(body: dict[str, Any]) -> None:
    async with Harness(respond(200, body)) as h:
        blueprint = await h.client.blueprint(1)
    assert blueprint.name == "B" and [m.id for m in blueprint.walk()] == [1]


TRIGGER = {"id": 4, "name": "Hook", "queueCount": 12, "queueLimit": 100, "typeName": "web"}


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("body", "ids"),
    [
        ([TRIGGER], [4]),
        ({"triggers": [TRIGGER]}, [4]),
        ({"trigger": TRIGGER}, [4]),
        ({"hooks": [TRIGGER, {**TRIGGER, "id": 5}]}, [4, 5]),
        ({"hook": TRIGGER}, [4]),
        (TRIGGER, [4]),
        ({"triggers": None}, []),
        ({}, []),
    ],
)
async def test_trigger_shapes(body: Any, ids: list[int]) -> None:
    async with Harness(respond(200, body)) as h:
        triggers = await h.client.triggers(1)
    assert [t.id for t in triggers] == ids
    assert all(t.queue_count == 12 for t in triggers)


@pytest.mark.anyio
async def test_run_posts_the_body_and_skips_the_budget() -> None:
    async with Harness(
        respond(200, {"executionId": "9c48", "status": 1, "outputs": {"n": 15}})
    ) as h:
        result = await h.client.run(
            5, data={"name": "Ann"}, responsive=True, callback_url="https://example.org/hook"
        )
    assert result.execution_id == "9c48" and result.status is ExecStatus.SUCCESS
    assert result.outputs == {"n": 15}
    request = h.requests[0]
    assert request.method == "POST" and request.url.path == "/api/v2/scenarios/5/run"
    assert json.loads(request.content) == {
        "data": {"name": "Ann"},
        "responsive": True,
        "callbackUrl": "https://example.org/hook",
    }
    assert h.budget.acquired == []  # POST /run is exempt from the organization limit...
    assert [n.kind for n in h.notices] == ["request"]  # ...but still counted
    assert request.extensions["timeout"]["read"] == 50.0  # Make holds responsive runs 40 s


# --- error mapping ---------------------------------------------------------------------------


async def fail(handler: Handler, call: str = "scenario", **kwargs: Any) -> MakestreamError:
    async with Harness(handler, retry=RetryPolicy(attempts=1), **kwargs) as h:
        with pytest.raises(MakestreamError) as info:
            if call == "run":
                await h.client.run(5)
            elif call == "me":
                await h.client.me()
            else:
                await h.client.scenario(99)
    return info.value


ERROR_CASES: list[tuple[Handler, str, type[MakestreamError], str]] = [
    (
        respond(
            404,
            {
                "detail": "Connection not found 'google-email:999999999'.",
                "message": "Account doesn't exist",
                "code": "IM304",
            },
        ),
        "scenario",
        NotFoundError,
        "Make API 404 IM304: Connection not found 'google-email:999999999' (GET /scenarios/99)",
    ),
    (
        respond(404, text="Not Found"),
        "scenario",
        NotFoundError,
        "Make API 404: Not Found (GET /scenarios/99)",
    ),
    (
        respond(400, fixture("mcp-server/run-error.json")),
        "run",
        ApiError,
        "Make API 400 SC400: Validation failed for 1 parameter(s); Missing value of required "
        "parameter 'number' (POST /scenarios/5/run)",
    ),
    (
        respond(400, {"detail": "request entity too large"}),
        "scenario",
        ApiError,
        "Make API 400: request entity too large (GET /scenarios/99)",
    ),
    (
        respond(406, {"detail": "Confirmation required.", "code": "IM004"}),
        "scenario",
        ApiError,
        "Make API 406 IM004: Confirmation required (GET /scenarios/99)",
    ),
    (
        respond(401, {"detail": "Invalid access token.", "code": "SC401"}),
        "me",
        AuthError,
        "Make API 401 SC401: token rejected (Invalid access token): check MAKE_API_TOKEN and "
        "that the token was made for eu1.make.com (GET /users/me)",
    ),
    (
        respond(401),
        "me",
        AuthError,
        "Make API 401: token rejected: check MAKE_API_TOKEN and that the token was made for "
        "eu1.make.com (GET /users/me)",
    ),
    (
        respond(403, {"detail": "Access denied.", "message": "Permission denied", "code": "SC403"}),
        "scenario",
        AuthError,
        "Make API 403 SC403: Access denied: the token lacks the rights or a scope; this needs "
        "the scenarios:read scope (GET /scenarios/99)",
    ),
    (
        respond(
            403,
            text="<html><body>error code: 1010</body></html>",
            headers={"content-type": "text/html"},
        ),
        "scenario",
        CdnBlockedError,
        CDN_MESSAGE,
    ),
    (
        respond(403, text="error code: 1010"),
        "scenario",
        CdnBlockedError,
        CDN_MESSAGE,
    ),
    (
        respond(429, text="Requests limit for organization exceeded, please try again later."),
        "scenario",
        RateLimitError,
        "Make API 429: Requests limit for organization exceeded, please try again later "
        "(GET /scenarios/99)",
    ),
    (
        respond(429, {"detail": "Requests limit for organization exceeded.", "code": "SC429"}),
        "scenario",
        RateLimitError,
        "Make API 429 SC429: Requests limit for organization exceeded (GET /scenarios/99)",
    ),
    (
        respond(500, {"detail": "Internal error.", "code": "SC500"}),
        "scenario",
        ServerError,
        "Make API 500 SC500: Internal error (GET /scenarios/99)",
    ),
    (
        respond(503, text="<!DOCTYPE html><html>Bad gateway page</html>"),
        "scenario",
        ServerError,
        "Make API 503: Service Unavailable (GET /scenarios/99)",
    ),
    (
        respond(424, {"detail": "Connection to the app timed out.", "code": "IM424"}),
        "scenario",
        ServerError,
        "Make API 424 IM424: Connection to the app timed out (GET /scenarios/99)",
    ),
    (
        respond(200, text="{not json"),
        "scenario",
        PayloadError,
        "Make answered GET /scenarios/99 with a body that is not JSON",
    ),
    (
        respond(200, {"scenario": {"name": "no id"}}),
        "scenario",
        PayloadError,
        "Make answered GET /scenarios/99 with an unexpected body: id: Field required",
    ),
    (
        respond(200, {"scenarios": []}),
        "scenario",
        PayloadError,
        "Make answered GET /scenarios/99 with an unexpected body: no 'scenario' object",
    ),
    (
        respond(200, ["a", "list"]),
        "scenario",
        PayloadError,
        "Make answered GET /scenarios/99 with an unexpected body: expected a JSON object, got list",
    ),
    (
        sequence(httpx.ReadTimeout("timed out")),
        "scenario",
        TransportError,
        "no answer from eu1.make.com: timed out (GET /scenarios/99)",
    ),
    (
        sequence(httpx.ConnectTimeout("timed out")),
        "scenario",
        TransportError,
        "no answer from eu1.make.com: timed out connecting (GET /scenarios/99)",
    ),
    (
        sequence(httpx.ConnectError("[Errno 111] Connection refused")),
        "scenario",
        TransportError,
        "no answer from eu1.make.com: could not connect (GET /scenarios/99)",
    ),
    (
        sequence(httpx.RemoteProtocolError("Server disconnected without sending a response.")),
        "scenario",
        TransportError,
        "no answer from eu1.make.com: connection dropped (GET /scenarios/99)",
    ),
    (
        sequence(httpx.ReadError("connection reset")),
        "scenario",
        TransportError,
        "no answer from eu1.make.com: connection broken (GET /scenarios/99)",
    ),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("handler", "call", "kind", "message"), ERROR_CASES)
async def test_error_mapping(
    handler: Handler, call: str, kind: type[MakestreamError], message: str
) -> None:
    error = await fail(handler, call)
    assert type(error) is kind
    assert str(error) == message
    assert "\n" not in str(error)


@pytest.mark.anyio
async def test_api_error_attributes() -> None:
    error = await fail(respond(404, {"detail": "Gone.", "code": "IM304"}))
    assert isinstance(error, ApiError)
    assert (error.status, error.code, error.detail) == (404, "IM304", "Gone.")
    assert not error.transient
    for transient in (RateLimitError, ServerError, TransportError, PayloadError):
        assert transient.transient


def test_errors_from_response_alone() -> None:
    request = httpx.Request("GET", "https://eu1.make.com/api/v2/scenarios/99?teamId=1")
    error = errors_from_response(httpx.Response(404, json={"detail": "x"}, request=request))
    assert str(error) == "Make API 404: x (GET /api/v2/scenarios/99)"
    response = httpx.Response(429, headers={"Retry-After": "12"}, request=request)
    assert errors_from_response(response).retry_after == 12.0


# --- retries ---------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_server_errors_are_retried_with_backoff_then_raised() -> None:
    async with Harness(respond(502, text="Bad Gateway")) as h:
        with pytest.raises(ServerError) as info:
            await h.client.scenario(1)
    assert info.value.transient
    assert len(h.requests) == 4
    assert h.backoffs() == [1.0, 2.0, 4.0]
    assert len(h.budget.acquired) == 4  # every attempt waits for the budget
    assert [n.kind for n in h.notices] == ["request", "retry"] * 3 + ["request"]
    assert [n.retry_in_s for n in h.notices if n.kind == "retry"] == [1.0, 2.0, 4.0]
    assert h.notices[1].status == 502
    assert h.notices[1].error == "Make API 502: Bad Gateway (GET /scenarios/1)"


@pytest.mark.anyio
async def test_one_shot_commands_give_up_after_three_tries() -> None:
    async with Harness(respond(502, text="Bad Gateway"), retry=ONE_SHOT) as h:
        with pytest.raises(ServerError) as info:
            await h.client.scenario(1)
    assert len(h.requests) == 3
    assert info.value.tries == 3
    assert str(info.value).endswith("(gave up after 3 tries)")


@pytest.mark.anyio
async def test_no_retry_starts_past_the_give_up_time() -> None:
    # Backoffs of 30 s, then 60 s: the second would start 90 s after the first try.
    policy = RetryPolicy(attempts=10, base=30.0, factor=2.0, max_delay=120.0, jitter=0.0,
                         give_up_s=60.0)
    async with Harness(respond(503), retry=policy) as h:
        with pytest.raises(ServerError) as info:
            await h.client.scenario(1)
    assert len(h.requests) == 2
    assert h.backoffs() == [30.0]
    assert "(gave up after 2 tries)" in str(info.value)


def trickling_server() -> tuple[socket.socket, threading.Event]:
    """A loopback server that answers with a 200 head, then one body byte every 50 ms."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 100000\r\n\r\n")
            while not stop.wait(0.05):
                try:
                    conn.sendall(b" ")
                except OSError:
                    return

    threading.Thread(target=serve, daemon=True).start()
    return listener, stop


@pytest.mark.anyio
async def test_a_trickling_server_cannot_hold_a_request_past_its_deadline() -> None:
    listener, stop = trickling_server()
    port = listener.getsockname()[1]
    try:
        async with MakeClient(
            f"http://127.0.0.1:{port}/api/v2", None, timeout=0.5, retry=RetryPolicy(attempts=1)
        ) as client:
            began = time.monotonic()
            with pytest.raises(TransportError) as info:
                await client.scenario(1)
            took = time.monotonic() - began
    finally:
        stop.set()
        listener.close()
    # Every read got a byte well within 0.5 s; the deadline on the whole exchange ended it.
    assert took < 5
    assert f"127.0.0.1:{port}" in str(info.value)
    assert "no complete answer within 0.5 s" in str(info.value)


@pytest.mark.anyio
async def test_backoff_is_capped_and_jittered() -> None:
    policy = RetryPolicy(attempts=8, base=1.0, factor=2.0, max_delay=30.0, jitter=0.2)
    async with Harness(respond(500), retry=policy) as h:
        with pytest.raises(ServerError):
            await h.client.scenario(1)
    delays = h.backoffs()
    nominal = [1, 2, 4, 8, 16, 30, 30]
    assert len(delays) == 7
    assert all(0.8 * n <= d <= 1.2 * n for d, n in zip(delays, nominal, strict=True))


@pytest.mark.anyio
async def test_recovery_after_transient_failures() -> None:
    answers = sequence(
        httpx.ReadTimeout("timed out"),
        httpx.RemoteProtocolError("dropped"),
        httpx.Response(200, text="{broken"),
        httpx.Response(200, json={"scenario": {"id": 1, "name": "ok"}}),
    )
    async with Harness(answers) as h:
        scenario = await h.client.scenario(1)
    assert scenario.name == "ok"
    assert len(h.requests) == 4
    assert [n.kind for n in h.notices].count("retry") == 3
    assert [n.status for n in h.notices if n.kind == "request"] == [None, None, 200, 200]


@pytest.mark.anyio
@pytest.mark.parametrize("status", [400, 401, 403, 404, 406, 413])
async def test_client_errors_are_not_retried(status: int) -> None:
    async with Harness(respond(status, {"detail": "no", "code": f"SC{status}"})) as h:
        with pytest.raises(ApiError):
            await h.client.scenario(1)
    assert len(h.requests) == 1
    assert h.backoffs() == []
    assert [n.kind for n in h.notices] == ["request"]


@pytest.mark.anyio
async def test_cdn_block_is_not_retried() -> None:
    async with Harness(respond(403, text="<html>blocked</html>")) as h:
        with pytest.raises(CdnBlockedError):
            await h.client.scenario(1)
    assert len(h.requests) == 1


@pytest.mark.anyio
async def test_429_honours_retry_after_seconds() -> None:
    answers = sequence(
        httpx.Response(429, text="Requests limit exceeded.", headers={"Retry-After": "7"}),
        httpx.Response(200, json={"scenario": {"id": 1}}),
    )
    async with Harness(answers) as h:
        await h.client.scenario(1)
        snap = h.budget.snapshot()
    assert h.backoffs() == [7.0]
    throttled = [n for n in h.notices if n.kind == "throttled"]
    assert len(throttled) == 1
    assert throttled[0].retry_in_s == 7.0 and throttled[0].status == 429
    assert throttled[0].path == "/scenarios/1" and throttled[0].method == "GET"
    # Halved by the 429, then 1 % of nominal back for the answer that followed.
    assert snap.rate_per_min == pytest.approx(0.8 * 100_000 * 0.51)


@pytest.mark.anyio
async def test_429_honours_retry_after_http_date() -> None:
    now = 1_800_000_000.0
    when = format_datetime(datetime.fromtimestamp(now + 20, tz=UTC), usegmt=True)
    answers = sequence(
        httpx.Response(429, headers={"Retry-After": when}),
        httpx.Response(200, json={"scenario": {"id": 1}}),
    )
    async with Harness(answers) as h:
        h.clock.fixed_now = now
        await h.client.scenario(1)
    assert h.backoffs() == [20.0]


@pytest.mark.anyio
async def test_429_without_retry_after_probes_soon_then_backs_off() -> None:
    answers = sequence(
        httpx.Response(429, text="Requests limit for organization exceeded."),
        httpx.Response(429, text="Requests limit for organization exceeded."),
        httpx.Response(200, json={"scenario": {"id": 1}}),
    )
    async with Harness(answers) as h:
        await h.client.scenario(1)
    assert h.backoffs() == [2.0, 4.0]
    assert [n.kind for n in h.notices] == [
        "request", "throttled", "request", "throttled", "request"]


@pytest.mark.anyio
async def test_429s_exhausting_the_attempts_raise_a_transient_error() -> None:
    async with Harness(respond(429, text="limit", headers={"Retry-After": "1"})) as h:
        with pytest.raises(RateLimitError) as info:
            await h.client.scenario(1)
    assert info.value.transient and info.value.retry_after == 1.0
    assert len(h.requests) == 4
    assert [n.kind for n in h.notices].count("throttled") == 4


@pytest.mark.anyio
async def test_server_retry_after_is_honoured() -> None:
    answers = sequence(
        httpx.Response(503, headers={"Retry-After": "9"}),
        httpx.Response(200, json={"scenario": {"id": 1}}),
    )
    async with Harness(answers) as h:
        await h.client.scenario(1)
    assert h.backoffs() == [9.0]


@pytest.mark.anyio
@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(502),
        httpx.ReadTimeout("timed out"),
        httpx.RemoteProtocolError("dropped"),
        httpx.Response(200, text="not json"),
    ],
)
async def test_run_is_not_retried_when_make_may_have_started_it(
    answer: httpx.Response | Exception,
) -> None:
    async with Harness(sequence(answer, httpx.Response(200, json={"executionId": "e"}))) as h:
        with pytest.raises(MakestreamError):
            await h.client.run(5)
    assert len(h.requests) == 1


@pytest.mark.anyio
@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(429, text="limit", headers={"Retry-After": "2"}),
        httpx.ConnectError("refused"),
        httpx.ConnectTimeout("timed out"),
    ],
)
async def test_run_is_retried_when_make_cannot_have_started_it(
    answer: httpx.Response | Exception,
) -> None:
    async with Harness(sequence(answer, httpx.Response(200, json={"executionId": "e"}))) as h:
        result = await h.client.run(5)
    assert result.execution_id == "e"
    assert len(h.requests) == 2
    assert h.budget.acquired == []


@pytest.mark.anyio
async def test_a_failing_observer_does_not_break_requests(caplog: pytest.LogCaptureFixture) -> None:
    def observer(notice: ApiNotice) -> None:
        raise RuntimeError("sink down")

    clock = Clock(speed=1000)
    async with MakeClient(
        BASE,
        Token(SECRET),
        clock=clock,
        transport=httpx.MockTransport(respond(200, {"scenario": {"id": 1}})),
        observer=observer,
    ) as client:
        assert (await client.scenario(1)).id == 1
    assert "API observer failed" in caplog.text


@pytest.mark.anyio
async def test_client_defaults() -> None:
    async with MakeClient(BASE, None, transport=httpx.MockTransport(respond(200))) as client:
        assert client.budget.api_limit == 60
        assert client.budget.clock is client.clock
        assert client.base_url == BASE


# --- the token never shows -------------------------------------------------------------------


def echo(status: int, *, as_json: bool) -> Handler:
    """A hostile server that echoes the Authorization header back in its error body."""

    def handler(request: httpx.Request) -> httpx.Response:
        header = request.headers.get("authorization", "")
        if as_json:
            body = {"detail": f"bad header {header}", "message": header, "code": "SC400"}
            return httpx.Response(status, json=body, headers={"Retry-After": "1"})
        return httpx.Response(status, text=f"denied for {header}", headers={"Retry-After": "1"})

    return handler


@pytest.mark.anyio
@pytest.mark.parametrize(
    "handler",
    [
        echo(400, as_json=True),
        echo(401, as_json=True),
        echo(403, as_json=True),
        echo(404, as_json=False),
        echo(429, as_json=False),
        echo(429, as_json=True),
        echo(500, as_json=True),
        sequence(httpx.ReadTimeout("timed out")),
        sequence(httpx.ConnectError(f"refused Token {SECRET}")),
        respond(200, text="not json"),
    ],
)
async def test_the_token_appears_nowhere(
    handler: Handler, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with Harness(handler) as h:
        with pytest.raises(MakestreamError) as info:
            await h.client.scenario(1)
        shown = [
            str(info.value),
            repr(info.value),
            repr(info.value.args),
            repr(vars(info.value)),
            repr(h.client),
            caplog.text,
            *(repr(n) for n in h.notices),
        ]
    assert h.requests[0].headers["authorization"] == f"Token {SECRET}"  # it was sent...
    for text in shown:
        assert SECRET not in text  # ...and never shown
    assert h.notices  # and there was something to look at


def _log_history(n: int) -> list[dict[str, Any]]:
    """n log entries of scenario 5, newest first, as Make lists them."""
    t0 = 1_790_000_000_000
    return [{"imtId": f"{t0 + i * 1000}_scenario.5.auto.{i:032x}", "id": f"{i:032x}",
             "timestamp": "2026-09-21T12:00:00Z", "duration": 1000, "status": 1}
            for i in reversed(range(n))]


@pytest.mark.anyio
@pytest.mark.parametrize("keyset", [True, False])
async def test_recent_logs_pages_from_the_last_entry_and_never_repeats_one(keyset: bool) -> None:
    """In Make's example `pg.last` is not the page's last entry; a server may also ignore
    `pg[last]`. Either way each run is listed once, and paging ends."""
    history = _log_history(120)

    def handler(request: httpx.Request) -> httpx.Response:
        params = dict(parse_qsl(request.url.query.decode()))
        limit = int(params["pg[limit]"])
        start = 0
        if keyset and "pg[last]" in params:
            start = next(i for i, e in enumerate(history) if e["imtId"] == params["pg[last]"]) + 1
        page = history[start:start + limit]
        # `pg.last` names the newest entry, as in Make's own example.
        return httpx.Response(200, json={"scenarioLogs": page,
                                         "pg": {"last": history[0]["imtId"], "limit": limit}})

    async with Harness(handler) as h:
        entries = await h.client.recent_logs(5, 150)
    ids = [e.id for e in entries]
    assert len(ids) == len(set(ids))
    assert ids == [e["id"] for e in history[:len(ids)]]
    assert len(ids) == (120 if keyset else 100)
    assert all(q["pg[sortDir]"] == "desc" for q in map(dict, map(h.query, range(len(h.requests)))))
