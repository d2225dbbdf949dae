"""Fuzzing what comes from outside: Make's payloads, cursors and config files.

The only exceptions allowed are makestream's typed errors (MakestreamError subclasses) and, for a
model validated directly, pydantic's ValidationError (which the client turns into a
PayloadError). Anything else — a TypeError, an OverflowError, a RecursionError — is a crash the
user would see as a traceback. Bounded so that the whole file runs in a few seconds.
"""

from __future__ import annotations

import json
import string
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from makestream.clock import Clock
from makestream.config import parse
from makestream.engine.cursor import Cursor, Position
from makestream.errors import ConfigError, MakestreamError, PayloadError, UsageError
from makestream.limits import MAKE_INT_MAX
from makestream.make import Budget, MakeClient, RetryPolicy, Token
from makestream.make import models as m

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "make"
SECRET = "3f2b5c1e-8a4d-4f6b-9c2e-7d1a0b9e4c3f"
FUZZ = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

# --- strategies --------------------------------------------------------------------------------

_odd_ints = st.sampled_from(
    [0, -1, 2**31, 2**53, 2**53 + 1, 2**63, 2**64, -(2**63) - 1, 10**30, 10**300]
)
_odd_floats = st.sampled_from([0.5, -0.0, 1e308, 1e-308, float("inf"), float("-inf"), 1.0])
_odd_text = st.sampled_from(
    ["", " ", "0", "12.0", "1e999", "¹", "١٢", "9" * 40, "RUNNING", "\x00", "a\nb", "null",
     "1632371744497_scenario.1229.auto.da518adc", "99999999999999999999_scenario.1.a.b",
     "2026-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z", "eu1.make.com",
     "evil.example/x"]
)
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), _odd_ints, st.floats(allow_nan=False),
    _odd_floats, st.text(max_size=20), _odd_text,
)
_KEYS = st.sampled_from(
    ["id", "imtId", "status", "timestamp", "duration", "operations", "transfer", "zone",
     "teamId", "scenarioId", "executionId", "pg", "last", "flow", "routes", "onerror", "module",
     "license", "apiLimit", "teams", "error", "outputs", "response", "blueprint", "items",
     "scenario", "scenarioLogs", "scenarios", "queueCount", "centicredits", "nextExec"]
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.text(max_size=8), _KEYS), inner, max_size=5),
    ),
    max_leaves=25,
)



def mutated(value: Any) -> st.SearchStrategy[Any]:
    """A strategy of `value` with any of its parts possibly replaced by arbitrary JSON."""
    if isinstance(value, dict):
        inner: st.SearchStrategy[Any] = st.fixed_dictionaries(
            {k: mutated(v) for k, v in value.items()},
            optional={
                k: json_values for k in ("id", "status", "timestamp", "imtId") if k not in value
            },
        )
    elif isinstance(value, list) and value:
        inner = st.tuples(*(mutated(v) for v in value)).map(list)
    else:
        # A leaf: mostly kept, else an odd value of the kind that broke things before.
        same = st.just(value)
        return st.one_of(same, same, same, _odd_ints, _odd_text, _odd_floats, json_values)
    return st.one_of(inner, inner, inner, json_values)


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


# Each endpoint: the fixture of its answer and the client call that reads it.
Call = Callable[[MakeClient], Awaitable[Any]]
ENDPOINTS: dict[str, tuple[str, Call]] = {
    "scenario": ("scenarios/get.json", lambda c: c.scenario(1)),
    "scenarios": ("scenarios/list.json", lambda c: c.scenarios(team_id=1, page_size=1000)),
    "interface": ("scenarios/interface.json", lambda c: c.interface(1)),
    "run": ("scenarios/run.json", lambda c: c.run(1)),
    "logs": ("executions/list.json", lambda c: c.logs(1)),
    "log": ("executions/get.json", lambda c: c.log(1, "x")),
    "execution": ("executions/get-detail.json", lambda c: c.execution(1, "x")),
    "blueprint": ("blueprints/get.json", lambda c: c.blueprint(1)),
    "triggers": ("hooks/list.json", lambda c: c.triggers(1)),
    "organization": ("organizations/get.json", lambda c: c.organization(1)),
    "organizations": ("organizations/list.json", lambda c: c.organizations()),
    "teams": ("teams/list.json", lambda c: c.teams(1)),
    "me": ("users/me.json", lambda c: c.me()),
    "dlqs": ("incomplete-executions/list.json", lambda c: c.dlqs(1)),
    "bundle": ("incomplete-executions/bundle.json", lambda c: c.dlq_bundle("x")),
}
SHAPED = st.sampled_from(sorted(ENDPOINTS)).flatmap(
    lambda name: st.tuples(st.just(name), mutated(fixture(ENDPOINTS[name][0])))
)

