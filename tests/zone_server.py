"""A simulated zone served over TCP from this process, for tests whose makestream runs in
subprocesses: every request's clock time is recorded, and the environment that points a
`makestream` process at the zone comes with it."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn
from starlette.types import Receive, Scope, Send
from test_cli_e2e import free_port

from makestream.sim import DEMO_TOKEN, SimZone


class Recorded:
    """The zone's app, noting the clock time of every request that reaches it."""

    def __init__(self, zone: SimZone) -> None:
        self.zone = zone
        self.times: list[float] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.times.append(self.zone.clock.now())
        await self.zone.app(scope, receive, send)


@contextmanager
def zone_served(zone: SimZone, tmp_path: Path) -> Iterator[tuple[Recorded, dict[str, str]]]:
    """Serve `zone` on a free loopback port; the recorder and the environment of a makestream
    process that watches it (on the zone's clock, with its own budget folder and store)."""
    app = Recorded(zone)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the zone did not start"
        time.sleep(0.02)
    env = {
        **os.environ,
        "MAKESTREAM_CLOCK": zone.clock.spec(),
        "MAKE_API_TOKEN": DEMO_TOKEN,
        "MAKE_API_URL": f"http://127.0.0.1:{port}/api/v2",
        "MAKESTREAM_BUDGET_DIR": str(tmp_path / "budget"),
        "MAKESTREAM_STORE": str(tmp_path / "store"),
    }
    for name in ("MAKE_ZONE", "MAKESTREAM_BUS"):
        env.pop(name, None)
    try:
        yield app, env
    finally:
        server.should_exit = True
        thread.join(timeout=10)
