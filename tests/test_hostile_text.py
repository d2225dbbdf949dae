"""Hostile text from Make, end to end: a simulated scenario whose name, module name and error
message carry terminal control sequences (a title change, a screen clear, an OSC 8 hyperlink,
C1 controls, a bidi override). Every human output shows them as visible escapes and obeys none;
NDJSON and JSON keep the original text, escaped. Also: `render` never holds an over-long line.
"""

from __future__ import annotations

import io
import json
import re
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import anyio
import orjson
import pytest
from rich.console import Console
from rich.text import Text
from typer.testing import CliRunner

import makestream.sim as sim
import makestream.sim.runs as sim_runs
from makestream.cli import app
from makestream.cli.common import Connection, open_client, run, say
from makestream.errors import MonitorError, UsageError
from makestream.events import decode
from makestream.limits import NDJSON_LINE_MAX_BYTES
from makestream.make.models import Blueprint
from makestream.render.console import Sanitized
from makestream.render.live import LiveWriter
from makestream.render.replay import iter_lines, reemit
from makestream.sim.flows import blueprint, module
from makestream.sim.world import Profile, ScenarioSpec, TeamSpec, WorldSpec

SCENARIO = 901
# Retitles the window, rings the bell and clears the screen; then a bidi override and a C1 NEL,
# which JSON encoders leave raw.
NAME = "x\x1b]0;pwned\x07\x1b[2J\u202eevil\x85"
# An API's answer quoted by Make: an OSC 8 hyperlink, a bidi override, 8-bit CSI and NEL.
ERROR = "upstream: \x1b]8;;http://evil\x1b\\CLICK\x1b]8;;\x1b\\ \u202egnp.exe \x9b2J\x85 done"
MODULE = "Send \x1b[31mred\x1b[0m\u2066"  # a designer name, shown as the cause of the error
FILTER = "only \x1b]0;t\x07 these"

NAME_SHOWN = "x\\x1b]0;pwned\\x07\\x1b[2J\\u202eevil\\x85"
ERROR_SHOWN = "upstream: \\x1b]8;;http://evil\\x1b\\CLICK"

# Our own list, independent of makestream.safetext: C0 but newline, DEL, C1, bidi, invisible.
UNSAFE = re.compile(
    "[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f"
    "\ufeff]"
)
SGR = re.compile("\x1b\\[[0-9;]*m")
FAST = ["--speed", "1000"]
ENV = {"COLUMNS": "120", "LINES": "50", "NO_COLOR": "", "TERM": "xterm"}


def hostile_world() -> WorldSpec:
    failing = module(3, "http:ActionSendData", filter_name=FILTER)
    failing["metadata"] = {"designer": {"name": MODULE}}
    return WorldSpec(
        teams=[TeamSpec(id=1, name="Ops")],
        history=1800,
        scenarios=[
            ScenarioSpec(
                id=SCENARIO,
                name=NAME,
                team_id=1,
                # max_errors: Make would stop a scenario failing every run; this one keeps going.
                blueprint=blueprint(
                    NAME,
                    [module(1, "json:ParseJSON"), module(2, "util:SetVariable2"), failing],
                    max_errors=1_000_000,
                ),
                scheduling={"type": "indefinitely", "interval": 60},
                profile=Profile(duration_mean=3, duration_stddev=0, error_rate=1.0,
                                failing_module=3, filter_pass_rate=1.0),
            )
        ],
    )