# --- checks ------------------------------------------------------------------------------------

# Fields typed Any or dict[str, Any]: kept as Make sent them and never put into events.
_FREE = {"parameters", "mapper", "metadata", "outputs", "value", "warning", "error", "default",
         "filter"}


def check_declared_ints(value: Any) -> None:
    """Every integer in a model's declared fields fits JSON's exact range, so every event
    built from it can be written as NDJSON."""
    if isinstance(value, BaseModel):
        for name in type(value).model_fields:
            if name not in _FREE or isinstance(getattr(value, name), BaseModel):
                check_declared_ints(getattr(value, name))
    elif isinstance(value, list | tuple):
        for item in value:
            check_declared_ints(item)
    elif isinstance(value, dict):
        for item in value.values():
            check_declared_ints(item)
    elif isinstance(value, int) and not isinstance(value, bool):
        assert -MAKE_INT_MAX <= value <= MAKE_INT_MAX, value
    elif hasattr(value, "year"):
        orjson.dumps(value)


def answer(body: bytes, call: Call) -> Any:
    """What the client makes of `body` as the 200 answer of one endpoint."""

    async def main() -> Any:
        async with MakeClient(
            "https://eu1.make.com/api/v2",
            Token(SECRET),
            budget=Budget(1_000_000, clock=Clock(speed=1000)),
            transport=httpx.MockTransport(lambda request: httpx.Response(200, content=body)),
            retry=RetryPolicy(attempts=1),
        ) as client:
            return await call(client)

    return anyio.run(main)


def client_survives(name: str, body: bytes) -> None:
    try:
        result = answer(body, ENDPOINTS[name][1])
    except PayloadError as exc:
        assert "\n" not in str(exc)
        return
    check_declared_ints(result)


# --- Make's payloads ---------------------------------------------------------------------------


@FUZZ
@given(SHAPED)
def test_fixture_shaped_payloads_give_models_or_payload_errors(case: tuple[str, Any]) -> None:
    name, body = case
    client_survives(name, json.dumps(body).encode())


@FUZZ
@given(st.sampled_from(sorted(ENDPOINTS)), json_values)
def test_arbitrary_json_gives_models_or_payload_errors(name: str, body: Any) -> None:
    client_survives(name, json.dumps(body).encode())


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(sorted(ENDPOINTS)), st.binary(max_size=64))
def test_arbitrary_bytes_give_models_or_payload_errors(name: str, body: bytes) -> None:
    client_survives(name, body)


MODELS: list[type[BaseModel]] = [
    m.Scenario, m.ExecutionLog, m.LogPage, m.ExecutionDetail, m.RunResult, m.Organization,
    m.Team, m.User, m.Trigger, m.Blueprint, m.BlueprintModule, m.BlueprintVersion,
    m.ScenarioInterface, m.ModuleLog, m.ModuleLogPage, m.Dlq, m.DlqBundleEntry, m.Page,
]


@FUZZ
@given(st.sampled_from(MODELS), json_values)
def test_models_validate_or_raise_validation_error(model: type[BaseModel], data: Any) -> None:
    try:
        result = model.model_validate(data)
    except ValidationError:
        return
    check_declared_ints(result)
    if isinstance(result, m.ExecutionLog):
        assert isinstance(result.timestamp_ms, int)


@FUZZ
@given(json_values)
def test_status_and_imt_id_parsers_never_raise(value: Any) -> None:
    m.ExecStatus.parse(value)
    if isinstance(value, str):
        m.parse_imt_id(value)


# --- cursors -----------------------------------------------------------------------------------

