"""The zone's HTTP routes: Make API v2 under /api/v2, answering from a SimZone's state.

Every route here runs after `ZoneGate` (gate.py) has authenticated the request, spent the rate
limit and advanced the zone. Bad input gets Make's error schema `{"detail","message","code"}`.

Choices where make-api.md is silent (each is what a client must cope with anyway):
- `GET /scenarios`: `pg[limit]` defaults to 10 (as in Make's own example) and is capped at 10000;
  the default order ("proprietal") is by id, descending.
- `GET /scenarios/{id}/logs` and module logs: `pg[limit]` defaults to 50 and is capped at 200
  (larger values are clamped; `pg.limit` in the answer shows the value used). `showCheckRuns` is
  accepted and has no effect: the simulator makes no check runs. `from` and `to` are read as
  milliseconds, or (`SimZone(log_range=...)`, the docs leave it open) as seconds or not at all.
- `POST /run` with `responsive: true` waits up to 40 s of clock time; a slower run answers
  504 SC504 (the run goes on), with its `executionId` in the error body. `callbackUrl` is
  accepted and never called: the simulator makes no outbound requests.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any, NoReturn

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from makestream.sim import payloads
from makestream.sim.blueprint import iter_modules
from makestream.sim.gate import ZoneGate
from makestream.sim.logbook import PageQuery, imt_key
from makestream.sim.runs import LOG_STATUS
from makestream.sim.zone import Execution, ScenarioState

if TYPE_CHECKING:
    from makestream.sim.zone import SimZone

LOG_PAGE_DEFAULT, LOG_PAGE_MAX = 50, 200
LIST_PAGE_DEFAULT, LIST_PAGE_MAX = 10, 10_000
RESPONSIVE_WAIT_S = 40.0


class ApiProblem(Exception):
    """An error answer with Make's body; raised anywhere in a route."""

    def __init__(self, status: int, detail: str, message: str, code: str, **extra: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.body = payloads.error_body(detail, message, code, **extra)


def _bad(detail: str, code: str = "IM005") -> NoReturn:
    raise ApiProblem(400, detail, "Bad Request", code)


def _not_found(detail: str) -> NoReturn:
    raise ApiProblem(404, detail, "Not Found", "SC404")


def _zone(request: Request) -> SimZone:
    zone: SimZone = request.app.state.zone
    return zone


def _int(request: Request, name: str, *, minimum: int | None = None) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        _bad(f"Invalid value of parameter '{name}': expected an integer.")
    if minimum is not None and value < minimum:
        _bad(f"Invalid value of parameter '{name}': must be at least {minimum}.")
    return value


def _bool(request: Request, name: str) -> bool | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    lowered = raw.lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    _bad(f"Invalid value of parameter '{name}': expected true or false.")


def _state(request: Request) -> ScenarioState:
    state = _zone(request).states.get(request.path_params["scenario_id"])
    if state is None:
        _not_found("Scenario not found.")
    return state


# ---------------------------------------------------------------- scenarios

_SORT_KEYS: dict[str, Callable[[ScenarioState], Any]] = {
    "proprietal": lambda s: s.spec.id,
    "id": lambda s: s.spec.id,
    "name": lambda s: s.spec.name.lower(),
    "teamId": lambda s: s.spec.team_id,
    "folderId": lambda s: s.spec.folder_id or 0,
    "isActive": lambda s: s.is_active,
    "isinvalid": lambda s: s.invalid,
    "islinked": lambda s: s.is_active,
    "created": lambda s: s.spec.created,
    "lastEdit": lambda s: s.spec.last_edit,
}


async def list_scenarios(request: Request) -> Response:
    zone = _zone(request)
    query = request.query_params
    has_team, has_org = "teamId" in query, "organizationId" in query
    if has_team and has_org:
        _bad("teamId and organizationId cannot be used together", "SC400")
    if not has_team and not has_org:
        _bad("Missing required parameter teamId or organizationId", "SC400")
    team_id = _int(request, "teamId")
    org_id = _int(request, "organizationId")
    with zone.lock:
        states = list(zone.states.values())
        if has_team:
            if team_id not in {team.id for team in zone.world.teams}:
                raise ApiProblem(403, "Access denied.", "Permission denied", "SC403")
            states = [s for s in states if s.spec.team_id == team_id]
        elif org_id != zone.world.organization.id:
            raise ApiProblem(403, "Access denied.", "Permission denied", "SC403")
        ids = query.getlist("id[]")
        if ids:
            try:
                wanted = {int(value) for value in ids}
            except ValueError:
                _bad("Invalid value of parameter 'id[]': expected integers.")
            states = [s for s in states if s.spec.id in wanted]
        active = _bool(request, "isActive")
        if active is not None:
            states = [s for s in states if s.is_active == active]
        folder = _int(request, "folderId")
        if folder is not None:
            states = [s for s in states if s.spec.folder_id == folder]
        sort_by = query.get("pg[sortBy]") or "proprietal"
        if sort_by not in _SORT_KEYS:
            _bad(f"Invalid value of parameter 'pg[sortBy]': {sort_by}.")
        sort_dir = query.get("pg[sortDir]") or ("desc" if sort_by == "proprietal" else "asc")
        if sort_dir not in ("asc", "desc"):
            _bad("Invalid value of parameter 'pg[sortDir]': expected asc or desc.")
        limit = min(_int(request, "pg[limit]", minimum=1) or LIST_PAGE_DEFAULT, LIST_PAGE_MAX)
        offset = _int(request, "pg[offset]", minimum=0) or 0
        states.sort(key=_SORT_KEYS[sort_by], reverse=sort_dir == "desc")
        items = [payloads.scenario(s, zone.world.user) for s in states[offset:offset + limit]]
    return JSONResponse({"scenarios": items,
                         "pg": payloads.pg_list(sort_by, sort_dir, limit, offset)})


async def get_scenario(request: Request) -> Response:
    zone = _zone(request)
    with zone.lock:
        return JSONResponse({"scenario": payloads.scenario(_state(request), zone.world.user)})


async def get_blueprint(request: Request) -> Response:
    return JSONResponse(payloads.blueprint(_state(request).spec))


async def get_blueprint_versions(request: Request) -> Response:
    return JSONResponse(payloads.blueprint_versions(_state(request).spec))


async def get_triggers(request: Request) -> Response:
    zone = _zone(request)
    if not zone.queue_readable:
        raise ApiProblem(403, "Access denied.", "Permission denied", "SC403")
    with zone.lock:
        return JSONResponse(payloads.trigger(_state(request), zone.world, zone.seed))


async def get_interface(request: Request) -> Response:
    return JSONResponse(payloads.interface(_state(request).spec))


# --------------------------------------------------------------------- logs

def _page_query(request: Request) -> PageQuery:
    query = request.query_params
    sort_dir = query.get("pg[sortDir]") or "desc"
    if sort_dir not in ("asc", "desc"):
        _bad("Invalid value of parameter 'pg[sortDir]': expected asc or desc.")
    last = query.get("pg[last]") or None
    if last is not None:
        try:
            imt_key(last)
        except ValueError:
            _bad("Invalid value of parameter 'pg[last]': expected an imtId.")
    limit = _int(request, "pg[limit]", minimum=1) or LOG_PAGE_DEFAULT
    return PageQuery(
        limit=min(limit, LOG_PAGE_MAX),
        offset=_int(request, "pg[offset]", minimum=0) or 0,
        desc=sort_dir == "desc",
        last=last,
        show_last=bool(_bool(request, "pg[showLast]")),
        from_ms=_int(request, "from"),
        to_ms=_int(request, "to"),
    )


def _log_filter(request: Request) -> Callable[[Execution], bool] | None:
    """Predicates for `status` and the documented ranges (duration, operations, ...)."""
    checks: list[Callable[[Execution], bool]] = []
    status = _int(request, "status")
    if status is not None:
        if status not in LOG_STATUS.values():
            _bad("Invalid value of parameter 'status': expected 1, 2 or 3.")
        checks.append(lambda ex: LOG_STATUS[ex.status] == status)
    ranges: dict[str, Callable[[Execution], int]] = {
        "duration": lambda ex: ex.end_ms - ex.start_ms,
        "operations": lambda ex: ex.plan.operations,
        "transfer": lambda ex: ex.plan.transfer,
        "credits": lambda ex: ex.plan.centicredits,
    }
    for name, measure in ranges.items():
        low, high = _int(request, f"{name}From"), _int(request, f"{name}To")
        if low is not None or high is not None:
            checks.append(_within(measure, low, high))
    if not checks:
        return None
    return lambda ex: all(check(ex) for check in checks)


def _within(measure: Callable[[Execution], int], low: int | None,
            high: int | None) -> Callable[[Execution], bool]:
    def check(execution: Execution) -> bool:
        value = measure(execution)
        return (low is None or value >= low) and (high is None or value <= high)

    return check


async def list_logs(request: Request) -> Response:
    zone = _zone(request)
    page = _page_query(request)
    if zone.log_range == "s":
        page = replace(page, from_ms=None if page.from_ms is None else page.from_ms * 1000,
                       to_ms=None if page.to_ms is None else page.to_ms * 1000)
    elif zone.log_range == "ignored":
        page = replace(page, from_ms=None, to_ms=None)
    keep = _log_filter(request)
    _bool(request, "showCheckRuns")  # validated, no effect: there are no check runs
    org_id = zone.world.organization.id
    with zone.lock:
        state = _state(request)
        entries = state.logs.page(page, keep)
        items = [payloads.scenario_log(ex, org_id) for ex in entries]
        if zone.running_in_logs and page.last is None and page.offset == 0 and page.desc:
            # Runs in flight head the first page, newest first, with status 0 ("pending").
            now = zone.clock.now_ms()
            low, high = page.from_ms, page.to_ms
            running = [
                payloads.running_log(ex, org_id, now)
                for ex in sorted(state.in_flight.values(), key=lambda e: -e.start_ms)
                if ex.start_ms <= now and (low is None or ex.log_ms >= low)
                and (high is None or ex.log_ms <= high)
            ]
            items = running + items
    return JSONResponse({"scenarioLogs": items,
                         "pg": payloads.pg_logs(page.limit, page.desc, page.show_last, items)})


async def get_log(request: Request) -> Response:
    zone = _zone(request)
    with zone.lock:
        state = _state(request)
        execution = zone.execution(request.path_params["execution_id"])
        if (execution is None or execution.scenario_id != state.spec.id
                or execution.visible_ms > zone.clock.now_ms()):
            _not_found("Scenario log not found.")
        body = payloads.scenario_log(execution, zone.world.organization.id)
    return JSONResponse({"scenarioLog": body})


async def list_module_logs(request: Request) -> Response:
    zone = _zone(request)
    page = _page_query(request)
    module_id = request.path_params["module_id"]
    org_id = zone.world.organization.id
    with zone.lock:
        state = _state(request)
        if all(node["id"] != module_id for node in iter_modules(state.spec.blueprint["flow"])):
            _not_found("Module not found.")
        book = state.module_logs.get(module_id)
        entries = book.page(page) if book is not None else []
        items = [payloads.module_log(ex, run, org_id) for ex, run in entries]
    pg = payloads.pg_logs(page.limit, page.desc, page.show_last, items)
    pg["offset"] = page.offset
    return JSONResponse({"moduleLogs": items, "pg": pg})


async def get_execution(request: Request) -> Response:
    zone = _zone(request)
    with zone.lock:
        state = _state(request)
        execution = zone.execution(request.path_params["execution_id"])
        if execution is None or execution.scenario_id != state.spec.id:
            _not_found("Execution not found.")
        body = payloads.execution_detail(execution, zone.clock.now_ms())
    max_bytes = _int(request, "maxBytes", minimum=0)
    too_big = max_bytes is not None and "outputs" in body and (
        len(json.dumps(body["outputs"]).encode()) > max_bytes)
    if too_big:
        raise ApiProblem(413, "The execution outputs are larger than maxBytes.",
                         "Payload Too Large", "SC413")
    return JSONResponse(body)


# ---------------------------------------------------------------------- run

_INPUT_TYPES: dict[str, Callable[[Any], bool]] = {
    "text": lambda v: isinstance(v, str),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
}


async def run_scenario(request: Request) -> Response:
    zone = _zone(request)
    raw = await request.body()
    try:
        body = json.loads(raw) if raw.strip() else {}
    except ValueError:
        _bad("Request body is not valid JSON.", "SC400")
    if not isinstance(body, dict):
        _bad("Request body must be a JSON object.", "SC400")
    data = body.get("data") or {}
    responsive = body.get("responsive", False)
    if not isinstance(data, dict) or not isinstance(responsive, bool):
        _bad("Invalid value of parameter 'data' or 'responsive'.", "SC400")
    with zone.lock:
        state = _state(request)
        if not state.accepting:
            raise ApiProblem(400, "Scenario is not active. Activate it to run it via the API.",
                             "Bad Request", "IM016")
        problems = []
        for item in state.spec.inputs:
            value = data.get(item.name)
            if value is None:
                if item.required and item.default is None:
                    problems.append(f"Missing value of required parameter '{item.name}'.")
            elif not _INPUT_TYPES.get(item.type, lambda _v: True)(value):
                problems.append(f"Invalid value of parameter '{item.name}': expected {item.type}.")
        if problems:
            raise ApiProblem(
                400, f"Validation failed for {len(problems)} parameter(s).", "Bad Request",
                "SC400", suberrors=[{"message": text, "name": "Error"} for text in problems])
        execution_id = zone.start_execution(state.spec.id, data)
        execution = zone.execution(execution_id)
    assert execution is not None
    if not responsive:
        return JSONResponse({"executionId": execution_id})
    wait_s = (execution.end_ms - zone.clock.now_ms()) / 1000
    if wait_s > RESPONSIVE_WAIT_S:
        await zone.clock.sleep(RESPONSIVE_WAIT_S)
        raise ApiProblem(504, "Scenario execution timed out; it is still running.",
                         "Gateway Timeout", "SC504", executionId=execution_id)
    await zone.clock.sleep(wait_s)
    zone.advance()
    plan = execution.plan
    return JSONResponse({"executionId": execution_id, "status": LOG_STATUS[plan.status],
                         "outputs": plan.outputs})


# --------------------------------------------------------------------- dlqs

async def list_dlqs(request: Request) -> Response:
    zone = _zone(request)
    scenario_id = _int(request, "scenarioId")
    if scenario_id is None:
        _bad("Missing required parameter scenarioId", "SC400")
    with zone.lock:
        state = zone.states.get(scenario_id)
        if state is None:
            _not_found("Scenario not found.")
        items = [payloads.dlq_list_item(item) for item in reversed(state.dlqs)]
    return JSONResponse({"dlqs": items})


async def get_dlq(request: Request) -> Response:
    zone = _zone(request)
    with zone.lock:
        item = zone.dlq(request.path_params["dlq_id"])
        if item is None:
            _not_found("Incomplete execution not found.")
        name = zone.states[item.scenario_id].spec.name
        return JSONResponse(payloads.dlq(item, name, zone.world))


async def get_dlq_bundle(request: Request) -> Response:
    zone = _zone(request)
    with zone.lock:
        item = zone.dlq(request.path_params["dlq_id"])
        if item is None:
            _not_found("Incomplete execution not found.")
        return JSONResponse(payloads.dlq_bundle(item))


# ---------------------------------------------------- organizations, teams, user

def _organization_readable(zone: SimZone) -> None:
    if not zone.organization_readable:
        raise ApiProblem(403, "Access denied.", "Permission denied", "SC403")


async def list_organizations(request: Request) -> Response:
    _organization_readable(_zone(request))
    return JSONResponse(payloads.organizations(_zone(request).world.organization))


async def get_organization(request: Request) -> Response:
    zone = _zone(request)
    _organization_readable(zone)
    if request.path_params["organization_id"] != zone.world.organization.id:
        _not_found("Organization not found.")
    operations, transfer = zone.organization_totals()
    body = payloads.organization(zone.world, zone.clock.now_ms(), operations, transfer)
    return JSONResponse(body)


async def list_teams(request: Request) -> Response:
    zone = _zone(request)
    org_id = _int(request, "organizationId")
    if org_id is None:
        _bad("Missing required parameter organizationId", "SC400")
    if org_id != zone.world.organization.id:
        raise ApiProblem(403, "Access denied.", "Permission denied", "SC403")
    teams = [payloads.team(team, org_id) for team in zone.world.teams]
    return JSONResponse({"teams": teams, "pg": {"sortBy": "name", "sortDir": "asc",
                                                "limit": 10000, "offset": 0}})


async def get_team(request: Request) -> Response:
    zone = _zone(request)
    for team in zone.world.teams:
        if team.id == request.path_params["team_id"]:
            body = payloads.team(team, zone.world.organization.id)
            return JSONResponse({"team": {**body, "scenarioDrafts": False}})
    _not_found("Team not found.")


async def get_me(request: Request) -> Response:
    return JSONResponse(payloads.user_me(_zone(request).world.user))


# ------------------------------------------------------------------ assembly

async def _problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiProblem)
    return JSONResponse(exc.body, status_code=exc.status)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        body = payloads.error_body("Method not allowed.", "Method Not Allowed", "SC405")
    else:
        body = payloads.error_body("Route not found.", "Not Found", "SC404")
    return JSONResponse(body, status_code=exc.status_code)


