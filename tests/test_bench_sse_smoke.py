"""The SSE benchmarks' own machinery: correctness only, never timings.

The raw load client (chunked HTTP/1.1 + SSE blocks) against a scripted socket server, the
constants the benchmark copies from the simulator, the soak's per-client check on made-up
streams, and one tiny fan-out run against real `sim serve` + `serve-sse` subprocesses.
"""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import soak, sse  # noqa: E402


def test_constants_match_the_simulator() -> None:
    from makestream.sim import DEMO_TOKEN, demo_world

    assert sse.DEMO_TOKEN == DEMO_TOKEN
    assert tuple(s.id for s in demo_world().scenarios) == sse.DEMO_SCENARIOS


def test_soak_faults_are_ten_percent() -> None:
    from makestream.sim import Faults

    assert Faults.parse(soak.FAULTS).total_rate() == pytest.approx(0.10)


@pytest.mark.timeout(20)
def test_raw_client_decodes_chunks_split_anywhere() -> None:
    frames = [b"retry: 3000\n\n", b"id: c1\nevent: a.b\ndata: {\"x\":1}\n\n", b": ping\n\n",
              b"id: c2\nevent: a.b\ndata: {\"x\":2}\n\n",
              b"event: stream.lagged\ndata: {}\n\n"]
    body = b"".join(b"%x\r\n%s\r\n" % (len(f), f) for f in frames) + b"0\r\n\r\n"
    wire = (b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n" + body)

    async def main() -> tuple[list[bytes], str | None, bytes]:
        request = b""

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal request
            request = await reader.readuntil(b"\r\n\r\n")
            for i in range(0, len(wire), 7):  # split inside chunk sizes, CRLFs and blocks
                writer.write(wire[i:i + 7])
                await writer.drain()
                await asyncio.sleep(0)
            writer.close()
            await writer.wait_closed()

        server = await asyncio.start_server(handle, sse.HOST, 0)
        port = server.sockets[0].getsockname()[1]
        blocks: list[bytes] = []
        conn = sse.SseConnection(lambda block, now: blocks.append(block))
        assert await conn.open(port, "/v1/events", "c0") == 200
        await conn.read()
        conn.abort()
        server.close()
        await server.wait_closed()
        return blocks, conn.end, request

    blocks, end, request = asyncio.run(main())
    assert end == "eof"
    assert blocks == [f[:-2] for f in frames]
    assert b"Last-Event-ID: c0\r\n" in request and b"Accept: text/event-stream" in request
    assert sse.block_fields(blocks[1]) == (b"c1", b"a.b", b"{\"x\":1}")


def test_soak_check_counts_lost_and_duplicated_from_the_first_head_on() -> None:
    ref = soak.Client("reference", "/v1/events")
    ref.order = [("a", 10.0), ("b", 20.0), ("c", 30.0), ("d", 40.0)]
    ref.finished = Counter({"a": 1, "b": 1, "c": 1, "d": 1})
    c = soak.Client("c", "/v1/events", first_head_at=15.0)
    c.finished = Counter({"b": 1, "c": 2})
    row = soak.check_client(c, ref, end_cut=45.0)
    assert (row["expected"], row["lost"], row["duplicated"]) == (3, 1, 1)
    assert row["lost_ids"] == ["d"] and row["not in reference"] == 0


@pytest.mark.timeout(120)
def test_tiny_fan_out_against_real_processes() -> None:
    plan = sse.Plan(sizes=(3,), speed=30.0, window_s=4.0, settle_s=0.5, workers=1)
    run = sse.measure(3, plan)
    assert run["present"] == 3
    assert run["events"] > 0 and run["missing"] == 0 and run["duplicated"] == 0
    assert sum(run["requests"].values()) > 0
    assert run["rss0_kb"] > 0
