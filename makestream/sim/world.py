"""What the simulated Make zone contains: organization, teams, tokens, and scenarios with profiles.

A `WorldSpec` is pure description. `SimZone` turns it into executions over time: each scenario's
`profile` says how long its runs take and how often they warn or fail, its `scheduling` says when
it runs, and `webhook` (for instant scenarios) says how often requests arrive. Worlds come from
`demo_world()`, `generated_world()` (benchmarks) or `load_world(path)` (TOML or JSON files whose
keys are the field names below).
"""

from __future__ import annotations

import json
import random
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, model_validator

from makestream.errors import ConfigError
from makestream.sim.blueprint import iter_modules
from makestream.sim.flows import blueprint, module

# A UUIDv4, so clients send it as `Authorization: Token ...` like a real Make API token.
DEMO_TOKEN = "5e0d4a8b-7f8e-4c1e-9a55-6d2b8f3c9e01"

SCHEDULING_TYPES = frozenset(
    {"immediately", "indefinitely", "once", "daily", "weekly", "monthly", "yearly", "on-demand"}
)


class _Spec(BaseModel):
    # Unknown keys are typos in a world file; reject them rather than ignore them.
    model_config = ConfigDict(extra="forbid")


class Profile(_Spec):
    """How a scenario's runs behave. Durations are in seconds of clock time."""

    duration_mean: float = Field(5.0, gt=0)
    duration_stddev: float = Field(1.0, ge=0)
    warning_rate: float = Field(0.0, ge=0, le=1)
    error_rate: float = Field(0.0, ge=0, le=1)
    # The module that fails or warns; None picks one of the modules that ran, at random.
    failing_module: int | None = None
    # Bundles the trigger emits per run; each later module processes each bundle (1 op each).
    bundles: int = Field(1, ge=1)
    # Mean bytes transferred per run, spread over the modules that ran.
    transfer: int = Field(2048, ge=0)
    # Chance that a filtered link lets the run through (routers pick branches by this).
    filter_pass_rate: float = Field(0.5, ge=0, le=1)
    # Chance that a scheduled run's trigger finds nothing new: a check run, which `/logs` does
    # not list (make-api.md §2.4: hidden by default) and which moves no counter. Polling
    # triggers ("watch new rows") mostly make these.
    check_rate: float = Field(0.0, ge=0, le=1)

    @model_validator(mode="after")
    def _rates_fit(self) -> Profile:
        if self.warning_rate + self.error_rate > 1:
            raise ValueError("warning_rate + error_rate must not exceed 1")
        return self


class WebhookSpec(_Spec):
    """Incoming webhook requests of an instant scenario: Poisson arrivals and Make's queue.

    An arrival brings `burst` requests spread evenly over `burst_s` seconds (a sender that
    batches: 10 requests in 5 s); `rate_per_minute` counts arrivals, not requests.
    """

    rate_per_minute: float = Field(1.0, gt=0)
    burst: int = Field(1, ge=1, le=1000)
    burst_s: float = Field(0.0, ge=0, le=3600)
    queue_limit: int = Field(10000, ge=1)
    # Runs that may be in flight at once; arrivals beyond that wait in the queue (queueCount).
    parallel: int = Field(1, ge=1)
    hook_id: int | None = None
    name: str = "Webhook"


class InputSpec(_Spec):
    """One scenario input, as `GET /scenarios/{id}/interface` lists it."""

    name: str
    type: str = "text"
    default: Any = None
    required: bool = False
    multiline: bool = False


