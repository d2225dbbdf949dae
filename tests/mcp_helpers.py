"""An MCP server on an in-process simulated zone, with the SDK's own client connected to it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from mcp import Client
from mcp_types import CallToolResult

from makestream.clock import Clock
from makestream.make.budget import Budget
from makestream.make.client import ApiNotice, MakeClient, Token
from makestream.mcp.server import build_server
from makestream.mcp.service import Service, running
from makestream.sim import DEMO_TOKEN, SimZone
from makestream.sim.flows import blueprint, module
from makestream.sim.world import OrganizationSpec, Profile, ScenarioSpec, TeamSpec, WorldSpec
from makestream.store.paths import StoreChoice


@dataclass
class Served:
    client: Client
    zone: SimZone
    service: Service
    notices: list[ApiNotice] = field(default_factory=list)

    async def call(self, name: str, arguments: dict[str, Any] | None = None,
                   **kwargs: Any) -> CallToolResult:
        return await self.client.call_tool(name, arguments or {}, **kwargs)

    async def ok(self, name: str, arguments: dict[str, Any] | None = None,
                 **kwargs: Any) -> dict[str, Any]:
        """The structured result of a call that must succeed."""
        result = await self.call(name, arguments, **kwargs)
        assert not result.is_error, result.content
        assert result.structured_content is not None
        return result.structured_content


@asynccontextmanager
async def served(world: WorldSpec, config_path: Path, *, speed: float = 50.0,
                 token: str = DEMO_TOKEN, api_limit: int | None = None, mode: str = "auto",
                 seed: int = 1, store: StoreChoice | None = None,
                 **client_options: Any) -> AsyncIterator[Served]:
    zone = SimZone(world, clock=Clock(speed), seed=seed, running_in_logs=True)
    holder: list[Served] = []

    def observer(notice: ApiNotice) -> None:
        if holder:
            holder[0].notices.append(notice)
            holder[0].service.on_notice(notice)

    async with MakeClient(
        "http://sim.test/api/v2", Token(token), budget=Budget(api_limit or 60, clock=zone.clock),
        clock=zone.clock, transport=httpx.ASGITransport(app=zone.app), observer=observer,
    ) as make, running(make, zone, api_limit=api_limit, config_path=config_path,
                                store=store) as service, \
            Client(build_server(service), mode=mode, **client_options) as client:
        holder.append(Served(client, zone, service))
        yield holder[0]


def follow_world(duration: float = 30.0) -> WorldSpec:
    """Scenario 401 runs every minute for `duration` s (ten minutes of history, so that its
    progress has a percent); 402 runs on demand and fails at its second module."""
    chain = [module(1, "http:ActionSendData"), module(2, "json:ParseJSON"),
             module(3, "slack:CreateMessage")]
    return WorldSpec(
        organization=OrganizationSpec(api_limit=120),
        teams=[TeamSpec(id=1, name="Ops")],
        history=600,
        scenarios=[
            ScenarioSpec(id=401, name="Every minute", team_id=1, blueprint=blueprint("E", chain),
                         scheduling={"type": "indefinitely", "interval": 60},
                         profile=Profile(duration_mean=duration, duration_stddev=0.0)),
            ScenarioSpec(id=402, name="Fails", team_id=1, blueprint=blueprint("F", chain),
                         scheduling={"type": "on-demand"},
                         profile=Profile(duration_mean=5.0, duration_stddev=0.0,
                                         error_rate=1.0, failing_module=2)),
        ],
    )
