"""The JSON bodies the simulated zone answers with, in Make's documented shapes (make-api.md §2).

Field sets follow Make's own example payloads (make-fixtures/): every key of the fixture is present,
with the same types. Timestamps are ISO-8601 UTC with milliseconds and a `Z`.
"""

from __future__ import annotations

import random
import string
from datetime import UTC, datetime
from typing import Any

from makestream.sim.blueprint import iter_modules, used_packages
from makestream.sim.runs import DETAIL_STATUS, LOG_STATUS, ModuleRun
from makestream.sim.world import OrganizationSpec, ScenarioSpec, TeamSpec, UserSpec, WorldSpec
from makestream.sim.zone import DlqItem, Execution, ScenarioState

Json = dict[str, Any]


def iso(ms: int) -> str:
    """Epoch milliseconds as Make writes them: `2021-09-23T04:35:44.497Z`."""
    seconds, millis = divmod(ms, 1000)
    stamp = datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{millis:03d}Z"


def error_body(detail: str, message: str, code: str, **extra: Any) -> Json:
    """Make's one error schema: `{"detail","message","code"}` (+ `suberrors` and the like)."""
    return {"detail": detail, "message": message, "code": code, **extra}


def _user_ref(user: UserSpec) -> Json:
    return {"id": user.id, "name": user.name, "email": user.email}


def hook_id(spec: ScenarioSpec) -> int | None:
    if spec.webhook is None:
        return None
    return spec.webhook.hook_id if spec.webhook.hook_id is not None else 10_000 + spec.id


def scenario(state: ScenarioState, user: UserSpec) -> Json:
    """One item of `scenarios` (list) or the `scenario` object (get)."""
    spec = state.spec
    next_exec = state.next_exec_ms if state.accepting else None
    return {
        "id": spec.id,
        "name": spec.name,
        "teamId": spec.team_id,
        "hookId": hook_id(spec),
        "deviceId": None,
        "deviceScope": None,
        "concept": False,
        "description": spec.description,
        "folderId": spec.folder_id,
        "isinvalid": state.invalid,
        "islinked": state.is_active,
        "isActive": state.is_active,
        "islocked": False,
        "isPaused": spec.is_paused,
        "usedPackages": used_packages(spec.blueprint),
        "lastEdit": spec.last_edit,
        "scheduling": dict(spec.scheduling),
        "iswaiting": False,
        "dlqCount": len(state.dlqs),
        "createdByUser": _user_ref(user),
        "updatedByUser": _user_ref(user),
        "nextExec": iso(next_exec) if next_exec is not None else None,
        "created": spec.created,
        "operations": state.operations,
        "transfer": state.transfer,
        "customProperties": dict(spec.custom_properties),
    }


def scenario_log(execution: Execution, organization_id: int) -> Json:
    """One entry of `scenarioLogs`, or the `scenarioLog` object."""
    plan = execution.plan
    return {
        "imtId": execution.imt_id,
        "duration": execution.end_ms - execution.start_ms,
        "operations": plan.operations,
        "centicredits": plan.centicredits,
        "transfer": plan.transfer,
        "organizationId": organization_id,
        "teamId": execution.team_id,
        "id": execution.id,
        "type": execution.kind,
        "authorId": execution.author_id,
        "instant": execution.instant,
        "timestamp": iso(execution.log_ms),
        "status": LOG_STATUS[execution.status],
    }


def running_log(execution: Execution, organization_id: int, now_ms: int) -> Json:
    """A `scenarioLogs` entry for a run still in flight: status 0, figures so far."""
    body = scenario_log(execution, organization_id)
    body.update(status=0, duration=max(0, now_ms - execution.start_ms), operations=0,
                centicredits=0, transfer=0, timestamp=iso(execution.start_ms))
    return body


def module_log(execution: Execution, run: ModuleRun, organization_id: int) -> Json:
    """One entry of `moduleLogs`; `warning`/`error` are `{}` when there is none."""
    return {
        "imtId": execution.imt_id,
        "executionId": execution.id,
        "organizationId": organization_id,
        "teamId": execution.team_id,
        "scenarioId": execution.scenario_id,
        "timestamp": iso(execution.log_ms),
        "status": run.status,
        "bundles": run.bundles,
        "size": run.size,
        "warning": dict(run.warning or {}),
        "error": dict(run.error or {}),
    }


def execution_detail(execution: Execution, now_ms: int) -> Json:
    """`GET /scenarios/{id}/executions/{executionId}`: RUNNING until the run ends."""
    if now_ms < execution.end_ms:
        return {"status": "RUNNING"}
    plan = execution.plan
    body: Json = {"status": DETAIL_STATUS[plan.status]}
    if plan.outputs is not None:
        body["outputs"] = plan.outputs
    if plan.error is not None and plan.status != "success":
        body["error"] = plan.error
    return body


def pg_logs(limit: int, desc: bool, show_last: bool, items: list[Json]) -> Json:
    return {
        "sortBy": "imtId",
        "sortDir": "desc" if desc else "asc",
        "last": items[-1]["imtId"] if items else None,
        "showLast": show_last,
        "limit": limit,
    }


def pg_list(sort_by: str, sort_dir: str, limit: int, offset: int) -> Json:
    return {"sortBy": sort_by, "limit": limit, "sortDir": sort_dir, "offset": offset,
            "returnTotalCount": False}


