"""One scenario run, decided in advance: which modules run, how long it takes, how it ends.

A run is drawn from the scenario's profile with its own seeded RNG, so the same seed always gives
the same run regardless of when (or whether) anybody asks about it. Make's semantics that shape
the result:

- a filter that does not pass stops its route; a router runs its routes in order;
- an error stops the run unless the failing module has an error-handling route (`onerror`), which
  then runs. The route's directive decides the outcome: Ignore, Resume and Commit end in success,
  Break in a warning plus an incomplete execution, Rollback (or no handler) in an error;
- an unhandled error also stores an incomplete execution when the blueprint allows it (`dlq`);
- the trigger costs one operation, every other module one per bundle, built-ins (routers,
  directives) none; one credit (100 centicredits) per operation.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import Any

from makestream.sim.blueprint import (
    DIRECTIVES,
    Node,
    app_name,
    is_builtin,
    module_label,
    scenario_settings,
)
from makestream.sim.world import ScenarioSpec

# Outcome names, as TruthRecord.status spells them, and Make's numeric log status for each.
LOG_STATUS = {"success": 1, "warning": 2, "error": 3}
DETAIL_STATUS = {"success": "SUCCESS", "warning": "WARNING", "error": "ERROR"}

# Per-app error a failing module reports: (error name, message).
_APP_ERRORS = {
    "http": ("ConnectionError", "The remote server answered 502 Bad Gateway."),
    "slack": ("RateLimitError", "Slack API rate limit exceeded (ratelimited)."),
    "google-sheets": ("DataError", "Unable to parse range: Sheet1!A2:F."),
    "json": ("BundleValidationError", "Source is not valid JSON."),
    "csv": ("DataError", "Row 17 has 6 columns, expected 5."),
    "airtable": ("InvalidConfigurationError", "Field 'Price' cannot accept the provided value."),
    "clearbit": ("ConnectionError", "Clearbit did not answer within 40 seconds."),
    "hubspotcrm": ("RateLimitError", "You have reached your secondly limit."),
}
_DEFAULT_ERROR = ("RuntimeError", "An error occurred while executing the module.")
_WARNING = ("DataWarning", "A field was empty; the bundle was processed with default values.")
_MIN_DURATION_MS = 200


@dataclass
class ModuleRun:
    """One module's part in a run: what its module log entry reports."""

    module_id: int
    module: str
    status: int  # 1 success, 2 warning, 3 error (Make's numeric status)
    bundles: int
    size: int
    warning: dict[str, Any] | None = None
    error: dict[str, Any] | None = None


@dataclass
class RunPlan:
    """Everything about a run that does not depend on when it starts."""

    status: str  # "success" | "warning" | "error"
    duration_ms: int
    operations: int
    transfer: int
    modules: list[ModuleRun] = field(default_factory=list)
    # Make's `error` object for /executions/{id}: {name, message, causeModule{name, appName}}.
    error: dict[str, Any] | None = None
    outputs: dict[str, Any] | None = None
    dlq_reason: str | None = None  # set when the run stored an incomplete execution

    @property
    def centicredits(self) -> int:
        return self.operations * 100


