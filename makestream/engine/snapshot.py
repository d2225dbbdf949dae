"""`watch --snapshot`: each scenario as it stands, as `scenario.state` events before following.

`kubectl get -w` starts with the current state and then streams changes; a watch with
`--snapshot` does the same. `scenario_snapshot` is pure (a scenario, a page of its logs and its
queue depth in, one event out); `read_snapshot` spends the requests: one page of logs per
scenario, and one queue read per webhook scenario.
"""

from __future__ import annotations

from collections.abc import Sequence

from makestream.engine.history import History
from makestream.engine.tracker import Tracker
from makestream.events import LastRun, ScenarioState, rfc3339
from makestream.make.budget import Priority
from makestream.make.client import MakeClient
from makestream.make.models import ExecStatus, ExecutionLog, Scenario

SNAPSHOT_LOGS = 50  # one page: the runs the figures rest on


def scenario_snapshot(
    scenario: Scenario,
    logs: Sequence[ExecutionLog],
    *,
    queue_count: int | None,
    tracker: Tracker,
) -> ScenarioState:
    """One scenario's state event; run times follow what the tracker knows of log timestamps."""
    finished = sorted((e for e in logs if e.status.terminal), key=lambda e: e.timestamp_ms)
    history = History(size=max(1, len(finished)),
                      durations=[e.duration_ms for e in finished if e.duration_ms is not None])
    last = None
    if finished:
        entry = finished[-1]
        begun, _ = tracker.run_times(entry, None)
        last = LastRun(
            execution_id=entry.id,
            status=_status(entry.status),
            started_at=rfc3339(begun) if begun is not None else None,
            duration_ms=entry.duration_ms,
        )
    ok = sum(1 for e in finished if e.status is not ExecStatus.ERROR)
    return ScenarioState(
        scenario_id=scenario.id,
        scenario_name=scenario.name,
        team_id=scenario.team_id,
        is_active=scenario.is_active,
        is_invalid=scenario.is_invalid,
        is_paused=scenario.is_paused,
        scheduling=scenario.scheduling.type if scenario.scheduling else None,
        next_exec=rfc3339(scenario.next_exec.timestamp()) if scenario.next_exec else None,
        dlq_count=scenario.dlq_count,
        queue_count=queue_count,
        last_run=last,
        success_rate=round(ok / len(finished), 4) if finished else None,
        sample_size=len(finished),
        expected_duration_ms=history.expected_ms,
    )


def _status(status: ExecStatus) -> str:
    if status is ExecStatus.SUCCESS:
        return "success"
    if status is ExecStatus.WARNING:
        return "warning"
    return "error"


async def read_snapshot(
    client: MakeClient, scenarios: Sequence[Scenario], tracker: Tracker
) -> list[ScenarioState]:
    """Ask Make for what each scenario's state event needs."""
    events: list[ScenarioState] = []
    readable = True  # once Make refuses a queue depth, the others are not asked for
    for scenario in scenarios:
        page = await client.logs(scenario.id, limit=SNAPSHOT_LOGS, priority=Priority.NORMAL)
        queue = None
        if scenario.hook_id is not None and readable:
            queue = await client.queue_depth(scenario.id, priority=Priority.NORMAL)
            readable = queue is not None
        events.append(scenario_snapshot(scenario, page.items, queue_count=queue, tracker=tracker))
    return events
