"""Serving a SimZone over TCP with uvicorn (`makestream sim serve`).

Clients then use `MAKE_API_URL=http://HOST:PORT/api/v2`. The zone's clock runs in this process; a
`--speed` above 1 makes simulated time pass faster for every client alike.
"""

from __future__ import annotations

import logging

import anyio
import uvicorn

from makestream.sim.faults import DroppedConnection
from makestream.sim.zone import SimZone


class _QuietDrops(logging.Filter):
    """Keep injected dropped connections out of uvicorn's error log: they are on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], DroppedConnection))


def _server(zone: SimZone, host: str, port: int) -> uvicorn.Server:
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _QuietDrops) for f in logger.filters):
        logger.addFilter(_QuietDrops())
    config = uvicorn.Config(zone.app, host=host, port=port, log_level="warning", access_log=False)
    return uvicorn.Server(config)


async def serve_async(zone: SimZone, host: str, port: int) -> None:
    """Serve `zone` on `host:port` inside a running event loop, until cancelled or signalled."""
    await _server(zone, host, port).serve()


def serve(zone: SimZone, host: str, port: int) -> None:
    """Serve `zone` on `host:port` until interrupted (uvicorn, log level warning)."""
    anyio.run(serve_async, zone, host, port)
