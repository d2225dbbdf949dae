"""serve-sse with the history store: the upstream's runs are stored, and a cursor the ring no
longer holds is answered from the store before Make's logs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from test_server import (
    Served,
    SseReader,
    _exactly_the_missed,
    _reconnect_case,
    _seq_grows,
    count_finished,
    finished_ids,
    sse_server,
)

from makestream.cli.store import Recorder
from makestream.engine.cursor import Cursor, Position
from makestream.store import StoreWriter, open_read, query
from makestream.store.replay import StoreReplay

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def stored_server(path: Path, **hub: Any) -> AsyncIterator[tuple[Served, StoreWriter]]:
    writer = StoreWriter(path, keep_s=1e9).start()
    try:
        async with sse_server(hub={"recorder": Recorder(writer),
                                   "stored": StoreReplay(path, writer), **hub}) as srv:
            yield srv, writer
    finally:
        writer.close()


async def _first_scans_done(srv: Served) -> None:
    # The store vouches for a scenario from its first scan on; the policy may put off the first
    # scan of a scenario that never runs, so wait for all of them.
    with anyio.fail_after(30):
        while srv.hub.watch is None or any(True for _ in srv.hub.watch.schedule.fresh()):  # noqa: ASYNC110
            await anyio.sleep(0.05)


async def test_past_the_ring_the_store_answers_without_make(tmp_path: Path) -> None:
    async with stored_server(tmp_path / "h.db", ring_size=3) as (srv, _writer):
        await _first_scans_done(srv)
        before, after, missed = await _reconnect_case(srv)
        _exactly_the_missed(srv, before, after, missed)
        assert srv.hub.stats.catchups == 1 and srv.hub.stats.store_replays == 1
    conn = open_read(tmp_path / "h.db")
    assert conn is not None
    stored = {r["execution_id"] for r in query.executions(conn, query.Selection())}
    assert set(before) | set(missed) <= stored


async def test_a_cursor_from_before_the_first_scans_goes_to_make(tmp_path: Path) -> None:
    async with stored_server(tmp_path / "h.db", ring_size=2) as (srv, _writer):
        async with srv.http().stream("GET", "/v1/events") as response:
            first = await SseReader(response).until(count_finished(1))
        # A position of this stream as it stood before any scan: floor 0, nothing delivered.
        seen = Cursor.decode(first[-1].data["cursor"])
        blank = {sid: Position(0) for sid in seen.positions}
        url = "/v1/events?cursor=" + Cursor(seen.stream, 1, blank).encode()
        async with srv.http().stream("GET", url) as response:
            events = await SseReader(response).until(count_finished(3))
        _seq_grows(events)
        ids = finished_ids(events)
        assert len(ids) == len(set(ids))
        # The positions of stream.opened owe runs from before the store covered them.
        assert srv.hub.stats.catchups == 1 and srv.hub.stats.store_replays == 0


async def test_trend_per_scenario_and_day_from_the_store(tmp_path: Path) -> None:
    async with stored_server(tmp_path / "h.db") as (srv, writer):
        async with srv.http().stream("GET", "/v1/events") as response:
            seen = finished_ids(await SseReader(response).until(count_finished(3)))
        assert writer.wait_stored(writer.mark(), 10)
        body = (await srv.http().get("/v1/trend?days=2")).json()
        assert body["available"] and body["days"] == 2
        runs = {s["scenario_id"]: sum(d["runs"] for d in s["days"]) for s in body["scenarios"]}
        assert sum(runs.values()) >= len(seen)
        day = body["scenarios"][0]["days"][0]
        assert day["start"].endswith("T00:00:00.000Z")
        assert day["runs"] == day["success"] + day["warning"] + day["error"]
        one = (await srv.http().get("/v1/trend?scenario=101")).json()
        assert [s["scenario_id"] for s in one["scenarios"]] in ([101], [])
        bad = await srv.http().get("/v1/trend?days=1000")
        assert bad.status_code == 400 and bad.json()["error"].startswith("days:")


async def test_trend_without_a_store_is_404() -> None:
    async with sse_server() as srv:
        response = await srv.http().get("/v1/trend")
        assert response.status_code == 404
        assert response.json() == {"error": "no history store (serve-sse runs with --no-store)"}
