"""Small simulated worlds for engine and CLI tests."""

from __future__ import annotations

from makestream.sim.flows import blueprint, module
from makestream.sim.world import (
    OrganizationSpec,
    Profile,
    ScenarioSpec,
    TeamSpec,
    WebhookSpec,
    WorldSpec,
)


def chain(name: str, n: int = 3) -> dict[str, object]:
    return blueprint(name, [module(i, "http:ActionSendData") for i in range(1, n + 1)])


def outcome_world(api_limit: int = 60, duration: float = 5.0) -> WorldSpec:
    """Three on-demand scenarios that always succeed (201), warn (202) and fail (203)."""
    profiles = {
        201: Profile(duration_mean=duration, duration_stddev=0.0),
        202: Profile(duration_mean=duration, duration_stddev=0.0, warning_rate=1.0),
        203: Profile(duration_mean=duration, duration_stddev=0.0, error_rate=1.0),
    }
    return WorldSpec(
        organization=OrganizationSpec(api_limit=api_limit),
        teams=[TeamSpec(id=1, name="Ops")],
        scenarios=[
            ScenarioSpec(
                id=sid,
                name=f"Outcome {sid}",
                team_id=1,
                blueprint=chain(f"S{sid}"),
                scheduling={"type": "on-demand"},
                profile=profile,
            )
            for sid, profile in profiles.items()
        ],
    )


def busy_world(n: int = 20, *, rate_per_minute: float = 5.0, api_limit: int = 240) -> WorldSpec:
    """`n` webhook scenarios receiving `rate_per_minute` runs each, with mixed outcomes."""
    return WorldSpec(
        organization=OrganizationSpec(api_limit=api_limit),
        teams=[TeamSpec(id=1, name="Ops"), TeamSpec(id=2, name="Sales")],
        scenarios=[
            ScenarioSpec(
                id=300 + i,
                name=f"Busy {i}",
                team_id=1 + i % 2,
                blueprint=blueprint(
                    f"Busy {i}",
                    [
                        module(1, "gateway:CustomWebHook", listener=True),
                        module(2, "json:ParseJSON"),
                        module(3, "slack:CreateMessage"),
                    ],
                    instant=True,
                ),
                scheduling={"type": "immediately"},
                webhook=WebhookSpec(rate_per_minute=rate_per_minute, hook_id=300 + i, parallel=4),
                profile=Profile(
                    duration_mean=2.0 + i % 5 * 3,
                    duration_stddev=1.0,
                    warning_rate=0.1,
                    error_rate=0.1,
                ),
            )
            for i in range(n)
        ],
    )
