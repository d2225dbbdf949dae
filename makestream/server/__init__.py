"""`makestream serve-sse`: the event stream over HTTP, as Server-Sent Events, for many clients.

Modules: hub.py (one upstream watch fanned out to every subscriber, the replay ring, catch-up
from Make's logs), app.py (routes, auth, caps, CORS), sse.py (framing and the streaming
response), metrics.py (Prometheus), runner.py (uvicorn and a clean shutdown), static/ (the live
page). Used from Python::

    hub = Hub(client, HubOptions(WatchOptions(scenario_ids=[123])), metrics)
    app = create_app(hub, AppOptions(), metrics)
    async with anyio.create_task_group() as tg:
        tg.start_soon(hub.run)
        if (error := await hub.started()) is not None:
            raise error
        await serve(app, hub, bind("127.0.0.1", 8787), shutdown_timeout_s=15)
"""

from makestream.server.app import AppOptions, create_app
from makestream.server.hub import Filter, Hub, HubOptions, Subscription
from makestream.server.metrics import Metrics
from makestream.server.runner import ConnectionLimits, bind, is_loopback, serve

__all__ = [
    "AppOptions",
    "ConnectionLimits",
    "Filter",
    "Hub",
    "HubOptions",
    "Metrics",
    "Subscription",
    "bind",
    "create_app",
    "is_loopback",
    "serve",
]