def interface(spec: ScenarioSpec) -> Json:
    inputs = [
        {"name": item.name, "type": item.type, "default": item.default,
         "required": item.required, "multiline": item.multiline}
        for item in spec.inputs
    ]
    return {"interface": {"input": inputs, "output": _output_spec(spec)}}


def _output_spec(spec: ScenarioSpec) -> list[Json] | None:
    if spec.outputs is None:
        return None
    kinds = {bool: "boolean", int: "number", float: "number", str: "text"}
    return [{"name": key, "type": kinds.get(type(value), "any")}
            for key, value in spec.outputs.items()]


def blueprint(spec: ScenarioSpec) -> Json:
    """`GET /scenarios/{id}/blueprint`: Make's `{"code":"OK","response":{...}}` envelope."""
    ids = [node["id"] for node in iter_modules(spec.blueprint["flow"])]
    inputs = [{"name": item.name, "type": item.type, "required": item.required}
              for item in spec.inputs]
    return {
        "code": "OK",
        "response": {
            "blueprint": spec.blueprint,
            "scheduling": dict(spec.scheduling),
            "idSequence": max(ids) + 1,
            "created": spec.created,
            "last_edit": spec.last_edit,
            "metadata": {"input_spec": inputs, "output_spec": _output_spec(spec) or []},
        },
    }


def blueprint_versions(spec: ScenarioSpec) -> Json:
    return {"scenariosBlueprints": [
        {"created": spec.last_edit, "version": 1, "scenarioId": spec.id, "draft": False}]}


def trigger(state: ScenarioState, world: WorldSpec, seed: int) -> Json:
    """`GET /scenarios/{id}/triggers` (make-api.md §2.2): the webhook and its queue depth."""
    spec = state.spec
    first = spec.blueprint["flow"][0]
    if spec.webhook is None:
        # A polling or on-demand trigger has no hook and no queue.
        return {"id": None, "name": str(first["module"]), "udid": None, "scope": "scenario",
                "queueCount": 0, "queueLimit": 0, "typeName": str(first["module"]),
                "type": "polling", "url": None, "flags": {}}
    rng = random.Random(f"{seed}/{spec.id}/udid")
    udid = "".join(rng.choices(string.ascii_lowercase + string.digits, k=32))
    return {
        "id": hook_id(spec),
        "name": spec.webhook.name,
        "udid": udid,
        "scope": "hook",
        "queueCount": state.queue,
        "queueLimit": spec.webhook.queue_limit,
        "typeName": "gateway-webhook",
        "type": "web",
        "url": f"https://hook.{world.organization.zone}/{udid}",
        "flags": {},
    }


def organization(world: WorldSpec, now_ms: int, operations: int, transfer: int) -> Json:
    org = world.organization
    return {"organization": {
        "id": org.id,
        "name": org.name,
        "serviceName": org.service_name,
        "nextReset": iso(now_ms + 30 * 86_400_000 - now_ms % 86_400_000),
        "operations": str(operations),
        "transfer": str(transfer),
        "operationsExt": "0",
        "transferExt": "0",
        "unusedOperations": "0",
        "unusedTransfer": "0",
        "isPaused": False,
        "countryId": org.country_id,
        "timezoneId": org.timezone_id,
        "deleted": False,
        "license": {
            "apps": ["T2", "T3"],
            "users": 50,
            "dslimit": 40,
            "fslimit": 2147483648,
            "iolimit": 10000,
            "dsslimit": 524288000,
            "fulltext": True,
            "interval": 1,
            "transfer": 1099511627776,
            "operations": 800000000,
            "apiLimit": org.api_limit,
        },
        "features": {},
        "zone": org.zone,
        "teams": [{"id": team.id, "name": team.name} for team in world.teams],
        "privateSpaces": [],
    }}


def organizations(org: OrganizationSpec) -> Json:
    return {
        "organizations": [{"id": org.id, "name": org.name, "timezoneId": org.timezone_id,
                           "countryId": org.country_id, "zone": org.zone}],
        "pg": {"sortBy": "name", "sortDir": "asc", "limit": 10000, "offset": 0},
    }


def team(item: TeamSpec, organization_id: int) -> Json:
    return {"id": item.id, "name": item.name, "organizationId": organization_id}


def user_me(user: UserSpec) -> Json:
    return {"authUser": {
        "id": user.id,
        "name": user.name,
        "email": user.email,
        "language": user.language,
        "timezoneId": user.timezone_id,
        "localeId": user.locale_id,
        "countryId": user.country_id,
        "features": {},
        "avatar": "",
        "lastLogin": "2025-03-08T23:07:17.897Z",
        "timezone": user.timezone,
        "locale": user.locale,
    }}


def dlq_list_item(item: DlqItem) -> Json:
    return {"id": item.id, "reason": item.reason, "created": iso(item.created_ms),
            "size": item.size, "resolved": False, "retry": True, "attempts": 0}


def dlq(item: DlqItem, scenario_name: str, world: WorldSpec) -> Json:
    return {"dlq": {
        "id": item.id,
        "scenarioId": item.scenario_id,
        "scenarioName": scenario_name,
        "companyId": world.organization.id,
        "companyName": world.organization.name,
        "resolved": False,
        "deleted": False,
        "index": item.index,
        "created": iso(item.created_ms),
        "executionId": item.execution_id,
        "retry": True,
        "attempts": 0,
        "size": item.size,
    }}


def dlq_bundle(item: DlqItem) -> Json:
    response = {str(module_id): {"error": error} for module_id, error in item.errors.items()}
    return {"code": "OK", "response": response}
