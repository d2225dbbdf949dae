"""The NDJSON event contract: encoding, decoding, the reader's errors, and the JSON Schema."""

from __future__ import annotations

import io

import orjson
import pytest

from makestream.errors import UsageError
from makestream.events import (
    EVENT_TYPES,
    KNOWN_TYPES,
    AlertRaised,
    ExecutionFinished,
    StreamOpened,
    decode,
    encode,
    json_schema,
    read_ndjson,
    rfc3339,
    write_line,
)


def test_encode_is_one_flat_line_with_type_first_after_version() -> None:
    line = encode(ExecutionFinished(status="error", scenario_id=5, execution_id="e1", seq=3))
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    data = orjson.loads(line)
    assert list(data)[:3] == ["v", "type", "seq"]
    assert data["type"] == "execution.finished" and data["status"] == "error"
    assert "error" not in data  # unset optional fields are left out


def test_round_trip_of_every_type() -> None:
    samples = {
        "stream.opened": {"api_limit": 60, "budget_per_min": 48, "version": "x"},
        "execution.started": {"source": "run", "started_at": rfc3339(0)},
        "execution.expected": {"due_at": rfc3339(0)},
        "execution.progress": {"elapsed_ms": 1},
        "execution.finished": {"status": "success"},
        "module.result": {"module_id": 1, "status": "success"},
        "scenario.changed": {},
        "scenario.state": {"last_run": {"execution_id": "e", "status": "success"}},
        "alert.raised": {"alert_id": "a", "rule": "r", "severity": "warning", "message": "m"},
        "alert.resolved": {"alert_id": "a", "rule": "r", "severity": "warning", "message": "m"},
        "api.throttled": {"retry_in_s": 1},
        "stream.error": {"message": "m"},
        "stream.heartbeat": {},
        "stream.lagged": {"message": "m"},
        "stream.closed": {"reason": "r", "exit_code": 0},
    }
    assert set(samples) == KNOWN_TYPES == {t.model_fields["type"].default for t in EVENT_TYPES}
    for kind, fields in samples.items():
        event = decode(orjson.dumps({"v": 1, "type": kind, "seq": 1, **fields}))
        assert event.type == kind
        assert decode(encode(event)) == event


def test_extra_fields_survive_a_round_trip() -> None:
    event = decode(b'{"type":"stream.heartbeat","future_field":[1,2]}')
    assert orjson.loads(encode(event))["future_field"] == [1, 2]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b"{not json", "not JSON"),
        (b"[1,2]", "not a JSON object"),
        (b'{"type":"execution.finished","status":"maybe"}', "status"),
        (b'{"type":"alert.raised"}', "alert_id"),
    ],
)
def test_reader_names_source_line_and_problem(line: bytes, message: str) -> None:
    lines = [encode(StreamOpened(api_limit=1, budget_per_min=1, version="x")), b"", line]
    with pytest.raises(UsageError) as info:
        list(read_ndjson(lines, source="run.ndjson"))
    text = str(info.value)
    assert text.startswith("run.ndjson:3: invalid event: ")
    assert message in text


def test_reader_skips_invalid_lines_and_unknown_types_when_asked() -> None:
    good = encode(AlertRaised(alert_id="a", rule="r", severity="critical", message="m"))
    lines = [good, b"garbage", b'{"type":"brand.new"}', good]
    assert len(list(read_ndjson(lines, skip_invalid=True))) == 2
    # Unknown types are skipped even without --skip-invalid: the contract says to ignore them.
    assert len(list(read_ndjson([good, b'{"type":"brand.new"}']))) == 1


def test_write_line_flushes_each_event() -> None:
    class Counting(io.BytesIO):
        flushes = 0

        def flush(self) -> None:
            self.flushes += 1

    out = Counting()
    write_line(out, StreamOpened(api_limit=1, budget_per_min=1, version="x"))
    assert out.flushes == 1


def test_json_schema_covers_every_type() -> None:
    schema = json_schema()
    mapping = schema["discriminator"]["mapping"]
    assert set(mapping) == KNOWN_TYPES


def test_rfc3339_is_utc_with_milliseconds() -> None:
    assert rfc3339(1_790_000_000.5) == "2026-09-21T14:13:20.500Z"
