"""The shapes of what the MCP tools return: pydantic models, so that every tool publishes an
output schema and clients get structured content besides the text.

Names and fields are part of makestream's interface (documented in the README and the man
page): add fields, never rename them. Text from Make (names, error messages) is kept as Make
wrote it, cleaned of control characters where the engine cleans it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ExecutionError(_Model):
    """Why a run ended in error (or with warnings), as far as Make says."""

    message: str | None = None
    name: str | None = None
    cause_module: str | None = Field(None, description="The module that failed, app:Name.")
    cause_app: str | None = None


class ModuleRun(_Model):
    """One module's result in one run."""

    module_id: int
    module: str | None = Field(None, description="Make module, app:Name.")
    app: str | None = None
    status: str
    bundles: int | None = None
    size: int | None = None


class FollowUp(_Model):
    """The arguments that continue following a run that had not ended when the call returned."""

    scenario_id: int
    execution_id: str | None = Field(
        None, description="None: no run had begun yet; call again to wait for the next one."
    )


class RunResult(_Model):
    """`stream_live_execution`: how a run ended, or where it stood when the time was up."""

    scenario_id: int
    execution_id: str | None = None
    status: Literal["success", "warning", "error", "running", "waiting"] = Field(
        description="running: the run had not ended within timeout_s; waiting: no run had "
        "begun (call again with `continue_with`)."
    )
    scenario_name: str | None = None
    started_at: str | None = None
    ended_at: str | None = None
    duration_ms: int | None = None
    operations: int | None = None
    transfer_bytes: int | None = None
    centicredits: int | None = None
    credits: float | None = Field(None, description="centicredits / 100.")
    error: ExecutionError | None = None
    url: str | None = Field(None, description="The run in Make's web UI.")
    modules: list[ModuleRun] = Field(default_factory=list, description="Per-module results.")
    percent: float | None = Field(None, description="While running: 0-99, by recent durations.")
    eta_s: float | None = Field(None, description="While running: seconds to the expected end.")
    continue_with: FollowUp | None = Field(
        None, description="Set when the run had not ended: call again with these arguments."
    )
    note: str | None = Field(
        None, description="What the result cannot say otherwise: e.g. that the run this call "
        "asked for may have started although its execution id is unknown."
    )


class InFlight(_Model):
    """A run in flight, as a monitor last saw it."""

    scenario_id: int | None
    execution_id: str
    scenario_name: str | None = None
    started_at: str | None = None
    elapsed_ms: int | None = None
    expected_duration_ms: int | None = None
    percent: float | None = Field(None, description="0-99; None without history.")
    eta_s: float | None = None
    basis: str | None = Field(None, description="What percent and ETA go by: history.")


class FinishedRun(_Model):
    """A run a monitor saw end."""

    scenario_id: int | None
    execution_id: str
    status: Literal["success", "warning", "error"]
    scenario_name: str | None = None
    started_at: str | None = None
    ended_at: str | None = None
    duration_ms: int | None = None
    operations: int | None = None
    centicredits: int | None = None
    error: ExecutionError | None = None
    url: str | None = None


class Alert(_Model):
    """An alert raised (or resolved) by a monitor's thresholds."""

    monitor_id: str
    alert_id: str
    event: Literal["raised", "resolved"]
    rule: str
    severity: Literal["warning", "critical"]
    scenario_id: int | None = None
    value: float | None = None
    threshold: float | None = None
    message: str
    at: str = Field(description="When it was raised or resolved, RFC 3339 UTC.")


class Budget(_Model):
    """The process's one request budget (shared by every tool call and monitor)."""

    limit_per_min: int
    rate_per_min: float
    used_last_minute: int
    remaining: int


class MonitorStarted(_Model):
    """`start_monitoring`."""

    monitor_id: str
    scenario_ids: list[int] = Field(description="The scenarios watched (a team's, with team_id).")
    resource: str = Field(description="The monitor's state resource, with update notifications.")


class MonitorState(_Model):
    """`get_execution_state` and the monitor's resource."""

    monitor_id: str
    status: Literal["starting", "running", "closed"]
    scenario_ids: list[int]
    running: list[InFlight] = Field(description="Runs in flight now, with progress.")
    finished: list[FinishedRun] = Field(
        description="get_execution_state: runs that ended since the last call (each once); the "
        "resource: the most recent runs."
    )
    alerts: list[Alert] = Field(
        description="get_execution_state: alerts raised or resolved since the last call; the "
        "resource: none."
    )
    open_alerts: list[Alert]
    dropped: int = Field(0, description="Runs and alerts not kept since the last call (cap).")
    last_error: str | None = Field(None, description="The latest error of the watch, if any.")
    closed_reason: str | None = None
    budget: Budget


class MonitorStopped(_Model):
    """`stop_monitoring`."""

    monitor_id: str
    stopped: bool
    finished: int = Field(description="Runs the monitor saw end, in all.")
    unread: list[FinishedRun] = Field(
        default_factory=list,
        description="Runs that ended since the last get_execution_state, handed out here so "
        "that none is lost by stopping.")
    unread_alerts: list[Alert] = Field(
        default_factory=list,
        description="Alerts raised or resolved since the last get_execution_state.")
    dropped: int = Field(0, description="Runs and alerts not kept since the last call (cap).")


class AlertList(_Model):
    """`list_alerts`: the alerts open now."""

    alerts: list[Alert]


class ThresholdSet(_Model):
    """`set_alert_thresholds`: what the config file now says for the rule."""

    key: str
    scenario_id: int | None
    path: str = Field(description="The config file written.")
    enabled: bool
    value: float | None
    severity: str
    params: dict[str, float]
    note: str = Field(description="Which monitors the change reaches.")


class FlowNode(_Model):
    """One module in a scenario's flow, with its routes and error handlers."""

    id: int
    module: str = Field(description="app:Name.")
    app: str
    name: str | None = Field(None, description="The name given in Make's designer.")
    filter: str | None = Field(None, description="The filter on the link into this module.")
    routes: list[list[FlowNode]] = Field(default_factory=list, description="A router's routes.")
    on_error: list[FlowNode] = Field(default_factory=list, description="The error handler chain.")
    result: ModuleRun | None = None


class ModuleFlow(_Model):
    """`get_module_flow`: the flow as text (as `makestream flow` draws it) and as structure."""

    scenario_id: int
    name: str
    execution_id: str | None = None
    text: str
    flow: list[FlowNode]
    modules: int


class Run(_Model):
    """A finished run in the state document."""

    execution_id: str
    status: str
    timestamp: str
    duration_ms: int | None = None
    operations: int | None = None
    transfer_bytes: int | None = None
    centicredits: int | None = None


class ScenarioState(_Model):
    """One scenario in the state document (`makestream state`)."""

    scenario_id: int
    name: str | None = None
    team_id: int | None = None
    is_active: bool | None = None
    is_invalid: bool | None = None
    is_paused: bool | None = None
    scheduling: str | None = None
    next_exec: str | None = None
    dlq_count: int | None = None
    queue_count: int | None = None
    running: Run | None = None
    last_executions: list[Run]
    success_rate: float | None = None
    duration_p50_ms: float | None = None
    duration_p95_ms: float | None = None
    sample_size: int


class StateDocument(_Model):
    """`get_scenario_state`: the `makestream state` document."""

    v: int
    generated_at: str
    scenarios: list[ScenarioState]
    budget: Budget

