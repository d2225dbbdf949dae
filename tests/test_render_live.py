"""The live writer and the choice of writer: animation only on a terminal, no escape codes on a
pipe, colour by `--color` and NO_COLOR, and the summary left behind at close."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console
from snapshots import SAMPLE, assert_snapshot, render_text, sample_events

from makestream.render import output_for
from makestream.render.compact import CompactWriter
from makestream.render.console import make_console, wants_color
from makestream.render.live import LiveWriter
from makestream.render.ndjson import NdjsonWriter
from makestream.render.screen import screen
from makestream.render.summary import summary
from makestream.render.view import reduce

EVENTS = sample_events()


class Pipe(io.StringIO):
    """A text stdout that is not a terminal, with a binary side like sys.stdout."""

    def __init__(self) -> None:
        super().__init__()
        self.buffer = io.BytesIO()


class Terminal(Pipe):
    def isatty(self) -> bool:
        return True


class Ticks:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_on_a_pipe_nothing_is_drawn_until_close_then_final_view_and_summary() -> None:
    out = Pipe()
    writer = LiveWriter(make_console(out, "auto", width=100, height=30))
    for event in EVENTS:
        writer.write(event)
    assert out.getvalue() == ""
    writer.close()
    text = out.getvalue()
    assert "\x1b" not in text
    state = reduce(EVENTS)
    expected = (render_text(screen(state, width=100, height=30), width=100) + "\n"
                + render_text(summary(state), width=100))
    assert text == expected
    assert_snapshot("live_closed_100", text)


def test_close_twice_prints_once() -> None:
    out = Pipe()
    writer = LiveWriter(out, color="never")
    writer.write(EVENTS[0])
    writer.close()
    once = out.getvalue()
    writer.close()
    assert out.getvalue() == once


def test_on_a_terminal_the_view_animates_and_only_the_summary_stays() -> None:
    out = io.StringIO()
    console = Console(file=out, width=80, height=30, force_terminal=True, color_system=None,
                      legacy_windows=False, _environ={})
    ticks = Ticks()
    writer = LiveWriter(console, monotonic=ticks)
    assert writer.animate
    for event in EVENTS[:21]:
        writer.write(event)
    assert writer._live is not None and writer._live.is_started
    # Between events the picture keeps moving with the wall clock.
    ticks.now += 2
    assert writer.stream_now() == pytest.approx(reduce(EVENTS[:21]).now + 2)  # type: ignore[operator]
    assert "~67% 0:04 ETA ~0:02" in render_text(writer.frame(), width=80)
    writer.close()
    assert writer._live is None
    text = out.getvalue()
    assert "\x1b[?25l" in text  # the cursor was hidden while drawing ...
    assert "\x1b[?25h" in text  # ... and shown again
    tail = render_text(summary(reduce(EVENTS[:21])), width=80)
    assert text.endswith(tail)


def test_animation_can_be_turned_off_on_a_terminal() -> None:
    console = Console(file=io.StringIO(), width=80, force_terminal=True, _environ={})
    assert not LiveWriter(console, animate=False).animate
    assert not LiveWriter(Console(file=io.StringIO(), _environ={}), animate=True).animate


def test_blueprints_given_later_are_seen_by_the_view() -> None:
    from makestream.make.models import Blueprint

    blueprints: dict[int, Blueprint] = {}
    out = Pipe()
    writer = LiveWriter(make_console(out, "never", width=100, height=45), blueprints=blueprints)
    for event in EVENTS[:14]:
        writer.write(event)
    blueprints[102] = Blueprint.model_validate(
        {"name": "Route support emails", "flow": [{"id": 1, "module": "email:TriggerNewEmail"}]}
    )
    writer.close()
    assert "Flow · 102 Route support emails · run c9f0f895" in out.getvalue()


@pytest.mark.parametrize(
    ("format_", "stdout", "kind"),
    [
        ("auto", Pipe, NdjsonWriter),
        ("auto", Terminal, LiveWriter),
        ("ndjson", Terminal, NdjsonWriter),
        ("compact", Pipe, CompactWriter),
        ("pretty", Pipe, LiveWriter),
    ],
)
def test_output_for_picks_the_writer(format_: str, stdout: type[Pipe], kind: type) -> None:
    assert isinstance(output_for(format_, "auto", stdout()), kind)


def test_output_for_accepts_the_cli_enums() -> None:
    from makestream.cli.common import Color, Format

    writer = output_for(Format.compact, Color.always, Pipe())
    assert isinstance(writer, CompactWriter) and writer.color


def test_compact_and_pretty_on_a_pipe_write_no_escapes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("FORCE_COLOR", "1")  # rich alone would take this as a terminal
    for format_ in ("compact", "pretty"):
        out = Pipe()
        writer = output_for(format_, "auto", out)
        for event in EVENTS:
            writer.write(event)
        writer.close()
        assert out.getvalue() and "\x1b" not in out.getvalue(), format_


def test_colour_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("TERM", raising=False)
    assert wants_color("auto", Terminal())
    assert not wants_color("auto", Pipe())
    assert wants_color("always", Pipe())
    assert not wants_color("never", Terminal())
    assert not wants_color("auto", Terminal(), env={"NO_COLOR": "1"})
    assert wants_color("auto", Terminal(), env={"NO_COLOR": ""})  # empty means unset
    assert wants_color("always", Terminal(), env={"NO_COLOR": "1"})  # the flag wins
    assert not wants_color("auto", Terminal(), env={"TERM": "dumb"})
    with pytest.raises(ValueError, match="colour must be one of"):
        wants_color("sometimes", Pipe())


def test_consoles_follow_the_colour_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    tty_plain = make_console(Terminal(), "auto")
    assert tty_plain.is_terminal and tty_plain.color_system is None
    forced = make_console(Pipe(), "always")
    assert not forced.is_terminal and forced.color_system == "standard"


def test_colour_always_on_a_pipe_colours_the_view() -> None:
    out = Pipe()
    writer = LiveWriter(out, color="always")
    for event in EVENTS:
        writer.write(event)
    writer.close()
    assert "\x1b[32m✓ success" in out.getvalue()
    assert "\x1b[?25l" not in out.getvalue()  # colour, but no cursor movement on a pipe


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
def test_render_from_a_pipe_into_a_real_terminal_animates_and_leaves_the_summary() -> None:
    import fcntl
    import pty
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 90, 0, 0))
    env = {**os.environ, "TERM": "xterm-256color", "NO_COLOR": ""}
    proc = subprocess.Popen(
        [sys.executable, "-m", "makestream", "render", "-"], stdin=subprocess.PIPE,
        stdout=slave, stderr=slave, env=env, cwd=Path(__file__).parents[1],
    )
    os.close(slave)
    assert proc.stdin is not None
    proc.stdin.write(SAMPLE.read_bytes())
    proc.stdin.close()
    output = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        output += chunk
    os.close(master)
    assert proc.wait(timeout=30) == 0
    text = output.decode()
    assert "\x1b[?25l" in text and "\x1b[?25h" in text
    summary_at = text.rindex("Summary")
    assert "3 finished" in text[summary_at:]
    assert "Running" not in text[summary_at:]  # the live view was erased, the summary stays
