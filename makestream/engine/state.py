"""A point-in-time document about scenarios: flags, recent runs, rates and durations.

`makestream state` prints it and the SSE server's `/v1/state` serves it. `build_state` is pure;
`fetch_state` spends a few requests per scenario (the scenario, one page of logs, and the
webhook queue for scenarios that have a hook).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from makestream.engine.history import History
from makestream.events import rfc3339
from makestream.make.budget import BudgetSnapshot, Priority
from makestream.make.client import MakeClient
from makestream.make.models import ExecStatus, ExecutionLog, Scenario


def _run(entry: ExecutionLog) -> dict[str, Any]:
    return {
        "execution_id": entry.id,
        "status": entry.status.value,
        "timestamp": rfc3339(entry.timestamp_ms / 1000),
        "duration_ms": entry.duration_ms,
        "operations": entry.operations,
        "transfer_bytes": entry.transfer,
        "centicredits": entry.centicredits,
    }


def scenario_state(
    scenario: Scenario, logs: Sequence[ExecutionLog], *, queue_count: int | None, last: int
) -> dict[str, Any]:
    """One scenario's entry in the state document."""
    newest = sorted(logs, key=lambda e: e.timestamp_ms, reverse=True)
    finished = [e for e in newest if e.status.terminal]
    running = [e for e in newest if e.status in (ExecStatus.RUNNING, ExecStatus.PAUSED)]
    history = History(
        size=max(1, len(finished)),
        durations=[e.duration_ms for e in finished if e.duration_ms is not None],
    )
    ok = sum(1 for e in finished if e.status is not ExecStatus.ERROR)
    return {
        "scenario_id": scenario.id,
        "name": scenario.name,
        "team_id": scenario.team_id,
        "is_active": scenario.is_active,
        "is_invalid": scenario.is_invalid,
        "is_paused": scenario.is_paused,
        "scheduling": scenario.scheduling.type if scenario.scheduling else None,
        "next_exec": rfc3339(scenario.next_exec.timestamp()) if scenario.next_exec else None,
        "dlq_count": scenario.dlq_count,
        "queue_count": queue_count,
        "running": _run(running[0]) if running else None,
        "last_executions": [_run(e) for e in finished[:last]],
        "success_rate": round(ok / len(finished), 4) if finished else None,
        "duration_p50_ms": history.percentile(50),
        "duration_p95_ms": history.percentile(95),
        "sample_size": len(finished),
    }


def build_state(
    scenarios: Sequence[Scenario],
    logs: Mapping[int, Sequence[ExecutionLog]],
    queues: Mapping[int, int | None],
    budget: BudgetSnapshot,
    *,
    now: float,
    last: int = 10,
) -> dict[str, Any]:
    """The whole document."""
    return {
        "v": 1,
        "generated_at": rfc3339(now),
        "scenarios": [
            scenario_state(s, logs.get(s.id, ()), queue_count=queues.get(s.id), last=last)
            for s in scenarios
        ],
        "budget": {
            "limit_per_min": budget.limit_per_min,
            "rate_per_min": round(budget.rate_per_min, 2),
            "used_last_minute": budget.used_last_minute,
            "remaining": budget.remaining,
        },
    }


async def fetch_state(
    client: MakeClient,
    *,
    scenario_ids: Sequence[int] = (),
    team_id: int | None = None,
    last: int = 10,
) -> dict[str, Any]:
    """Ask Make for everything `build_state` needs."""
    scenarios: list[Scenario] = []
    if team_id is not None:
        scenarios = await client.scenarios(team_id=team_id)
    for sid in scenario_ids:
        if not any(s.id == sid for s in scenarios):
            scenarios.append(await client.scenario(sid))
    logs: dict[int, Sequence[ExecutionLog]] = {}
    queues: dict[int, int | None] = {}
    readable = True  # once Make refuses a queue depth, the others are not asked for
    for scenario in scenarios:
        page = await client.logs(scenario.id, limit=max(last, 50), priority=Priority.NORMAL)
        logs[scenario.id] = page.items
        if scenario.hook_id is not None and readable:
            queues[scenario.id] = await client.queue_depth(scenario.id)
            readable = queues[scenario.id] is not None
    return build_state(
        scenarios, logs, queues, client.budget.snapshot(), now=client.clock.now(), last=last
    )


def latest_outcome(document: Mapping[str, Any]) -> str | None:
    """The status of the most recent finished execution across the document."""
    newest: tuple[str, str] | None = None
    for scenario in document["scenarios"]:
        for run in scenario["last_executions"][:1]:
            if newest is None or run["timestamp"] > newest[0]:
                newest = (run["timestamp"], run["status"])
    return newest[1] if newest else None
