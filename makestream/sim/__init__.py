"""A simulated Make.com zone: Make's API v2 over a seeded world of scenarios and executions.

It is the test double, the engine of `makestream watch --demo`, and the benchmark workload:

    zone = SimZone(demo_world(), clock=Clock(speed=10), seed=1)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=zone.app),
                               base_url="http://sim/api/v2",
                               headers={"Authorization": f"Token {DEMO_TOKEN}"})

Modules: world.py (what the zone contains), zone.py (state, lazy generation, ground truth),
runs.py (one run's outcome), app.py and gate.py (HTTP), payloads.py (JSON shapes),
logbook.py (sorted logs and paging), faults.py (fault injection), serve.py (uvicorn).
"""

from makestream.sim.faults import Faults
from makestream.sim.world import (
    DEMO_TOKEN,
    ScenarioSpec,
    WorldSpec,
    demo_world,
    generated_world,
    load_world,
)
from makestream.sim.zone import LOG_TIMESTAMP, SimZone, TruthRecord

__all__ = [
    "DEMO_TOKEN",
    "LOG_TIMESTAMP",
    "Faults",
    "ScenarioSpec",
    "SimZone",
    "TruthRecord",
    "WorldSpec",
    "demo_world",
    "generated_world",
    "load_world",
]