@pytest.fixture(autouse=True)
def hostile(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """`--demo` serves the hostile world, and its failing http module reports ERROR."""
    monkeypatch.setattr(sim, "demo_world", hostile_world)
    monkeypatch.setitem(sim_runs._APP_ERRORS, "http", ("ConnectionError", ERROR))
    monkeypatch.setenv("MAKESTREAM_CONFIG", str(tmp_path / "none.toml"))  # default thresholds


def invoke(args: list[str], stdin: bytes | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, args, input=stdin, env=ENV)
    return result.exit_code, result.stdout, result.stderr


def assert_safe(text: str, *, sgr: bool = False) -> None:
    """No control, C1, bidi or invisible character; with `sgr`, colour codes are allowed."""
    if sgr:
        text = SGR.sub("", text)
    found = sorted({f"U+{ord(c):04X}" for c in UNSAFE.findall(text)})
    assert not found, f"unsafe characters in the output: {found}"


def watch_ndjson() -> bytes:
    code, out, err = invoke(["watch", "--demo", str(SCENARIO), "--since", "3m", "--no-follow",
                             "--format", "ndjson", *FAST])
    assert code == 0, err
    return out.encode()


# -- watch -------------------------------------------------------------------------------------


def test_watch_compact_shows_escapes_and_obeys_nothing() -> None:
    code, out, err = invoke(["watch", "--demo", str(SCENARIO), "--since", "3m", "--no-follow",
                             "--format", "compact", *FAST])
    assert code == 0, err
    assert_safe(out + err)
    finished = [line for line in out.splitlines() if " error " in line]
    assert finished, out
    assert NAME_SHOWN in finished[0] and ERROR_SHOWN in finished[0]
    assert "\\u202egnp.exe \\x9b2J\\x85 done" in finished[0]
    assert "Send \\x1b[31mred\\x1b[0m\\u2066" in finished[0]  # the cause module
    assert any("ALERT" in line and NAME_SHOWN in line for line in out.splitlines())


def test_watch_compact_in_colour_has_only_its_own_colour_codes() -> None:
    code, out, err = invoke(["watch", "--demo", str(SCENARIO), "--since", "3m", "--no-follow",
                             "--format", "compact", "--color", "always", *FAST])
    assert code == 0, err
    assert "\x1b[" in out  # coloured
    assert_safe(out, sgr=True)
    assert NAME_SHOWN in SGR.sub("", out)


def test_watch_ndjson_keeps_the_original_text_and_no_raw_controls() -> None:
    data = watch_ndjson()
    text = data.decode()
    assert_safe(text)  # C0 as \u001b, C1 and bidi as \u0085-style escapes
    assert "\\u001b]0;pwned\\u0007" in text and "\\u202e" in text and "\\u009b" in text
    finished = [json.loads(line) for line in text.splitlines()
                if json.loads(line)["type"] == "execution.finished"]
    assert finished
    for event in finished:
        assert event["scenario_name"] == NAME
        assert event["error"]["message"] == ERROR
        assert event["error"]["cause_module"] == MODULE


def test_watch_pretty_on_a_pipe_leaves_a_clean_final_view() -> None:
    code, out, err = invoke(["watch", "--demo", str(SCENARIO), "--since", "3m", "--no-follow",
                             "--format", "pretty", *FAST])
    assert code == 0, err
    assert_safe(out + err)
    assert NAME_SHOWN in out and "Latest finished" in out and "Summary" in out


# -- render ------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["pretty", "compact"])
def test_render_of_a_saved_stream_shows_escapes(tmp_path: Path, fmt: str) -> None:
    saved = tmp_path / "run.ndjson"
    saved.write_bytes(watch_ndjson())
    code, out, err = invoke(["render", "--format", fmt, str(saved)])
    assert code == 0, err
    assert_safe(out + err)
    assert NAME_SHOWN in out and ERROR_SHOWN[:24] in out


def test_render_ndjson_round_trips_the_original_text(tmp_path: Path) -> None:
    data = watch_ndjson()
    code, out, err = invoke(["render", "--format", "ndjson"], stdin=data)
    assert code == 0, err
    assert_safe(out)
    assert [json.loads(line) for line in out.splitlines()] == [
        json.loads(line) for line in data.decode().splitlines()
    ]


def test_render_ndjson_escapes_raw_c1_and_separators_in_lines_it_passes_through() -> None:
    # Valid JSON may hold C1, U+2028 and bidi characters raw; orjson writes them so.
    note = "a\x85b\u2028c\u202ed\x7f"
    line = orjson.dumps({"v": 1, "type": "stream.heartbeat", "seq": 1, "ts": "", "cursor": "",
                         "running": 0, "note": note})
    assert b"\xc2\x85" in line  # the input really is raw
    out = io.BytesIO()
    assert reemit(io.BytesIO(line + b"\n"), out) == 1
    assert out.getvalue().count(b"\n") == 1
    assert_safe(out.getvalue().decode())
    assert json.loads(out.getvalue())["note"] == note


# -- one-shot commands ---------------------------------------------------------------------------


def test_state_is_json_with_the_original_name_and_no_raw_controls() -> None:
    code, out, err = invoke(["state", "--demo", str(SCENARIO), *FAST])
    assert code == 0, err
    assert_safe(out + err)
    assert json.loads(out)["scenarios"][0]["name"] == NAME


def test_flow_shows_every_blueprint_name_escaped() -> None:
    code, out, err = invoke(["flow", "--demo", str(SCENARIO), *FAST])
    assert code == 0, err
    assert_safe(out + err)
    lines = out.splitlines()
    assert lines[0] == f"{NAME_SHOWN} · scenario {SCENARIO}"
    assert "filter: only \\x1b]0;t\\x07 these" in out
    assert "Send \\x1b[31mred\\x1b[0m\\u2066" in out


def test_flow_in_colour_has_only_colour_codes() -> None:
    code, out, err = invoke(["flow", "--demo", str(SCENARIO), "--color", "always", *FAST])
    assert code == 0, err
    assert_safe(out, sgr=True)


@pytest.mark.parametrize("fmt", ["table", "json"])
def test_thresholds_test_prints_alerts_without_controls(fmt: str) -> None:
    code, out, err = invoke(["thresholds", "test", str(SCENARIO), "--demo", "--format", fmt,
                             *FAST])
    assert code == 0, err
    assert_safe(out + err)
    if fmt == "table":
        assert NAME_SHOWN in out
    else:
        messages = [json.loads(line)["message"] for line in out.splitlines()]
        assert messages and all(NAME in m for m in messages)


# -- the rich console, as on a terminal ----------------------------------------------------------


async def _blueprint() -> Blueprint:
    async with open_client(Connection(demo=True, speed=1000)) as (client, _zone):
        return await client.blueprint(SCENARIO)


@pytest.mark.parametrize("animate", [False, True])
def test_the_live_view_on_a_terminal_writes_no_control_sequence_of_makes(animate: bool) -> None:
    events = [decode(line) for line in watch_ndjson().splitlines()]
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, color_system="standard", width=110,
                      height=50, markup=False, emoji=False, highlight=False)
    # Tall enough for the flow diagram of the scenario in focus, with its designer names.
    writer = LiveWriter(console, blueprints={SCENARIO: anyio.run(_blueprint)}, animate=animate,
                        refresh_per_second=50)
    for event in events:
        writer.write(event)
    if animate:
        writer._live.refresh()  # type: ignore[union-attr]  # one frame for sure
    writer.close()
    text = out.getvalue()
    assert "\x1b]" not in text  # no OSC: title, hyperlink
    assert "\x1b[2J" not in text and "\x07" not in text
    # What is left once rich's own colour and cursor codes are taken out is plain text. (Live
    # moves the cursor with CSI sequences and carriage returns; the final view has colour only.)
    rest = re.sub("\x1b\\[[0-9;?]*[A-Za-z]|\r", "", text) if animate else SGR.sub("", text)
    assert_safe(rest)
    assert "\x1b[" in text  # coloured: the check above was not vacuous
    assert NAME_SHOWN in rest and "Send \\x1b[31mred" in rest


