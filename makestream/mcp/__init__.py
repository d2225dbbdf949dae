"""The MCP face: makestream's engine as a Model Context Protocol server (`makestream mcp`).

`service` holds what every tool shares (one Make client, one request budget, the monitors);
`server` declares the tools and the resource; `follow` and `monitor` fold a watch's events into
what `stream_live_execution` and `get_execution_state` return; `models` are the tools' output
shapes; `http` serves Streamable HTTP with serve-sse's auth and Host rules.
"""

from makestream.mcp.server import build_server
from makestream.mcp.service import Service, open_service

__all__ = ["Service", "build_server", "open_service"]