class ScenarioSpec(_Spec):
    """One scenario: its blueprint, when it runs, and how its runs behave."""

    id: int = Field(gt=0)
    name: str
    team_id: int
    blueprint: dict[str, Any]
    scheduling: dict[str, Any] = Field(default_factory=lambda: {"type": "on-demand"})
    is_active: bool = True
    is_paused: bool = False
    profile: Profile = Field(default_factory=Profile)
    webhook: WebhookSpec | None = None
    inputs: list[InputSpec] = Field(default_factory=list)
    # Values a successful run returns; strings may use {{input}} to echo an input.
    outputs: dict[str, Any] | None = None
    folder_id: int | None = None
    description: str = ""
    custom_properties: dict[str, Any] = Field(default_factory=dict)
    created: str = "2025-01-06T09:00:00.000Z"
    last_edit: str = "2025-02-03T14:20:00.000Z"

    @model_validator(mode="after")
    def _consistent(self) -> ScenarioSpec:
        flow = self.blueprint.get("flow")
        if not isinstance(flow, list) or not flow:
            raise ValueError("blueprint.flow must be a non-empty list of modules")
        ids: set[int] = set()
        for node in iter_modules(flow):
            if not isinstance(node, dict):
                raise ValueError("blueprint modules must be objects")
            if not isinstance(node.get("id"), int) or not isinstance(node.get("module"), str):
                raise ValueError("every blueprint module needs an integer id and a module key")
            if node["id"] in ids:
                raise ValueError(f"blueprint module id {node['id']} is used twice")
            ids.add(node["id"])
        kind = self.scheduling.get("type")
        if kind not in SCHEDULING_TYPES:
            known = ", ".join(sorted(SCHEDULING_TYPES))
            raise ValueError(f"scheduling.type must be one of {known}")
        if kind == "indefinitely":
            interval = self.scheduling.get("interval")
            if not isinstance(interval, int) or interval < 60:
                raise ValueError("scheduling.interval must be an integer of at least 60 seconds")
        if self.webhook is not None and kind != "immediately":
            raise ValueError("webhook needs scheduling.type 'immediately'")
        failing = self.profile.failing_module
        if failing is not None and failing not in ids:
            raise ValueError(f"profile.failing_module {failing} is not a module of the blueprint")
        return self


class OrganizationSpec(_Spec):
    id: int = 1
    name: str = "Acme Automation"
    zone: str = "eu1.make.com"
    api_limit: int = Field(60, ge=1, validation_alias=AliasChoices("api_limit", "apiLimit"))
    timezone_id: int = 113
    country_id: int = 1
    service_name: str = "core"


class TeamSpec(_Spec):
    id: int
    name: str


class UserSpec(_Spec):
    id: int = 1
    name: str = "Ada Maker"
    email: str = "ada@example.com"
    language: str = "en"
    timezone: str = "Europe/Prague"
    timezone_id: int = 113
    locale: str = "en"
    locale_id: int = 18
    country_id: int = 1


class WorldSpec(_Spec):
    """A whole simulated organization."""

    organization: OrganizationSpec = Field(default_factory=OrganizationSpec)
    teams: list[TeamSpec] = Field(default_factory=lambda: [TeamSpec(id=1, name="Operations")])
    user: UserSpec = Field(default_factory=UserSpec)
    tokens: list[str] = Field(default_factory=lambda: [DEMO_TOKEN])
    scenarios: list[ScenarioSpec] = Field(default_factory=list)
    # Seconds of simulated past: runs from this long before the zone started are already there.
    history: float = Field(0.0, ge=0)

    @model_validator(mode="after")
    def _references(self) -> WorldSpec:
        team_ids = {team.id for team in self.teams}
        seen: set[int] = set()
        for scenario in self.scenarios:
            if scenario.id in seen:
                raise ValueError(f"scenario id {scenario.id} is used twice")
            seen.add(scenario.id)
            if scenario.team_id not in team_ids:
                raise ValueError(f"scenario {scenario.id} names unknown team_id {scenario.team_id}")
        return self

    def with_api_limit(self, api_limit: int) -> WorldSpec:
        """A copy whose organization allows `api_limit` requests per minute."""
        org = self.organization.model_copy(update={"api_limit": api_limit})
        return self.model_copy(update={"organization": org})