def test_sanitized_is_the_last_line_of_defence_for_text_nobody_cleaned() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, color_system="standard", width=40)
    console.print(Sanitized(Text("a\x1b]0;t\x07b\u202ec\x85d", style="red")))
    text = out.getvalue()
    assert SGR.sub("", text) == "a]0;tbcd\n"
    assert "\x1b[31m" in text  # rich's own styles pass


# -- stderr --------------------------------------------------------------------------------------


def test_an_error_quoting_make_is_one_clean_line_on_stderr(
    capsys: pytest.CaptureFixture[str],
) -> None:
    async def main() -> int:
        raise MonitorError(f"Make answered 400: {ERROR} for {NAME}")

    with pytest.raises(BaseException) as exit_info:
        run(main)
    assert getattr(exit_info.value, "exit_code", None) == 6
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("makestream: error: Make answered 400: ")
    assert_safe(err)
    # (MakestreamError folds whitespace, and Python counts NEL, \x85, as whitespace.)
    assert ERROR_SHOWN in err and "x\\x1b]0;pwned\\x07\\x1b[2J\\u202eevil" in err


def test_warning_lines_are_clean_and_capped(capsys: pytest.CaptureFixture[str]) -> None:
    say(f"warning: webhook said {ERROR}\n{'x' * 10_000}")
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and len(err) <= 2001
    assert_safe(err)
    assert ERROR_SHOWN in err and err.rstrip("\n").endswith("…")


