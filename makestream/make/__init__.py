"""The Make boundary: the API client, its payload models and the shared request budget.

Nothing outside this package speaks HTTP to Make. `MakeClient` has one typed method per endpoint,
`models` holds tolerant models of Make's JSON, and `Budget` keeps every request of the process
within the organization's per-minute limit.
"""

from makestream.make.auth import ZONES, Token, base_url_for
from makestream.make.budget import Budget, BudgetSnapshot, Priority
from makestream.make.client import ApiNotice, MakeClient, RetryPolicy
from makestream.make.failures import errors_from_response
from makestream.make.models import (
    Blueprint,
    BlueprintModule,
    BlueprintVersion,
    CauseModule,
    Dlq,
    DlqBundleEntry,
    DlqBundleError,
    ExecStatus,
    ExecutionDetail,
    ExecutionFailure,
    ExecutionLog,
    InterfaceField,
    LogPage,
    ModuleLog,
    ModuleLogPage,
    Organization,
    Page,
    Route,
    RunResult,
    Scenario,
    ScenarioInterface,
    Scheduling,
    Team,
    Trigger,
    User,
    parse_imt_id,
)

__all__ = [
    "ZONES",
    "ApiNotice",
    "Blueprint",
    "BlueprintModule",
    "BlueprintVersion",
    "Budget",
    "BudgetSnapshot",
    "CauseModule",
    "Dlq",
    "DlqBundleEntry",
    "DlqBundleError",
    "ExecStatus",
    "ExecutionDetail",
    "ExecutionFailure",
    "ExecutionLog",
    "InterfaceField",
    "LogPage",
    "MakeClient",
    "ModuleLog",
    "ModuleLogPage",
    "Organization",
    "Page",
    "Priority",
    "RetryPolicy",
    "Route",
    "RunResult",
    "Scenario",
    "ScenarioInterface",
    "Scheduling",
    "Team",
    "Token",
    "Trigger",
    "User",
    "base_url_for",
    "errors_from_response",
    "parse_imt_id",
]
