"""Events to rows and rows back to events: pure functions, no database.

An event is stored without `seq` and `cursor`, which belong to the stream that carried it; export
numbers the events again. The key of each row is what makes a write idempotent:

- an execution is stored once per execution id, whoever saw it and however often;
- an alert transition once per (type, alert id, execution id), or per minute when it concerns no
  execution — two processes raising the same alert within a minute store it once;
- a scenario change once per (scenario, the flags it reports, minute).

Re-notifications (`renotified: true`) repeat an alert already stored and are not kept.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from makestream.timeutil import epoch_ms

if TYPE_CHECKING:
    from makestream.events import ExecutionFinished, _Event

STORED_TYPES = ("execution.finished", "alert.raised", "alert.resolved", "scenario.changed")
_DROP = ("seq", "cursor")


@dataclass(frozen=True)
class ExecutionRow:
    execution_id: str
    scenario_id: int
    ended_ms: int
    status: str
    duration_ms: int | None
    operations: int | None
    centicredits: int | None
    transfer_bytes: int | None
    scenario_name: str | None
    body: str
    log_ms: int | None = None  # see `events.ExecutionFinished.log_ms`
    zone: str | None = None  # the Make host it ran on


@dataclass(frozen=True)
class CoverageRow:
    """A stream reported every run of a scenario listed in [from_ms, to_ms) (see `replay`)."""

    stream: str
    zone: str
    scenario_id: int
    from_ms: int
    to_ms: int


@dataclass(frozen=True)
class NoteRow:
    key: str
    type: str
    scenario_id: int | None
    ts_ms: int
    alert_id: str | None
    body: str


def _body(event: _Event) -> str:
    data = event.model_dump(mode="json", exclude_none=True)
    for name in _DROP:
        data.pop(name, None)
    return orjson.dumps(data).decode()


def to_row(event: _Event, zone: str | None = None) -> ExecutionRow | NoteRow | None:
    """The row that stores an event (an execution's on Make host `zone`), or None for events the
    store does not keep."""
    from makestream.events import AlertRaised, AlertResolved, ExecutionFinished, ScenarioChanged

    ts_ms = epoch_ms(event.ts) or 0
    if isinstance(event, ExecutionFinished):
        if event.execution_id is None or event.scenario_id is None:
            return None
        return ExecutionRow(
            execution_id=event.execution_id,
            scenario_id=event.scenario_id,
            ended_ms=epoch_ms(event.ended_at) or ts_ms,
            status=event.status,
            duration_ms=event.duration_ms,
            operations=event.operations,
            centicredits=event.centicredits,
            transfer_bytes=event.transfer_bytes,
            scenario_name=event.scenario_name,
            body=_body(event),
            log_ms=event.log_ms,
            zone=zone,
        )
    if isinstance(event, AlertRaised | AlertResolved):
        extra = event.model_extra or {}
        if extra.get("renotified"):
            return None
        subject = event.execution_id or f"m{ts_ms // 60_000}"
        return NoteRow(
            key=f"{event.type}|{event.alert_id}|{subject}",
            type=event.type,
            scenario_id=event.scenario_id,
            ts_ms=ts_ms,
            alert_id=event.alert_id,
            body=_body(event),
        )
    if isinstance(event, ScenarioChanged):
        flags = orjson.dumps(
            [event.is_active, event.is_invalid, event.is_paused, event.dlq_count,
             event.queue_count, sorted(event.changed)]
        )
        digest = hashlib.blake2b(flags, digest_size=8).hexdigest()
        return NoteRow(
            key=f"{event.type}|{event.scenario_id}|{digest}|m{ts_ms // 60_000}",
            type=event.type,
            scenario_id=event.scenario_id,
            ts_ms=ts_ms,
            alert_id=None,
            body=_body(event),
        )
    return None


def finished_from(body: str) -> ExecutionFinished:
    """The `execution.finished` event a stored execution row keeps (without seq and cursor)."""
    from makestream.events import ExecutionFinished

    return ExecutionFinished.model_validate_json(body)


def to_event(body: str, seq: int) -> dict[str, Any]:
    """A stored event as a stream would carry it, numbered `seq`; its cursor is empty, since no
    stream it could resume exists."""
    data: dict[str, Any] = orjson.loads(body)
    data["seq"] = seq
    data["cursor"] = ""
    return data
