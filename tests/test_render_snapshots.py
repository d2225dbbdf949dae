"""Every event kind through the human renderers, compared with committed snapshots.

The sample stream (`tests/snapshots/sample.ndjson`) holds every event type. The live screen is
rendered at points where each kind of event shows (a throttle, a retrying error, alerts, a run
whose progress comes from modules), at 100 and 80 columns, without colour.
"""

from __future__ import annotations

import io
import re

import pytest
from snapshots import assert_snapshot, render_text, sample_events

from makestream.events import EVENT_TYPES
from makestream.make.models import Blueprint
from makestream.render.compact import CompactWriter, describe
from makestream.render.screen import screen
from makestream.render.summary import summary
from makestream.render.view import reduce

EVENTS = sample_events()
# (number of events applied, what the frame shows)
CUTS = [
    (7, "a run finished, nothing running"),
    (10, "a run in progress, budget from a heartbeat, throttled"),
    (14, "module results arrived"),
    (20, "alerts raised, a scenario stopped, the stream retrying"),
    (24, "an alert resolved, a run with module-based progress"),
    (len(EVENTS), "the stream closed"),
]
ROUTER = Blueprint.model_validate({"name": "Route support emails", "flow": [
    {"id": 1, "module": "email:TriggerNewEmail"},
    {"id": 2, "module": "builtin:BasicRouter", "routes": [
        {"flow": [{"id": 3, "module": "slack:CreateMessage", "filter": {"name": "Urgent"}},
                  {"id": 4, "module": "pagerduty:CreateIncident"}]},
        {"flow": [{"id": 5, "module": "google-sheets:addRow", "filter": {"name": "Billing"}}]},
    ]},
]})
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def test_the_sample_holds_every_event_type() -> None:
    kinds = {t.model_fields["type"].default for t in EVENT_TYPES}
    assert {e.type for e in EVENTS} == kinds


def frames(width: int, *, ascii_only: bool = False) -> str:
    parts = []
    for count, what in CUTS:
        state = reduce(EVENTS[:count])
        parts.append(f"=== after {count} events: {what} ===\n")
        parts.append(render_text(screen(state, width=width, height=30, ascii_only=ascii_only),
                                 width=width))
    return "".join(parts)


@pytest.mark.parametrize("width", [100, 80])
def test_live_screen_snapshots(width: int) -> None:
    assert_snapshot(f"screen_{width}", frames(width))


def test_live_screen_ascii_snapshot() -> None:
    text = frames(80, ascii_only=True)
    assert text.isascii()
    assert_snapshot("screen_80_ascii", text)


@pytest.mark.parametrize("width", [100, 80])
def test_summary_snapshots(width: int) -> None:
    assert_snapshot(f"summary_{width}", render_text(summary(reduce(EVENTS)), width=width))


def test_tall_terminal_shows_the_flow_of_the_scenario_in_focus() -> None:
    state = reduce(EVENTS[:14])
    text = render_text(screen(state, width=100, height=40, blueprints={102: ROUTER}), width=100)
    assert_snapshot("screen_100_flow", text)
    short = render_text(screen(state, width=100, height=39, blueprints={102: ROUTER}), width=100)
    assert "Flow" not in short


def test_screen_fits_the_width_it_is_given() -> None:
    state = reduce(EVENTS)
    for width in (60, 80, 120):
        text = render_text(screen(state, width=width, height=30), width=width)
        assert max(len(line) for line in text.splitlines()) <= width


def test_elapsed_time_and_eta_move_with_now_between_events() -> None:
    state = reduce(EVENTS[:21])  # run d3d94468 started at 10:00:58, expected 6 s
    assert state.now is not None
    early = render_text(screen(state, now=state.now + 1, width=100), width=100)
    late = render_text(screen(state, now=state.now + 30, width=100), width=100)
    assert "~50% 0:03 ETA ~0:03" in early
    assert "~99% 0:32 late 0:26" in late


def test_compact_lines_for_every_event_kind() -> None:
    out = io.StringIO()
    writer = CompactWriter(out)
    for event in EVENTS:
        writer.write(event)
    writer.close()
    assert_snapshot("compact", out.getvalue())


def test_compact_colour_wraps_the_same_text() -> None:
    plain, colour = io.StringIO(), io.StringIO()
    for event in EVENTS:
        CompactWriter(plain).write(event)
        CompactWriter(colour, color=True).write(event)
    assert "\x1b[" not in plain.getvalue()
    assert ANSI.sub("", colour.getvalue()) == plain.getvalue()
    lines = dict(zip([e.type for e in EVENTS], colour.getvalue().splitlines(), strict=True))
    finished = [line for line in colour.getvalue().splitlines() if "ops" in line]
    words = [line.split(" ", 1)[1].split("\x1b[0m")[0] for line in finished]
    assert words == ["\x1b[32msuccess", "\x1b[33mwarning", "\x1b[31merror"]
    alerts = [line for line in colour.getvalue().splitlines() if "ALERT" in line]
    assert ["\x1b[1;31mALERT" in line for line in alerts] == [True, False]  # critical, warning
    assert lines["stream.heartbeat"].startswith("\x1b[2m10:01:06\x1b[0m \x1b[2mbudget")


def test_describe_gives_each_event_kind_its_own_words() -> None:
    firsts = {event.type: describe(event).split()[0] for event in EVENTS}
    assert len(set(firsts.values())) == len(firsts) - 1  # finished statuses aside, all differ
    assert not any(word.startswith("stream.") for word in firsts.values())
