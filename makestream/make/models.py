"""Tolerant models of the JSON bodies Make's API v2 sends back.

Make's payloads are documented loosely (see `make-api.md`): statuses arrive as numbers or strings,
counters sometimes as strings ("0"), ids as strings or numbers, and fields come and go between
endpoints and plan types. These models therefore accept every documented variant, keep unknown
fields (``extra="allow"``), default what is missing, and only fail when a body cannot describe the
thing at all (a scenario without an id, say). They are frozen: a payload is an observation, never
something to edit.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, NamedTuple, TypeVar

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    model_validator,
)

from makestream.limits import MAKE_DURATION_MAX_MS, MAKE_INT_MAX, MAKE_YEAR_MAX, MAKE_YEAR_MIN
from makestream.make.auth import ZONE_HOST

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class ExecStatus(StrEnum):
    """The outcome of an execution, whichever way Make spelled it."""

    RUNNING = "running"
    SUCCESS = "success"
    WARNING = "warning"
    ERROR = "error"
    PAUSED = "paused"
    UNKNOWN = "unknown"

    @classmethod
    def parse(cls, value: object) -> ExecStatus:
        """Read a numeric (logs: 0-3) or string (executions: RUNNING...) status, else UNKNOWN."""
        if isinstance(value, ExecStatus):
            return value
        if isinstance(value, bool):  # bool is an int subclass; True is not "success"
            return cls.UNKNOWN
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, int):
            return _BY_NUMBER.get(value, cls.UNKNOWN)
        if isinstance(value, str):
            text = value.strip().lower()
            if text.isascii() and text.isdigit():  # "¹".isdigit() is True, int("¹") fails
                return _BY_NUMBER.get(int(text), cls.UNKNOWN) if len(text) < 6 else cls.UNKNOWN
            return _BY_NAME.get(text, cls.UNKNOWN)
        return cls.UNKNOWN

    @property
    def terminal(self) -> bool:
        """True when the execution has ended (success, warning or error)."""
        return self in (ExecStatus.SUCCESS, ExecStatus.WARNING, ExecStatus.ERROR)


# 0 is "pending" in the SDK's type comment; Make shows a run in flight as RUNNING.
_BY_NUMBER = {
    0: ExecStatus.RUNNING,
    1: ExecStatus.SUCCESS,
    2: ExecStatus.WARNING,
    3: ExecStatus.ERROR,
}
_BY_NAME = {status.value: status for status in ExecStatus} | {"pending": ExecStatus.RUNNING}


# --- field types that absorb Make's variants --------------------------------------------------


def _id_to_str(value: Any) -> Any:
    # Execution ids are 32-hex strings in every example, but OAS types them as integers.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and value.is_integer() and abs(value) <= MAKE_INT_MAX:
        return str(int(value))
    return value


def _none_to(factory: Callable[[], Any]) -> Callable[[Any], Any]:
    # A `null` where a counter, flag or list was expected means "nothing", not a broken payload.
    def convert(value: Any) -> Any:
        return factory() if value is None else value

    return convert


def _whole_number(value: Any) -> Any:
    # Durations and counters could come as 1.0 or "12.0"; keep the integer, refuse real fractions.
    if isinstance(value, str):
        text = value.strip()
        try:
            value = float(text) if "." in text or "e" in text.lower() else int(text)
        except ValueError:
            return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _as_utc(value: datetime) -> datetime:
    # Make sends ISO-8601 with "Z"; a timestamp without a zone is read as UTC, never local time.
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _in_years(value: datetime) -> datetime:
    # Far-off dates would overflow the date arithmetic done on them later (a run's end, a cursor).
    if not MAKE_YEAR_MIN <= value.year < MAKE_YEAR_MAX:
        raise ValueError(f"a timestamp must fall in the years {MAKE_YEAR_MIN} to {MAKE_YEAR_MAX}")
    return value


def _raw_status(value: Any) -> Any:
    # What Make sent as a status is kept for debugging; an odd one is kept as text, never lost.
    if isinstance(value, bool | float):
        return str(value)
    if isinstance(value, list | dict):
        return type(value).__name__
    if isinstance(value, int) and not -MAKE_INT_MAX <= value <= MAKE_INT_MAX:
        return "out of range"
    return value


# Integers in payloads: JSON's exact range (2**53), so that they survive any JSON consumer of the
# events. A value outside it (an `operations` of 2**64, say) is a broken body: PayloadError.
_Natural = Annotated[int, Field(ge=0, le=MAKE_INT_MAX)]
Id = Annotated[int, Field(ge=-MAKE_INT_MAX, le=MAKE_INT_MAX)]
IdStr = Annotated[str, BeforeValidator(_id_to_str)]
Count = Annotated[_Natural, BeforeValidator(_whole_number), BeforeValidator(_none_to(lambda: 0))]
OptInt = Annotated[_Natural | None, BeforeValidator(_whole_number)]
DurationMs = Annotated[
    Annotated[int, Field(ge=0, le=MAKE_DURATION_MAX_MS)] | None, BeforeValidator(_whole_number)
]
Flag = Annotated[bool, BeforeValidator(_none_to(lambda: False))]
UtcDateTime = Annotated[datetime, AfterValidator(_as_utc), AfterValidator(_in_years)]
RawStatus = Annotated[int | str | None, BeforeValidator(_raw_status)]
Status = Annotated[ExecStatus, BeforeValidator(ExecStatus.parse)]
StrList = Annotated[list[str], BeforeValidator(_none_to(list))]


def _alias(default: Any, *names: str) -> Any:
    """Accept any of `names` (Make is inconsistent about case) and serialize as the first."""
    return Field(default, validation_alias=AliasChoices(*names), serialization_alias=names[0])


class MakeModel(BaseModel):
    """Base of every payload model: tolerant, frozen, addressable by field name or Make's key."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, frozen=True)
    # Fields Make sent in a form that could not be read, taken as absent (`shapes.lenient`):
    # their values here are defaults, not what Make holds.
    _unread: frozenset[str] = PrivateAttr(default_factory=frozenset)

    @property
    def unread(self) -> frozenset[str]:
        """The fields whose values are defaults standing in for what could not be read."""
        return self._unread


