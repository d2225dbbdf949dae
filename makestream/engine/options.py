"""What shapes a watch and how it ended: the `WatchOptions` a caller builds, the `Outcome` it reads.

Plain data with no behaviour, kept apart so that the CLI and the server can build options without
the machinery of `engine.watch`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from makestream.engine.alerts import AlertEvaluator
from makestream.engine.cursor import Cursor
from makestream.engine.history import HistorySource, RunSource
from makestream.engine.rules import Severity
from makestream.errors import ExitCode


@dataclass
class WatchOptions:
    """Everything that shapes one watch; built by the CLI, usable from Python."""

    scenario_ids: list[int] = field(default_factory=list)
    team_id: int | None = None
    include: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    execution_id: str | None = None
    run: bool = False
    run_data: dict[str, Any] | None = None
    since_ms: int | None = None
    follow: bool = True
    count: int | None = None
    timeout_s: float | None = None
    resume: Cursor | None = None
    interval_s: float = 1.0
    api_limit: int | None = None
    modules: bool = False
    exit_status: bool = False
    heartbeat_s: float = 15.0
    progress_s: float = 2.0
    workers: int = 8
    # A cursor on every event (SSE needs one per frame), or only on events that move the
    # resume position (`watch` output, where most events would repeat the previous one).
    cursor_every_event: bool = True
    snapshot: bool = False  # each scenario's state as scenario.state events, after opened
    blueprints: bool = False  # fetch the targets' blueprints (few targets only) for the view
    alerts: AlertEvaluator | None = None  # thresholds to evaluate; None: no alerting
    fail_on_alert: Severity | None = None  # end with exit 4 once such an alert is raised
    # A consumer that restarts watches (the SSE hub) continues one stream with them: the same
    # stream key in every cursor, and seq going on from where the last watch stopped.
    stream_key: str | None = None
    first_seq: int = 0
    # Past runs known without asking Make (the history store): expected durations and alert
    # baselines come from it first; a scenario it knows needs no log page read to learn them.
    history: HistorySource | None = None
    # Runs known complete for spans of time (the history store): a resumed watch takes what it
    # owes from there before it reads Make's logs, which then need only the rest.
    runs: RunSource | None = None


@dataclass
class Outcome:
    """How the stream ended."""

    reason: str = "running"
    exit_code: ExitCode = ExitCode.OK
    error: str | None = None  # the fatal error's message, when one ended the stream
    summary: dict[str, Any] = field(default_factory=dict)