VALID = [
    Cursor("abc", 12, {7: Position(1000, {"a1b2c3d4e5f6": 1200}), 9: Position(5)}).encode(),
    Cursor("", 0, {}).encode(),
]


def decodes_or_usage_error(text: str) -> None:
    try:
        Cursor.decode(text)
    except UsageError as exc:
        assert str(exc).startswith("invalid cursor") and "\n" not in str(exc)


@FUZZ
@given(st.one_of(st.text(max_size=200), st.text(max_size=60).map(lambda t: "1." + t)))
def test_arbitrary_text_decodes_or_is_a_usage_error(text: str) -> None:
    decodes_or_usage_error(text)


@FUZZ
@given(st.binary(max_size=120))
def test_arbitrary_version_2_bodies_decode_or_are_a_usage_error(body: bytes) -> None:
    import base64

    decodes_or_usage_error("2." + base64.urlsafe_b64encode(body).decode() + "~s.1")


@FUZZ
@given(
    st.sampled_from(VALID),
    st.lists(
        st.tuples(st.integers(0, 200), st.sampled_from(["del", "ins", "sub"]),
                  st.sampled_from(string.ascii_letters + string.digits + "-_~.=!")),
        min_size=1, max_size=4,
    ),
    st.integers(0, 200),
)
def test_mutated_cursors_decode_or_are_usage_errors(
    text: str, edits: list[tuple[int, str, str]], cut: int
) -> None:
    chars = list(text)
    for where, op, ch in edits:
        i = where % (len(chars) + 1)
        if op == "ins":
            chars.insert(i, ch)
        elif chars and i < len(chars):
            if op == "del":
                del chars[i]
            else:
                chars[i] = ch
    mutated_text = "".join(chars)
    decodes_or_usage_error(mutated_text)
    decodes_or_usage_error(mutated_text[: len(mutated_text) - cut % (len(mutated_text) + 1)])


@FUZZ
@given(json_values)
def test_cursor_bodies_of_any_json_decode_or_are_usage_errors(body: Any) -> None:
    import base64
    import zlib

    packed = base64.urlsafe_b64encode(zlib.compress(json.dumps(body).encode())).rstrip(b"=")
    decodes_or_usage_error("1." + packed.decode() + "~s.1")


# --- config ------------------------------------------------------------------------------------

_TOML_PIECES = st.sampled_from(
    ["[thresholds]\n", "[alerts]\n", "[scenarios.1.thresholds]\n", "[scenarios.x]\n",
     "[[thresholds]]\n", "renotify_s = ", "error_rate = ", "operations_max = ",
     "consecutive_failures = ", "duration_p95_factor = ", "scenario_paused = ", "{ value = ",
     "severity = \"critical\"", ", ", " }", "\n", "true", "-1", "1e999", "inf", "nan", "3",
     "9" * 30, "0.5", "\"x\"", "[1, [2, [3]]]", "a.b.c = 1\n", "a = 1\na = 2\n", "=", "#",
     "\"\"\"", "'", "[", "]", "{", "}", "[thresholds.error_rate]\nvalue = 0.1\n",
     "[" * 50 + "]" * 50, "x = " + "[" * 3000 + "]" * 3000 + "\n"]
)


def parses_or_config_error(text: str) -> None:
    try:
        parse(text, "fuzz.toml")
    except ConfigError as exc:
        assert str(exc).startswith("fuzz.toml") and "\n" not in str(exc)


@FUZZ
@given(st.text(max_size=300))
def test_arbitrary_text_is_a_config_or_a_config_error(text: str) -> None:
    parses_or_config_error(text)


@FUZZ
@given(st.lists(_TOML_PIECES, max_size=14).map("".join))
def test_toml_like_text_is_a_config_or_a_config_error(text: str) -> None:
    parses_or_config_error(text)


def test_the_fuzz_harness_sees_a_good_payload() -> None:
    # Guard against a harness that passes because everything is a PayloadError.
    result = answer(json.dumps(fixture("scenarios/get.json")).encode(), ENDPOINTS["scenario"][1])
    assert isinstance(result, m.Scenario)
    with pytest.raises(MakestreamError):
        answer(b"[", ENDPOINTS["scenario"][1])
