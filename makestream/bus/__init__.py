"""Scale-out on Redis: what several `serve-sse` replicas share through one Redis server.

- `connect`: the `--bus` URL (``redis://HOST:PORT/DB``, ``rediss://`` with TLS), a password from
  a file, and a client with bounded timeouts.
- `ledger`: one request budget for every replica (`RedisLedger`, a `SharedLedger` for
  `makestream.make.budget.Budget`), counted by a Lua script on Redis's own clock.
- `lease`: who polls Make for a watched set (`Lease`: ``SET NX PX``, renewed and released only
  by its holder, with a fencing epoch that grows with every new holder).
- `log`: the events of a watched set in a Redis stream (`EventLog`: ``XADD`` with a bounded
  ``MAXLEN``, read from a position, followed with ``XREAD BLOCK``), with an epoch that changes
  when Redis lost the stream, so that a position from before the loss is never trusted.

Each module is a thin, typed layer over the commands it names; the decisions (who polls, what to
replay) are made by the server that uses them.
"""