def load_world(path: str | Path) -> WorldSpec:
    """Read a world from a `.toml` or `.json` file; any problem is a one-line ConfigError."""
    from makestream.files import read_text_capped
    from makestream.limits import WORLD_MAX_BYTES

    path = Path(path)
    try:
        # A regular file only, within WORLD_MAX_BYTES: `--world /dev/zero` is refused.
        text = read_text_capped(path, WORLD_MAX_BYTES, "world file", error=ConfigError)
    except FileNotFoundError:
        raise ConfigError(f"{path}: cannot read world file: No such file or directory") from None
    kind = "TOML" if path.suffix.lower() == ".toml" else "JSON"
    try:
        raw = tomllib.loads(text) if kind == "TOML" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: not valid {kind}: {exc}") from None
    except (RecursionError, ValueError):
        raise ConfigError(
            f"{path}: not valid {kind}: nested too deeply or a number too long"
        ) from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a world file must hold an object at the top level")
    try:
        return WorldSpec.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(part) for part in first["loc"]) or "(top level)"
        message = str(first["msg"]).removeprefix("Value error, ")
        raise ConfigError(f"{path}: {key}: {message}") from exc


def demo_world() -> WorldSpec:
    """The built-in demo organization: eight varied scenarios that keep something happening.

    At wall-clock speed (the demo's default) a run finishes every five seconds or so, mostly
    from the webhook scenario, with scheduled runs every one to three minutes; there is half an
    hour of history so watchers have durations to learn from. Runs are listed in the logs only
    once they end, as Make's conservative variant has it.
    """
    scenarios = [
        ScenarioSpec(
            id=101,
            name="Sync new orders to Google Sheets",
            team_id=1,
            folder_id=11,
            blueprint=blueprint(
                "Sync new orders to Google Sheets",
                [
                    module(1, "shopify:WatchOrders", version=3, parameters={"limit": 10}),
                    module(2, "json:ParseJSON", mapper={"json": "{{1.note_attributes}}"}),
                    module(3, "google-sheets:addRow", version=2,
                           mapper={"values": {"0": "{{1.id}}"}}),
                    module(4, "slack:CreateMessage", version=4, mapper={"text": "Order {{1.id}}"}),
                ],
            ),
            scheduling={"type": "indefinitely", "interval": 60},
            profile=Profile(duration_mean=6, duration_stddev=2, warning_rate=0.05,
                            error_rate=0.03, bundles=2, transfer=6144),
            custom_properties={"owner": "Ada"},
        ),
        ScenarioSpec(
            id=102,
            name="Route support emails",
            team_id=1,
            folder_id=12,
            blueprint=blueprint(
                "Route support emails",
                [
                    module(1, "email:TriggerNewEmail", version=7),
                    module(2, "builtin:BasicRouter", routes=[
                        [module(3, "slack:CreateMessage", version=4, filter_name="Urgent"),
                         module(4, "pagerduty:CreateIncident", version=2)],
                        [module(5, "google-sheets:addRow", version=2, filter_name="Billing")],
                        [module(6, "util:SetVariable2", filter_name="Everything else"),
                         module(7, "zendesk:CreateTicket", version=3)],
                    ]),
                ],
            ),
            scheduling={"type": "indefinitely", "interval": 90},
            profile=Profile(duration_mean=20, duration_stddev=6, warning_rate=0.05,
                            error_rate=0.05, filter_pass_rate=0.45, transfer=12288),
        ),
        ScenarioSpec(
            id=103,
            name="Push invoices to accounting",
            team_id=1,
            folder_id=11,
            blueprint=blueprint(
                "Push invoices to accounting",
                [
                    module(1, "google-sheets:watchRows", version=2),
                    module(2, "http:ActionSendData", version=3,
                           parameters={"url": "https://accounting.example.com/api/invoices"},
                           onerror=[module(5, "slack:CreateMessage", version=4,
                                           mapper={"text": "Invoice push failed: {{2.error}}"}),
                                    module(6, "builtin:Ignore")]),
                    module(3, "google-sheets:updateRow", version=2),
                    module(4, "gmail:ActionSendEmail", version=2),
                ],
            ),
            scheduling={"type": "indefinitely", "interval": 120},
            profile=Profile(duration_mean=9, duration_stddev=3, error_rate=0.3,
                            failing_module=2, transfer=4096),
        ),
        ScenarioSpec(
            id=104,
            name="Website form submissions",
            team_id=2,
            blueprint=blueprint(
                "Website form submissions",
                [
                    module(1, "gateway:CustomWebHook", parameters={"hook": 2104, "maxResults": 1},
                           listener=True),
                    module(2, "json:ParseJSON", mapper={"json": "{{1.payload}}"}),
                    module(3, "hubspotcrm:createContact", version=2),
                    module(4, "gateway:WebhookRespond", mapper={"status": "200"}),
                ],
                sequential=True,
                instant=True,
            ),
            scheduling={"type": "immediately"},
            webhook=WebhookSpec(rate_per_minute=6, queue_limit=10000, hook_id=2104,
                                name="Website form"),
            profile=Profile(duration_mean=6, duration_stddev=2, warning_rate=0.04,
                            error_rate=0.02, transfer=2048),
        ),
        ScenarioSpec(
            id=105,
            name="Import partner price list",
            team_id=2,
            blueprint=blueprint(
                "Import partner price list",
                [
                    module(1, "http:ActionGetFile", version=3,
                           parameters={"url": "https://partner.example.net/prices.csv"}),
                    module(2, "csv:ParseCSV"),
                    module(3, "airtable:ActionCreateRecord", version=3),
                ],
                max_errors=5,
            ),
            scheduling={"type": "indefinitely", "interval": 120},
            profile=Profile(duration_mean=12, duration_stddev=5, error_rate=0.35,
                            failing_module=1, bundles=3, transfer=20480),
        ),
        ScenarioSpec(
            id=106,
            name="Enrich new CRM contacts",
            team_id=2,
            blueprint=blueprint(
                "Enrich new CRM contacts",
                [
                    module(1, "hubspotcrm:watchContacts", version=2),
                    module(2, "clearbit:EnrichPerson"),
                    module(3, "hubspotcrm:updateContact", version=2),
                ],
                dlq=True,
            ),
            scheduling={"type": "indefinitely", "interval": 180},
            profile=Profile(duration_mean=7, duration_stddev=2, warning_rate=0.4,
                            error_rate=0.1, failing_module=2, bundles=2, transfer=3072),
        ),
        ScenarioSpec(
            id=107,
            name="Generate customer quote",
            team_id=1,
            blueprint=blueprint(
                "Generate customer quote",
                [
                    module(1, "google-docs:createADocumentFromTemplate", version=2),
                    module(2, "http:ActionSendData", version=3),
                    module(3, "scenario-service:ReturnData", version=2,
                           mapper={"quote": "{{1.documentId}}"}),
                ],
            ),
            scheduling={"type": "on-demand"},
            inputs=[
                InputSpec(name="customer", type="text", required=True),
                InputSpec(name="amount", type="number", required=True),
                InputSpec(name="currency", type="text", default="EUR"),
            ],
            outputs={"quote": "Q-{{customer}}", "currency": "{{currency}}", "status": "sent"},
            profile=Profile(duration_mean=4, duration_stddev=1, error_rate=0.05, transfer=1024),
        ),
        ScenarioSpec(
            id=108,
            name="Legacy Typeform intake (off)",
            team_id=2,
            blueprint=blueprint(
                "Legacy Typeform intake (off)",
                [
                    module(1, "gateway:CustomWebHook", parameters={"hook": 2108}, listener=True),
                    module(2, "google-sheets:addRow", version=2),
                ],
                instant=True,
            ),
            scheduling={"type": "immediately"},
            is_active=False,
            webhook=WebhookSpec(rate_per_minute=0.5, queue_limit=100, hook_id=2108,
                                name="Typeform"),
        ),
    ]
    return WorldSpec(
        teams=[TeamSpec(id=1, name="Operations"), TeamSpec(id=2, name="Growth")],
        scenarios=scenarios,
        history=1800,
    )


