"""The alert rules makestream knows, their defaults, and the thresholds in effect per scenario.

Every rule has one key; the key is also the `rule` of the alerts it raises and the name used in
the config file and by `makestream thresholds`. A rule's threshold is a `value` (absent for the
flag rules), a `severity`, an `enabled` switch and, for a few rules, extra parameters:

=======================  ==========  ========  =====  =============================================
key                      default     severity  on     fires when
=======================  ==========  ========  =====  =============================================
duration_max_s           (none)      critical  no     a run took longer than value seconds
duration_p95_factor      2.0         warning   yes    a run took longer than value x the p95 of the
                                                      scenario's earlier runs (min_samples=20)
operations_max           (none)      warning   no     a run used more than value operations
transfer_max_bytes       (none)      warning   no     a run transferred more than value bytes
centicredits_max         (none)      warning   no     a run cost more than value centicredits
error_rate               0.5         warning   yes    the share of failed runs in the window is at
                                                      least value (window_runs=20, window_s=0 = no
                                                      time limit, min_runs=5)
warning_rate             0.5         warning   yes    the same for runs that ended with warnings
consecutive_failures     3           critical  yes    value runs in a row failed
stuck_factor             3.0         warning   yes    a run is still RUNNING value x the p95 of
                                                      recent runs after it began, and at least
                                                      min_s=300 s (fallback_s=2700 s while fewer
                                                      than min_samples=5 runs are known)
missed_schedule_grace_s  300         warning   yes    no run came within value seconds after the
                                                      schedule expected one (nextExec, or the
                                                      `indefinitely` interval after the last run)
scenario_invalid         -           critical  yes    Make deactivated the scenario after errors
scenario_paused          -           warning   yes    the scenario is paused (subscription problem)
dlq_growth               1           warning   yes    the incomplete executions (DLQ) grew by at
                                                      least value since the lowest count seen
queue_max                1000        warning   yes    the webhook queue holds more than value items
budget_usage             0.9         warning   yes    makestream used at least value of the
                                                      organization's per-minute request limit (it
                                                      keeps to 0.8 of it unless told otherwise)
=======================  ==========  ========  =====  =============================================

Thresholds merge field by field: built-in defaults, then the config file's `[thresholds]`, then
its `[scenarios.ID.thresholds]`. Setting a value turns a rule on unless `enabled` says otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

Severity = Literal["warning", "critical"]
SEVERITIES: tuple[Severity, ...] = ("warning", "critical")
Source = Literal["default", "config", "scenario"]


@dataclass(frozen=True)
class ParamSpec:
    """An extra parameter of a rule (a window size, a minimum sample)."""

    default: float
    help: str
    integer: bool = True
    minimum: float = 1  # inclusive
    unit: str = ""


@dataclass(frozen=True)
class RuleSpec:
    """One rule: what it watches, its value's meaning and bounds, and its defaults."""

    key: str
    summary: str
    unit: str
    default_severity: Severity
    enabled: bool
    default_value: float | None = None  # None: the rule needs a value before it can be turned on
    has_value: bool = True  # False for the flag rules
    integer: bool = False
    minimum: float = 0.0
    exclusive_minimum: bool = True
    maximum: float | None = None
    params: Mapping[str, ParamSpec] = field(default_factory=dict)

    @property
    def seconds(self) -> bool:
        """Whether the value is a duration (so `10m` can be typed for it)."""
        return self.unit == "s"


_RATE_PARAMS = {
    "window_runs": ParamSpec(20, "how many recent runs the rate looks at (at most 1000)"),
    "window_s": ParamSpec(
        0,
        "only runs that ended this recently count (0: no time limit)",
        integer=False,
        minimum=0,
        unit="s",
    ),
    "min_runs": ParamSpec(5, "runs needed in the window before the rule can fire"),
}