# -- render's line cap -------------------------------------------------------------------------


def _event_line(seq: int) -> bytes:
    return orjson.dumps({"v": 1, "type": "stream.heartbeat", "seq": seq, "ts": "", "cursor": "",
                         "running": 0})


def _long_input() -> bytes:
    return b"\n".join([_event_line(1), b"x" * (NDJSON_LINE_MAX_BYTES + 1), _event_line(3), b""])


@pytest.mark.parametrize("fmt", ["ndjson", "compact", "pretty"])
def test_render_stops_at_an_over_long_line_with_exit_2_naming_it(fmt: str) -> None:
    code, _out, err = invoke(["render", "--format", fmt], stdin=_long_input())
    assert code == 2
    assert err == "makestream: error: <stdin>:2: line longer than 16 MiB, the limit\n"


@pytest.mark.parametrize("fmt", ["ndjson", "compact"])
def test_render_skips_an_over_long_line_with_skip_invalid(fmt: str) -> None:
    code, out, err = invoke(["render", "--format", fmt, "--skip-invalid"], stdin=_long_input())
    assert code == 0, err
    assert len(out.splitlines()) == 2  # the events of lines 1 and 3


class Endless(io.RawIOBase):
    """A stream of one line that never ends (`yes | tr -d '\\n'`), counting what was read."""

    def __init__(self, chunk: bytes = b"x" * 65536, then: bytes | None = None,
                 limit: int | None = None) -> None:
        self.chunk, self.then, self.limit = chunk, then, limit
        self.given = 0

    def readable(self) -> bool:
        return True

    def read1(self, size: int = -1) -> bytes:
        if self.limit is not None and self.given >= self.limit:
            then, self.then = self.then, None
            return then or b""
        self.given += len(self.chunk)
        return self.chunk


def test_an_endless_line_is_refused_as_soon_as_it_passes_the_cap() -> None:
    stream = Endless()
    with pytest.raises(UsageError, match=r"f.ndjson:1: line longer than 1 MiB, the limit"):
        list(iter_lines(stream, 65536, source="f.ndjson", max_line=1 << 20))  # type: ignore[arg-type]
    assert stream.given <= (1 << 20) + 65536  # it read just past the cap, not on and on
    stream = Endless()
    with pytest.raises(UsageError, match=r"<stdin>:1: line longer than 1 MiB"):
        reemit(stream, io.BytesIO(), chunk_size=65536, max_line=1 << 20)  # type: ignore[arg-type]


def _peak_while(lines: Iterator[bytes]) -> tuple[list[bytes], int]:
    tracemalloc.start()
    try:
        got = list(lines)
        return got, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_skipped_over_long_line_is_never_held_whole() -> None:
    cap = 1 << 20
    # 32 MiB of one line, then a newline and an event: 32 times the cap.
    stream = Endless(limit=32 * cap, then=b"\n" + _event_line(2) + b"\n")
    lines = iter_lines(stream, 65536, skip_invalid=True, max_line=cap)  # type: ignore[arg-type]
    got, peak = _peak_while(lines)
    assert got == [b"", _event_line(2)]  # the long line counted (empty), the next one kept
    assert peak < 2 * cap, f"held {peak} bytes"


def test_a_line_of_exactly_the_cap_is_fine() -> None:
    data = b"a" * 100 + b"\n" + b"b" * 101 + b"\nc"
    got = list(iter_lines(io.BytesIO(data), 7, skip_invalid=True, max_line=100))
    assert got == [b"a" * 100, b"", b"c"]