_DEFAULT_MIX: Mapping[str, float] = {"scheduled": 0.6, "webhook": 0.3, "on-demand": 0.1}
_APPS = ["http:ActionSendData", "json:ParseJSON", "google-sheets:addRow", "slack:CreateMessage",
         "airtable:ActionCreateRecord", "hubspotcrm:createContact", "util:SetVariable2",
         "gmail:ActionSendEmail", "notion:createDatabaseItem", "openai-gpt-3:CreateCompletion"]


def generated_world(
    n_scenarios: int,
    *,
    seed: int,
    api_limit: int = 60,
    mix: Mapping[str, float] | None = None,
) -> WorldSpec:
    """A benchmark world of `n_scenarios` scenarios, reproducible from `seed`.

    `mix` weights the kinds `scheduled` (every 60-900 s), `webhook` (Poisson arrivals) and
    `on-demand` (run only through the API).
    """
    weights = dict(mix or _DEFAULT_MIX)
    unknown = set(weights) - set(_DEFAULT_MIX)
    if unknown or not weights or sum(weights.values()) <= 0:
        raise ValueError(f"mix takes positive weights for {', '.join(_DEFAULT_MIX)}")
    rng = random.Random(f"generated-world/{seed}")
    n_teams = max(1, (n_scenarios + 249) // 250)
    kinds = list(weights)
    scenarios: list[ScenarioSpec] = []
    for index in range(n_scenarios):
        sid = 1000 + index
        kind = rng.choices(kinds, weights=[weights[k] for k in kinds])[0]
        name = f"Generated {kind} scenario {index + 1}"
        length = rng.randint(2, 5)
        if kind == "webhook":
            first = module(1, "gateway:CustomWebHook", parameters={"hook": sid}, listener=True)
        else:
            first = module(1, rng.choice(["google-sheets:watchRows", "http:ActionGetFile",
                                          "hubspotcrm:watchContacts"]))
        flow = [first] + [module(i, rng.choice(_APPS)) for i in range(2, length + 1)]
        mean = rng.choice([2.0, 5.0, 10.0, 30.0, 60.0])
        profile = Profile(
            duration_mean=mean,
            duration_stddev=mean / 4,
            warning_rate=round(rng.uniform(0, 0.08), 3),
            error_rate=round(rng.uniform(0, 0.06), 3),
            bundles=rng.randint(1, 3),
            transfer=rng.randint(256, 16384),
        )
        spec: dict[str, Any] = {
            "id": sid,
            "name": name,
            "team_id": 1 + index % n_teams,
            "blueprint": blueprint(name, flow, instant=kind == "webhook"),
            "profile": profile,
        }
        if kind == "scheduled":
            spec["scheduling"] = {"type": "indefinitely",
                                  "interval": rng.choice([60, 120, 300, 600, 900])}
        elif kind == "webhook":
            spec["scheduling"] = {"type": "immediately"}
            spec["webhook"] = WebhookSpec(rate_per_minute=round(rng.uniform(0.1, 2.0), 3),
                                          hook_id=sid)
        else:
            spec["scheduling"] = {"type": "on-demand"}
        scenarios.append(ScenarioSpec.model_validate(spec))
    return WorldSpec(
        organization=OrganizationSpec(api_limit=api_limit),
        teams=[TeamSpec(id=t, name=f"Team {t}") for t in range(1, n_teams + 1)],
        scenarios=scenarios,
    )