def build_app(zone: SimZone) -> Starlette:
    """The Starlette app of `zone`: routes under /api/v2 behind the gate."""
    scenario = "/scenarios/{scenario_id:int}"
    routes = [
        Route("/scenarios", list_scenarios),
        Route(scenario, get_scenario),
        Route(scenario + "/blueprint", get_blueprint),
        Route(scenario + "/blueprints", get_blueprint_versions),
        Route(scenario + "/triggers", get_triggers),
        Route(scenario + "/interface", get_interface),
        Route(scenario + "/logs", list_logs),
        Route(scenario + "/logs/{execution_id}", get_log),
        Route(scenario + "/executions/{execution_id}", get_execution),
        Route(scenario + "/modules/{module_id:int}/logs", list_module_logs),
        Route(scenario + "/run", run_scenario, methods=["POST"]),
        Route("/dlqs", list_dlqs),
        Route("/dlqs/{dlq_id}", get_dlq),
        Route("/dlqs/{dlq_id}/bundle", get_dlq_bundle),
        Route("/organizations", list_organizations),
        Route("/organizations/{organization_id:int}", get_organization),
        Route("/teams", list_teams),
        Route("/teams/{team_id:int}", get_team),
        Route("/users/me", get_me),
    ]
    app = Starlette(
        routes=[Mount("/api/v2", routes=routes)],
        middleware=[Middleware(ZoneGate, zone=zone)],
        exception_handlers={ApiProblem: _problem, HTTPException: _http_error},
    )
    app.state.zone = zone
    return app
