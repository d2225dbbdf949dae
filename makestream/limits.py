"""Every cap on a size or a wait that comes from outside, in one place.

makestream reads cursors from HTTP clients and files, payloads from Make, files named on the
command line and NDJSON on stdin. Each of those has a limit here, so that no input can make it
hold unbounded memory or time. Going over a cap is a clear one-line error: exit 2 for what the
user gave (a file, a flag, a cursor), 400/431 from serve-sse, a payload error (exit 6) for Make.
The README's "Limits" section lists them; keep the two in step.
"""

from __future__ import annotations

KiB = 1024
MiB = 1024 * KiB

# -- cursors ------------------------------------------------------------------------------------
# A cursor as text (an SSE Last-Event-ID, --resume, --cursor-file). A team of a few hundred
# scenarios with a full look-back window stays well under this.
CURSOR_MAX_CHARS = 64 * KiB
# What a cursor's compressed body may inflate to, and how many execution ids it may list.
CURSOR_MAX_INFLATED = 1 * MiB
CURSOR_MAX_IDS = 100_000

# -- files the CLI reads ------------------------------------------------------------------------
CONFIG_MAX_BYTES = 1 * MiB  # config.toml
DATA_MAX_BYTES = 5 * MiB  # --data @FILE (Make caps a run's inputs well below this)
TOKEN_MAX_BYTES = 64 * KiB  # --token-file, MAKE_API_TOKEN_FILE, --alertmanager-auth-file
# --alertmanager-ca: Debian's whole system bundle (about 150 certificates) is some 200 KiB.
CA_BUNDLE_MAX_BYTES = 1 * MiB
WORLD_MAX_BYTES = 16 * MiB  # sim --world
CURSOR_FILE_MAX_BYTES = CURSOR_MAX_CHARS + 1 * KiB  # --cursor-file (one cursor and a newline)
NDJSON_LINE_MAX_BYTES = 16 * MiB  # one line of `render`'s input

# -- Make's answers -----------------------------------------------------------------------------
RESPONSE_MAX_BYTES = 32 * MiB  # one response body from Make's API (after decompression)
ERROR_BODY_MAX_BYTES = 64 * KiB  # what is read of an error answer's body (the rest is dropped)
JSON_MAX_DEPTH = 64  # nesting of a Make payload (or of --data) that makestream walks
RETRY_AFTER_MAX_S = 120.0  # a longer Retry-After is cut to this, and the event says so
# Integers in Make's payloads (ids, counters, durations): JSON's exact integer range, 0..2**53.
MAKE_INT_MAX = 2**53
MAKE_DURATION_MAX_MS = 366 * 24 * 3600 * 1000  # a run's duration: a year (Make stops at 40 min)
MAKE_YEAR_MIN, MAKE_YEAR_MAX = 1970, 9000  # a payload's timestamps, so date arithmetic stays valid

# -- serve-sse ----------------------------------------------------------------------------------
HEADERS_MAX_BYTES = 96 * KiB  # a request's line and headers together (room for one cursor)
HEADERS_TIMEOUT_S = 10.0  # to send a whole request head
IDLE_TIMEOUT_S = 30.0  # a kept-alive connection with no request in flight
# Pending connections the listening socket holds: room for thousands of subscribers reconnecting
# at once after a restart (the kernel caps it at net.core.somaxconn anyway).
BACKLOG = 4096
FILTER_MAX_IDS = 100  # scenario ids in one request's ?scenario= (each at most MAKE_INT_MAX)

# -- mcp ----------------------------------------------------------------------------------------
# Monitors open at once in one process: each is a watch (a few MB, bench/README.md), and every
# one shares the one request budget, so past a hundred each would learn little.
MCP_MONITORS_MAX = 100
# A monitor nobody reads (get_execution_state, its resource) for this long is stopped: an
# assistant that went away must not leave it polling Make (`makestream mcp --monitor-idle`).
MCP_MONITOR_IDLE_S = 30 * 60.0
# Resources one session may subscribe to with `resources/subscribe` (monitors' states only).
MCP_SUBSCRIPTIONS_MAX = MCP_MONITORS_MAX
MCP_SCENARIOS_MAX = 1000  # scenario ids one tool call may name
# Runs and alerts a monitor keeps for the next get_execution_state; past this the oldest go
# (and the state says how many): a client that never asks must not grow the server.
MCP_BACKLOG_MAX = 1000
MCP_RECENT_RUNS = 20  # finished runs the monitor's resource lists
MCP_FOLLOW_MAX_S = 600.0  # stream_live_execution's timeout_s, at most
# `data` for a run (`stream_live_execution(run=true, data=...)`): as --data @FILE.
MCP_DATA_MAX_BYTES = DATA_MAX_BYTES
# A request body of `makestream mcp --http` (413 beyond; Content-Length and the bytes streamed
# alike): room for the largest `data` and the rest of one request.
MCP_HTTP_BODY_MAX_BYTES = MCP_DATA_MAX_BYTES + 1 * MiB

# The fastest clock the CLI accepts (`--speed`, MAKESTREAM_CLOCK): past a few thousand, one
# real millisecond is seconds of clock, and timers due together swamp the event loop.
SPEED_MAX = 1000.0