def plan_run(spec: ScenarioSpec, rng: random.Random, data: dict[str, Any] | None = None) -> RunPlan:
    """Draw one run of `spec` from `rng`."""
    profile = spec.profile
    flow: list[Node] = spec.blueprint["flow"]
    path: list[Node] = []
    _walk(flow, rng, profile.filter_pass_rate, path)

    roll = rng.random()
    outcome = "error" if roll < profile.error_rate else (
        "warning" if roll < profile.error_rate + profile.warning_rate else "success")
    bundles = max(1, round(rng.gauss(profile.bundles, profile.bundles / 4)))
    total_transfer = max(0, round(rng.gauss(profile.transfer, profile.transfer / 5)))
    duration = rng.gauss(profile.duration_mean, profile.duration_stddev)
    duration = max(_MIN_DURATION_MS / 1000, duration)

    # Transfer is shared evenly by the non-built-in modules the run would pass through.
    paying = [node for node in path if not is_builtin(node)] or path
    share = total_transfer // len(paying)

    target = _pick_target(path, profile.failing_module, rng) if outcome != "success" else None
    status = outcome
    error: dict[str, Any] | None = None
    dlq_reason: str | None = None
    ran: list[tuple[Node, int, dict[str, Any] | None, dict[str, Any] | None]] = []

    if target is None:
        ran = [(node, 1, None, None) for node in path]
    elif outcome == "warning":
        warning = _problem(target, _WARNING)
        ran = [(node, 2 if node is target else 1, warning if node is target else None, None)
               for node in path]
        error = warning
    else:
        index = path.index(target)
        failure = _problem(target, _APP_ERRORS.get(app_name(target["module"]), _DEFAULT_ERROR))
        ran = [(node, 1, None, None) for node in path[:index]]
        ran.append((target, 3, None, failure))
        handler: list[Node] = target.get("onerror") or []
        last = handler[-1]["module"] if handler else None
        directive = last if last in DIRECTIVES else None
        ran.extend((node, 1, None, None) for node in _flatten(handler))
        if handler and directive in (None, "builtin:Ignore", "builtin:Commit"):
            # A handled error: the run succeeds, the failing bundle goes no further.
            status = "success"
        elif directive == "builtin:Resume":
            status = "success"
            ran.extend((node, 1, None, None) for node in path[index + 1:])
        elif directive == "builtin:Break":
            status, error, dlq_reason = "warning", failure, failure["message"]
        else:
            status, error = "error", failure
            if scenario_settings(spec.blueprint).get("dlq"):
                dlq_reason = failure["message"]
        if directive != "builtin:Resume":
            # The run stops at the failing module, so it takes only part of its usual time.
            duration *= max(0.2, (index + 1) / len(path))

    modules: list[ModuleRun] = []
    operations = 0
    for position, (node, module_status, warning_obj, error_obj) in enumerate(ran):
        # The trigger outputs the run's bundles for one operation; later modules pay per bundle.
        cost = 0 if is_builtin(node) else (1 if position == 0 else bundles)
        operations += cost
        modules.append(ModuleRun(
            module_id=node["id"],
            module=node["module"],
            status=module_status,
            bundles=bundles,
            size=0 if is_builtin(node) else share,
            warning=warning_obj,
            error=error_obj,
        ))
    outputs = _outputs(spec, data) if status != "error" else None
    return RunPlan(
        status=status,
        duration_ms=max(_MIN_DURATION_MS, round(duration * 1000)),
        operations=operations,
        transfer=sum(m.size for m in modules),
        modules=modules,
        error=error,
        outputs=outputs,
        dlq_reason=dlq_reason,
    )


def _walk(flow: list[Node], rng: random.Random, pass_rate: float, out: list[Node]) -> None:
    """Append the modules a run passes through, in Make's execution order."""
    for node in flow:
        if node.get("filter") and rng.random() >= pass_rate:
            return
        out.append(node)
        for route in node.get("routes") or []:
            _walk(route.get("flow") or [], rng, pass_rate, out)


def _flatten(flow: list[Node]) -> list[Node]:
    """Error-handling routes run whole: their modules in order, routes included."""
    out: list[Node] = []
    _walk(flow, random.Random(0), 1.0, out)
    return out


def _pick_target(path: list[Node], failing: int | None, rng: random.Random) -> Node:
    for node in path:
        if node["id"] == failing:
            return node
    candidates = [node for node in path[1:] if not is_builtin(node)] or path
    return rng.choice(candidates)


def _problem(node: Node, kind: tuple[str, str]) -> dict[str, Any]:
    name, message = kind
    return {
        "name": name,
        "message": message,
        "causeModule": {"name": module_label(node), "appName": app_name(node["module"])},
    }


_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")


def _outputs(spec: ScenarioSpec, data: dict[str, Any] | None) -> dict[str, Any] | None:
    if spec.outputs is None:
        return None
    values = {item.name: item.default for item in spec.inputs}
    values.update(data or {})

    def fill(value: Any) -> Any:
        if isinstance(value, str):
            return _PLACEHOLDER.sub(lambda m: str(values.get(m.group(1), "")), value)
        return value

    return {key: fill(value) for key, value in spec.outputs.items()}