RULES: Mapping[str, RuleSpec] = MappingProxyType(
    {
        spec.key: spec
        for spec in (
            RuleSpec("duration_max_s", "run duration above value seconds", "s", "critical", False),
            RuleSpec(
                "duration_p95_factor",
                "run duration above value x the p95 of earlier runs",
                "x",
                "warning",
                True,
                2.0,
                minimum=1.0,
                params={
                    "min_samples": ParamSpec(20, "earlier runs needed before the rule can fire")
                },
            ),
            RuleSpec(
                "operations_max",
                "operations per run above value",
                "operations",
                "warning",
                False,
                integer=True,
            ),
            RuleSpec(
                "transfer_max_bytes",
                "data transfer per run above value bytes",
                "bytes",
                "warning",
                False,
                integer=True,
            ),
            RuleSpec(
                "centicredits_max",
                "centicredits per run above value",
                "centicredits",
                "warning",
                False,
                integer=True,
            ),
            RuleSpec(
                "error_rate",
                "share of failed runs in the window at least value",
                "ratio",
                "warning",
                True,
                0.5,
                maximum=1.0,
                params=_RATE_PARAMS,
            ),
            RuleSpec(
                "warning_rate",
                "share of runs with warnings in the window at least value",
                "ratio",
                "warning",
                True,
                0.5,
                maximum=1.0,
                params=_RATE_PARAMS,
            ),
            RuleSpec(
                "consecutive_failures",
                "value failed runs in a row",
                "runs",
                "critical",
                True,
                3,
                integer=True,
            ),
            RuleSpec(
                "stuck_factor",
                "a run still RUNNING after value x the p95 duration",
                "x",
                "warning",
                True,
                3.0,
                minimum=1.0,
                params={
                    "min_samples": ParamSpec(5, "runs needed to trust the p95"),
                    "min_s": ParamSpec(
                        300,
                        "never call a run stuck before this",
                        integer=False,
                        minimum=0,
                        unit="s",
                    ),
                    "fallback_s": ParamSpec(
                        2700, "the limit while the p95 is not trusted", integer=False, unit="s"
                    ),
                },
            ),
            RuleSpec(
                "missed_schedule_grace_s",
                "no run within value seconds after one was due",
                "s",
                "warning",
                True,
                300,
                exclusive_minimum=False,
            ),
            RuleSpec(
                "scenario_invalid",
                "the scenario was deactivated by errors",
                "",
                "critical",
                True,
                has_value=False,
            ),
            RuleSpec(
                "scenario_paused", "the scenario is paused", "", "warning", True, has_value=False
            ),
            RuleSpec(
                "dlq_growth",
                "incomplete executions grew by at least value",
                "executions",
                "warning",
                True,
                1,
                integer=True,
            ),
            RuleSpec(
                "queue_max",
                "webhook queue above value items",
                "items",
                "warning",
                True,
                1000,
                integer=True,
                exclusive_minimum=False,
            ),
            RuleSpec(
                "budget_usage",
                "share of the organization's request limit used in the last minute",
                "ratio",
                "warning",
                True,
                0.9,
                maximum=1.0,
            ),
        )
    }
)


@dataclass(frozen=True)
class Override:
    """What one table of the config file says about one rule; None leaves a field inherited."""

    value: float | None = None
    severity: Severity | None = None
    enabled: bool | None = None
    params: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Threshold:
    """A rule's threshold in effect for one scenario (or for the organization)."""

    key: str
    value: float | None
    severity: Severity
    enabled: bool
    params: Mapping[str, float]
    source: Source  # where the last override came from

    def param(self, name: str) -> float:
        return self.params[name]

    @property
    def active(self) -> bool:
        """Enabled, with a value when the rule needs one."""
        spec = RULES[self.key]
        return self.enabled and (self.value is not None or not spec.has_value)


def _merge(base: Threshold, override: Override | None, source: Source) -> Threshold:
    if override is None:
        return base
    enabled = override.enabled
    if enabled is None:
        # Setting a value means the rule is wanted; an explicit `enabled` still wins.
        enabled = True if override.value is not None else base.enabled
    return Threshold(
        key=base.key,
        value=override.value if override.value is not None else base.value,
        severity=override.severity or base.severity,
        enabled=enabled,
        params={**base.params, **override.params},
        source=source,
    )


def builtin(key: str) -> Threshold:
    """A rule's threshold before any configuration."""
    spec = RULES[key]
    return Threshold(
        key,
        spec.default_value,
        spec.default_severity,
        spec.enabled,
        {name: p.default for name, p in spec.params.items()},
        "default",
    )


@dataclass(frozen=True)
class EffectiveThresholds:
    """Thresholds of every rule for every scenario: defaults plus per-scenario overrides.

    `renotify_s` (None: never) is how often an alert that stays active is raised again.
    """

    defaults: Mapping[str, Override] = field(default_factory=dict)
    scenarios: Mapping[int, Mapping[str, Override]] = field(default_factory=dict)
    renotify_s: float | None = None
    # The evaluator asks for every rule of every scenario on each tick; merge each pair once.
    _cache: dict[tuple[str, int | None], Threshold] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def threshold(self, key: str, scenario_id: int | None = None) -> Threshold:
        cached = self._cache.get((key, scenario_id))
        if cached is not None:
            return cached
        merged = _merge(builtin(key), self.defaults.get(key), "config")
        if scenario_id is not None:
            merged = _merge(merged, self.scenarios.get(scenario_id, {}).get(key), "scenario")
        self._cache[(key, scenario_id)] = merged
        return merged

    def get(self, key: str, scenario_id: int | None = None) -> Threshold | None:
        """The threshold when the rule is on for this scenario, else None."""
        threshold = self.threshold(key, scenario_id)
        return threshold if threshold.active else None

    def for_scenario(self, scenario_id: int | None = None) -> dict[str, Threshold]:
        """Every rule's threshold for one scenario (None: the defaults), in catalog order."""
        return {key: self.threshold(key, scenario_id) for key in RULES}
