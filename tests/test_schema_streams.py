"""The streams makestream writes, checked by an independent validator against `makestream schema`.

`jsonschema` (Draft 2020-12, with format checks) reads the schema as any consumer would; every
line of every stream here must satisfy it, and an event without its envelope must not.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from jsonschema import Draft202012Validator
from test_server import SseReader, count_finished, sse_server
from typer.testing import CliRunner

from makestream.cli import app
from makestream.events import ENVELOPE, json_schema

runner = CliRunner()
FAST = ["--speed", "100"]
SAMPLE = Path(__file__).parent / "snapshots" / "sample.ndjson"


@pytest.fixture(scope="module")
def validator() -> Draft202012Validator:
    schema = json_schema()
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def check_lines(validator: Draft202012Validator, text: str) -> list[dict[str, Any]]:
    events = [orjson.loads(line) for line in text.splitlines() if line.strip()]
    assert events
    for event in events:
        errors = [e.message for e in validator.iter_errors(event)]
        assert not errors, (event, errors)
    return events


@pytest.mark.parametrize(
    "args",
    [
        ["watch", "--demo", "--count", "3", "--format", "ndjson", *FAST],
        ["watch", "--demo", "101", "--run", "--modules", "--format", "ndjson", *FAST],
        ["watch", "--demo", "--team", "1", "--no-follow", "--since", "30m", "--format", "ndjson",
         *FAST],
        ["render", str(SAMPLE), "--format", "ndjson"],
    ],
    ids=["watch", "run-modules", "no-follow", "render"],
)
def test_every_line_a_command_writes_satisfies_the_schema(
    validator: Draft202012Validator, args: list[str]
) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code in (0, 1, 3), result.output
    events = check_lines(validator, result.stdout)
    assert events[-1]["type"] == "stream.closed" or args[0] == "render"


@pytest.mark.anyio
async def test_every_sse_event_satisfies_the_schema(validator: Draft202012Validator) -> None:
    async with sse_server() as srv, srv.http().stream("GET", "/v1/events") as response:
        events = await SseReader(response).until(count_finished(3))
    assert len(events) >= 3
    for event in events:
        errors = [e.message for e in validator.iter_errors(event.data)]
        assert not errors, (event.data, errors)


def test_the_envelope_is_required_and_formats_are_checked(
    validator: Draft202012Validator,
) -> None:
    assert not validator.is_valid({"type": "execution.finished", "status": "success"})
    good = {
        "v": 1, "type": "execution.finished", "seq": 1, "ts": "2026-12-01T10:00:00.000Z",
        "cursor": "c", "scenario_id": 1, "execution_id": "e", "status": "success",
    }
    assert validator.is_valid(good)
    for field in ENVELOPE:
        assert not validator.is_valid({k: v for k, v in good.items() if k != field}), field
    assert not validator.is_valid({**good, "ts": "yesterday"})
    assert not validator.is_valid({**good, "url": "not a uri"})