MM = TypeVar("MM", bound=MakeModel)


def keep_known(new: MM, old: MM | None) -> MM:
    """`new`, with each field it could not read taken from `old` (the last copy that had it)
    rather than a default that would look like a change: a scenario whose `isinvalid` came in
    unreadable is not reported as repaired, and then as failing again at the next copy."""
    if old is None or not new.unread:
        return new
    kept = new.model_copy(update={name: getattr(old, name) for name in new.unread})
    kept._unread = frozenset()
    return kept


def fields_of(model: type[MakeModel], keys: set[str]) -> frozenset[str]:
    """The field names that JSON `keys` (field names or any of their aliases) fill."""
    names: set[str] = set()
    for name, info in model.model_fields.items():
        aliases = {name, info.alias} | set(_choices(info.validation_alias))
        if aliases & keys:
            names.add(name)
    return frozenset(names)


def _choices(alias: Any) -> list[str]:
    if isinstance(alias, str):
        return [alias]
    if isinstance(alias, AliasChoices):
        return [c for c in alias.choices if isinstance(c, str)]
    return []


def _first_key(data: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        if data.get(key) is not None:
            return data[key]
    return None


def _keep_raw_status(data: Any) -> Any:
    # Models with a parsed `status` also keep what Make actually sent, for debugging and events.
    if isinstance(data, dict) and "raw_status" not in data and "rawStatus" not in data:
        return {**data, "raw_status": data.get("status")}
    return data


def _parse_optional_status(value: Any) -> ExecStatus | None:
    return None if value is None else ExecStatus.parse(value)


# --- paging ----------------------------------------------------------------------------------


class Page(MakeModel):
    """The `pg` object of a list response."""

    sort_by: str | None = Field(None, alias="sortBy")
    sort_dir: str | None = Field(None, alias="sortDir")
    limit: OptInt = None
    offset: OptInt = None
    # Keyset cursor of the logs endpoints: an imtId string, although the docs type it integer.
    last: Annotated[str | None, BeforeValidator(_id_to_str)] = None
    show_last: bool | None = Field(None, alias="showLast")


# --- scenarios -------------------------------------------------------------------------------


class Scheduling(MakeModel):
    """When a scenario runs: `immediately`, `indefinitely` (every `interval` s), `on-demand`..."""

    type: str = "unknown"
    interval: OptInt = None


class Scenario(MakeModel):
    """One scenario as listed by `GET /scenarios` or fetched by `GET /scenarios/{id}`."""

    id: Id
    name: str = ""
    team_id: Id | None = Field(None, alias="teamId")
    hook_id: Id | None = Field(None, alias="hookId")
    folder_id: Id | None = Field(None, alias="folderId")
    description: str | None = None
    is_active: Flag = Field(False, alias="isActive")
    # "stopped because of an error": Make spells it in lower case.
    is_invalid: Flag = _alias(False, "isinvalid", "isInvalid", "is_invalid")
    # a subscription problem, not a user pause
    is_paused: Flag = Field(False, alias="isPaused")
    is_locked: Flag = _alias(False, "islocked", "isLocked", "is_locked")
    is_waiting: Flag = _alias(False, "iswaiting", "isWaiting", "is_waiting")
    dlq_count: Count = Field(0, alias="dlqCount")
    next_exec: UtcDateTime | None = Field(None, alias="nextExec")
    # consumption in the current period; a change between sweeps means the scenario ran
    operations: Count = 0
    transfer: Count = 0
    scheduling: Scheduling | None = None
    last_edit: UtcDateTime | None = _alias(None, "lastEdit", "last_edit")
    created: UtcDateTime | None = None
    used_packages: StrList = Field(default_factory=list, alias="usedPackages")


# --- execution logs --------------------------------------------------------------------------

# {epochMs}_{kind}.{owner}.{type}.{id}: kind is "scenario" (owner = scenario id) or "dlq".
_IMT_ID = re.compile(
    r"^(?P<ms>[0-9]{1,14})_(?P<kind>[a-z]+)\.(?P<owner>[^.]+)\.(?P<type>[^.]+)\.(?P<id>.+)$"
)


def parse_imt_id(imt_id: str) -> tuple[int, int | None, str] | None:
    """Split an imtId into (epoch ms, scenario id or None for DLQ logs, execution id)."""
    match = _IMT_ID.match(imt_id)
    if match is None:
        return None
    owner = match["owner"]
    is_number = owner.isascii() and owner.isdigit() and len(owner) <= 15
    scenario_id = int(owner) if match["kind"] == "scenario" and is_number else None
    return int(match["ms"]), scenario_id, match["id"]


class ExecutionLog(MakeModel):
    """One run in a scenario's history (`scenarioLogs`, `scenarioLog`, `dlqLogs`, `dlqLog`)."""

    id: IdStr
    imt_id: str | None = Field(None, alias="imtId")
    scenario_id: Id | None = Field(None, alias="scenarioId")
    timestamp: UtcDateTime
    duration_ms: DurationMs = Field(None, alias="duration")
    operations: Count = 0
    centicredits: OptInt = None
    transfer: Count = 0
    status: Status = ExecStatus.UNKNOWN
    raw_status: RawStatus = None
    type: str | None = None
    instant: bool | None = None
    author_id: Id | None = Field(None, alias="authorId")
    organization_id: Id | None = Field(None, alias="organizationId")
    team_id: Id | None = Field(None, alias="teamId")

    @model_validator(mode="before")
    @classmethod
    def _from_imt_id(cls, data: Any) -> Any:
        # The imtId carries the scenario id, the timestamp and the execution id; use it to fill
        # whichever of those the item lacks (logs carry no scenarioId, for one).
        data = _keep_raw_status(data)
        if not isinstance(data, dict):
            return data
        imt_id = _first_key(data, "imtId", "imt_id")
        parsed = parse_imt_id(imt_id) if isinstance(imt_id, str) else None
        if parsed is None:
            return data
        ms, scenario_id, execution_id = parsed
        filled = dict(data)
        if _first_key(data, "scenarioId", "scenario_id") is None:
            filled["scenario_id"] = scenario_id
        if data.get("timestamp") is None:
            filled["timestamp"] = _EPOCH + timedelta(milliseconds=ms)
        if data.get("id") is None:
            filled["id"] = execution_id
        return filled

    @property
    def timestamp_ms(self) -> int:
        """The timestamp in epoch milliseconds (Make's unit for `from`/`to`), exactly."""
        return (self.timestamp - _EPOCH) // timedelta(milliseconds=1)


class Problem(NamedTuple):
    """What could not be read of one entry: the fields taken as absent ("" when the entry
    was left out), and why. Its text is one line naming the entry."""

    label: str  # the entry's imtId or id, cut short
    fields: str  # the JSON keys taken as absent, comma-separated; "" when left out
    reason: str

    def __str__(self) -> str:
        what = f"{self.fields} taken as absent" if self.fields else "left out"
        return f"{self.label}: {what} ({self.reason})"


class LogPage(MakeModel):
    """One page of `GET /scenarios/{id}/logs`; page on with `pg.last`.

    `size` counts every entry the page listed; `problems` says, one line each, what could not
    be read (`shapes.lenient`: a field taken as absent, or an entry left out, so that one odd
    entry does not keep a scenario's other runs from being read)."""

    items: list[ExecutionLog] = []
    pg: Page | None = None
    size: int = 0
    problems: list[Problem] = []

    @property
    def last_imt_id(self) -> str | None:
        """The imtId to page on from: the oldest entry's that has one (an entry whose imtId
        could not be read is still listed, and read)."""
        return next((e.imt_id for e in reversed(self.items) if e.imt_id), None)


# --- one execution ---------------------------------------------------------------------------


class CauseModule(MakeModel):
    """The module that ended a failed run, as named by `/executions/{id}`."""

    name: str | None = None
    app_name: str | None = Field(None, alias="appName")


class ExecutionFailure(MakeModel):
    """The `error` object of `/executions/{id}` (one per run: the one that ended it)."""

    name: str | None = None
    message: str | None = None
    cause_module: CauseModule | None = Field(None, alias="causeModule")


class ExecutionDetail(MakeModel):
    """`GET /scenarios/{id}/executions/{executionId}`: status, outputs, error (body not wrapped)."""

    status: Status = ExecStatus.UNKNOWN
    raw_status: RawStatus = None
    outputs: dict[str, Any] | None = None
    error: ExecutionFailure | None = None

    @model_validator(mode="before")
    @classmethod
    def _keep_raw(cls, data: Any) -> Any:
        return _keep_raw_status(data)


class RunResult(MakeModel):
    """`POST /scenarios/{id}/run`: the execution id, plus status and outputs when responsive."""

    execution_id: IdStr = Field(alias="executionId")
    status: Annotated[ExecStatus | None, BeforeValidator(_parse_optional_status)] = None
    raw_status: RawStatus = None
    outputs: dict[str, Any] | None = None

    @model_validator(mode="before")
    @classmethod
    def _keep_raw(cls, data: Any) -> Any:
        return _keep_raw_status(data)


# --- organizations, teams, users -------------------------------------------------------------


class Team(MakeModel):
    """A team (`GET /teams`, or inside an organization)."""

    id: Id
    name: str = ""
    organization_id: Id | None = Field(None, alias="organizationId")


def _zone_host(value: Any) -> Any:
    # The zone becomes the host of every run link: anything but a Make zone host (a path, a
    # newline, another domain) is dropped, so that a bad answer yields no link, not a false one.
    if isinstance(value, str):
        return value.lower() if ZONE_HOST.fullmatch(value.lower()) else None
    return None


class Organization(MakeModel):
    """An organization; `api_limit` is its requests-per-minute limit (`license.apiLimit`).

    `zone` is None unless Make sent a valid zone host (see `makestream.make.auth.ZONE_HOST`).
    """

    id: Id
    name: str = ""
    zone: Annotated[str | None, BeforeValidator(_zone_host)] = None
    api_limit: OptInt = Field(None, alias="apiLimit")
    is_paused: Flag = Field(False, alias="isPaused")
    teams: Annotated[list[Team], BeforeValidator(_none_to(list))] = []

    @model_validator(mode="before")
    @classmethod
    def _lift_license(cls, data: Any) -> Any:
        # The limit lives at `license.apiLimit`; the teams inside an organization omit their
        # organizationId, which is this organization's id.
        if not isinstance(data, dict):
            return data
        filled = dict(data)
        license_ = data.get("license")
        if _first_key(data, "apiLimit", "api_limit") is None and isinstance(license_, dict):
            filled["api_limit"] = license_.get("apiLimit")
        teams = data.get("teams")
        if isinstance(teams, list) and data.get("id") is not None:
            filled["teams"] = [
                {"organizationId": data["id"], **team} if isinstance(team, dict) else team
                for team in teams
            ]
        return filled


class User(MakeModel):
    """The token's user (`GET /users/me` → `authUser`)."""

    id: Id
    name: str = ""
    email: str | None = None


# --- triggers, blueprints --------------------------------------------------------------------


class Trigger(MakeModel):
    """A scenario's trigger or webhook; `queue_count` is the webhook queue depth."""

    id: Id | None = None
    name: str | None = None
    queue_count: Count = Field(0, alias="queueCount")
    queue_limit: OptInt = Field(None, alias="queueLimit")
    type_name: str | None = Field(None, alias="typeName")
    type: str | None = None
    url: str | None = None
    scenario_id: Id | None = Field(None, alias="scenarioId")


class BlueprintModule(MakeModel):
    """One module node of a blueprint; routers hold `routes`, error handlers hang on `onerror`."""

    id: Id
    module: str
    version: OptInt = None
    parameters: Any = None
    mapper: Any = None
    metadata: Any = None
    filter: dict[str, Any] | None = None
    routes: Annotated[list[Route], BeforeValidator(_none_to(list))] = []
    onerror: Annotated[list[BlueprintModule], BeforeValidator(_none_to(list))] = []
    listener: Flag = False

    @property
    def app(self) -> str:
        """The app part of `app:Name`, without the `app#` prefix custom apps carry."""
        app = self.module.partition(":")[0]
        return app.removeprefix("app#")

    @property
    def name(self) -> str:
        """The module part of `app:Name` (the whole string when there is no colon)."""
        app, colon, name = self.module.partition(":")
        return name if colon else app

    def walk(self) -> Iterator[BlueprintModule]:
        """This module, then the modules of each route in order, then its error handlers."""
        yield self
        for route in self.routes:
            for module in route.flow:
                yield from module.walk()
        for module in self.onerror:
            yield from module.walk()


class Route(MakeModel):
    """One outgoing route of a router."""

    flow: Annotated[list[BlueprintModule], BeforeValidator(_none_to(list))] = []


class Blueprint(MakeModel):
    """A scenario's blueprint: the module graph (`flow`) and scenario settings (`metadata`)."""

    name: str = ""
    flow: Annotated[list[BlueprintModule], BeforeValidator(_none_to(list))] = []
    metadata: dict[str, Any] | None = None

    def walk(self) -> Iterator[BlueprintModule]:
        """Every module, depth-first in flow order, through `routes[].flow` and `onerror`."""
        for module in self.flow:
            yield from module.walk()


class BlueprintVersion(MakeModel):
    """One saved version of a blueprint (`GET /scenarios/{id}/blueprints`)."""

    version: OptInt = None
    scenario_id: Id | None = Field(None, alias="scenarioId")
    created: UtcDateTime | None = None
    draft: Flag = False


class InterfaceField(MakeModel):
    """One declared scenario input or output (`GET /scenarios/{id}/interface`)."""

    name: str
    type: str | None = None
    default: Any = None
    required: Flag = False
    multiline: Flag = False


class ScenarioInterface(MakeModel):
    """A scenario's declared inputs (what `POST /run` needs in `data`) and outputs."""

    input: Annotated[list[InterfaceField], BeforeValidator(_none_to(list))] = []
    output: Annotated[list[InterfaceField], BeforeValidator(_none_to(list))] = []


# --- module logs, incomplete executions ------------------------------------------------------


class ModuleLog(MakeModel):
    """One module's outcome in one run (`GET /scenarios/{id}/modules/{moduleId}/logs`)."""

    imt_id: str | None = Field(None, alias="imtId")
    execution_id: IdStr = Field(alias="executionId")
    scenario_id: Id | None = Field(None, alias="scenarioId")
    timestamp: UtcDateTime
    status: Status = ExecStatus.UNKNOWN
    raw_status: RawStatus = None
    bundles: Count = 0
    size: Count = 0
    warning: Any = None
    error: Any = None

    @model_validator(mode="before")
    @classmethod
    def _from_imt_id(cls, data: Any) -> Any:
        data = _keep_raw_status(data)
        if not isinstance(data, dict):
            return data
        imt_id = _first_key(data, "imtId", "imt_id")
        parsed = parse_imt_id(imt_id) if isinstance(imt_id, str) else None
        if parsed is None:
            return data
        ms, scenario_id, execution_id = parsed
        filled = dict(data)
        if _first_key(data, "scenarioId", "scenario_id") is None and scenario_id is not None:
            filled["scenario_id"] = scenario_id
        if data.get("timestamp") is None:
            filled["timestamp"] = _EPOCH + timedelta(milliseconds=ms)
        if _first_key(data, "executionId", "execution_id") is None:
            filled["execution_id"] = execution_id
        return filled


class ModuleLogPage(MakeModel):
    """One page of module logs; page on with `pg.last` (`size`, `problems`: as `LogPage`)."""

    items: list[ModuleLog] = []
    pg: Page | None = None
    size: int = 0
    problems: list[Problem] = []


class Dlq(MakeModel):
    """An incomplete execution (`GET /dlqs`, `GET /dlqs/{id}`)."""

    id: IdStr
    reason: str | None = None
    created: UtcDateTime | None = None
    size: OptInt = None
    resolved: Flag = False
    retry: bool | None = None
    attempts: OptInt = None
    scenario_id: Id | None = Field(None, alias="scenarioId")
    execution_id: Annotated[str | None, BeforeValidator(_id_to_str)] = Field(
        None, alias="executionId"
    )


class DlqBundleError(MakeModel):
    """The error one module raised in an incomplete execution."""

    type: str | None = None
    message: str | None = None


class DlqBundleEntry(MakeModel):
    """What `GET /dlqs/{id}/bundle` holds for one module: its error, or the value it had."""

    error: DlqBundleError | None = None
    value: Any = None


BlueprintModule.model_rebuild()
Route.model_rebuild()
