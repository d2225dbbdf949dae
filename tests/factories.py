"""Builders for Make payload models used across tests."""

from __future__ import annotations

import itertools
from typing import Any

from makestream.events import rfc3339
from makestream.make.models import ExecutionDetail, ExecutionLog, Scenario

_ids = itertools.count(1)


def log_entry(
    scenario_id: int = 1,
    *,
    ts_ms: int = 1_790_000_000_000,
    status: int | str = 1,
    duration: int = 5000,
    execution_id: str | None = None,
    operations: int = 3,
    **extra: Any,
) -> ExecutionLog:
    eid = execution_id or f"{next(_ids):032x}"
    return ExecutionLog.model_validate(
        {
            "imtId": f"{ts_ms}_scenario.{scenario_id}.auto.{eid}",
            "id": eid,
            "timestamp": rfc3339(ts_ms / 1000),
            "duration": duration,
            "operations": operations,
            "centicredits": operations * 100,
            "transfer": 100,
            "organizationId": 1,
            "teamId": 7,
            "type": "auto",
            "status": status,
            **extra,
        }
    )


def detail(status: str = "ERROR", message: str = "boom", module: str = "HTTP") -> ExecutionDetail:
    body: dict[str, Any] = {"status": status}
    if status in ("ERROR", "WARNING"):
        body["error"] = {
            "name": "RuntimeError",
            "message": message,
            "causeModule": {"name": module, "appName": "http"},
        }
    return ExecutionDetail.model_validate(body)


def scenario(sid: int = 1, **fields: Any) -> Scenario:
    body = {
        "id": sid,
        "name": f"Scenario {sid}",
        "teamId": 7,
        "isActive": True,
        "isinvalid": False,
        "isPaused": False,
        "dlqCount": 0,
        "operations": 0,
        "transfer": 0,
    }
    body.update(fields)
    return Scenario.model_validate(body)
