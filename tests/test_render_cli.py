"""`makestream render`: a saved stream shown again, bad lines named by number, the NDJSON path."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from snapshots import SAMPLE, render_text, sample_events
from typer.testing import CliRunner

from makestream.cli import app
from makestream.errors import UsageError
from makestream.events import encode
from makestream.render.replay import FLUSH_AT, iter_lines, paced, reemit
from makestream.render.screen import screen
from makestream.render.summary import summary
from makestream.render.view import reduce

ENV = {"COLUMNS": "100", "LINES": "30", "NO_COLOR": "", "TERM": "xterm"}


def invoke(*args: str, stdin: bytes | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["render", *args], input=stdin, env=ENV)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def bad_file(tmp_path: Path) -> Path:
    lines = SAMPLE.read_bytes().splitlines(keepends=True)
    lines.insert(4, b'{"v":1,"type":"execution.finished","seq":5}\n')  # no status: line 5
    lines.insert(7, b"not json\n")  # line 8
    path = tmp_path / "bad.ndjson"
    path.write_bytes(b"".join(lines))
    return path


def test_render_of_a_file_reproduces_the_view_and_ends_with_the_summary() -> None:
    code, out, err = invoke(str(SAMPLE))
    assert (code, err) == (0, "")
    state = reduce(sample_events())
    assert out == (render_text(screen(state, width=100, height=30), width=100, height=30)
                   + "\n" + render_text(summary(state), width=100))


def test_render_reads_stdin() -> None:
    code, out, _ = invoke("-", stdin=SAMPLE.read_bytes())
    assert code == 0
    assert out == invoke(str(SAMPLE))[1]


def test_compact_format_prints_one_line_per_event() -> None:
    code, out, _ = invoke("--format", "compact", str(SAMPLE))
    assert code == 0
    assert len(out.splitlines()) == len(sample_events())
    assert "\x1b" not in out
    code, coloured, _ = invoke("--format", "compact", "--color", "always", str(SAMPLE))
    assert "\x1b[32msuccess" in coloured


def test_ndjson_format_re_emits_the_same_events() -> None:
    code, out, _ = invoke("--format", "ndjson", str(SAMPLE))
    assert code == 0
    assert out.encode() == SAMPLE.read_bytes()


def test_a_bad_line_is_named_by_number_and_exits_2(bad_file: Path) -> None:
    for format_ in ("pretty", "compact", "ndjson"):
        code, _, err = invoke("--format", format_, str(bad_file))
        assert code == 2, format_
        assert err == f"makestream: error: {bad_file}:5: invalid event: status: Field required\n"


def test_skip_invalid_goes_on_past_bad_lines(bad_file: Path) -> None:
    code, out, err = invoke("--skip-invalid", "--format", "compact", str(bad_file))
    assert (code, err) == (0, "")
    assert len(out.splitlines()) == len(sample_events())
    code, out, _ = invoke("--skip-invalid", "--format", "ndjson", str(bad_file))
    assert out.encode() == SAMPLE.read_bytes()


def test_stdin_errors_name_stdin() -> None:
    code, _, err = invoke("--format", "ndjson", stdin=b'{"v":1}\n')
    assert code == 2
    assert err.startswith(
        "makestream: error: <stdin>:1: invalid event: type: missing or not a string"
    )


def test_events_of_unknown_types_are_skipped_silently() -> None:
    future = b'{"v":1,"type":"execution.paused","seq":9}\n'
    first = SAMPLE.read_bytes().split(b"\n")[0]
    for format_ in ("compact", "ndjson"):
        code, out, err = invoke("--format", format_, stdin=future + first)
        assert (code, err) == (0, ""), format_
        assert "paused" not in out


def test_a_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    code, _, err = invoke(str(tmp_path / "nope.ndjson"))
    assert code == 2
    assert err == f"makestream: error: {tmp_path / 'nope.ndjson'}: cannot read " \
                  "(No such file or directory)\n"


def test_an_empty_stream_still_shows_a_view() -> None:
    code, out, _ = invoke(stdin=b"")
    assert code == 0
    assert "waiting for executions" in out and "Summary · 0 finished" in out


def test_replay_paces_events_by_their_time_stamps() -> None:
    waits: list[float] = []
    events = sample_events()[:8]
    assert list(paced(events, speed=2, sleep=waits.append)) == events
    # 10:00:00.4, .5, .6, 02, 04, 08, 10 → gaps halved, the first event waits for nothing
    assert waits == pytest.approx([0.2, 0.05, 0.05, 0.7, 1.0, 2.0, 1.0])
    long_gap: list[float] = []
    list(paced([events[0], sample_events()[-1]], speed=1, sleep=long_gap.append))
    assert long_gap == [5.0]  # a 66 s gap is shortened


def test_reemit_splits_lines_across_chunks_and_batches_its_writes() -> None:
    data = SAMPLE.read_bytes() * 200

    class Out(io.BytesIO):
        flushes = 0

        def flush(self) -> None:
            self.flushes += 1

    out = Out()
    count = reemit(io.BytesIO(data), out, chunk_size=1000)
    assert count == 200 * len(sample_events())
    assert out.getvalue() == data
    # Flushed after each chunk read (1000 bytes), never after each of the 5400 events.
    assert out.flushes < len(data) // 1000 + 3
    tty = Out()
    reemit(io.BytesIO(SAMPLE.read_bytes()), tty, flush_each=True)
    assert tty.flushes >= len(sample_events())


def test_reemit_flushes_every_64kb_within_a_big_chunk() -> None:
    data = SAMPLE.read_bytes() * 100
    writes: list[int] = []

    class Out(io.BytesIO):
        def write(self, b: bytes) -> int:  # type: ignore[override]
            writes.append(len(b))
            return super().write(b)

    reemit(io.BytesIO(data), Out())
    assert len(writes) > 1 and max(writes[:-1]) < FLUSH_AT + 1024


def test_reemit_normalises_what_it_validates() -> None:
    line = b'{"type":"stream.heartbeat","seq":"3","ts":"2026-11-26T10:00:00.000Z","running":1,' \
           b'"used_last_minute":null}'
    out = io.BytesIO()
    reemit(io.BytesIO(line), out)  # no final newline either
    assert out.getvalue() == b'{"v":1,"type":"stream.heartbeat","seq":3,"ts":' \
                             b'"2026-11-26T10:00:00.000Z","running":1}\n'


def test_reemit_error_numbers_count_blank_lines() -> None:
    data = encode(sample_events()[0]) + b"\n\n{}\n"
    with pytest.raises(UsageError, match=r"^f.ndjson:4: invalid event"):
        reemit(io.BytesIO(data), io.BytesIO(), source="f.ndjson")


def test_iter_lines_keeps_a_last_line_without_newline() -> None:
    assert list(iter_lines(io.BytesIO(b"a\nbb\nccc"), chunk_size=2)) == [b"a", b"bb", b"ccc"]


def test_pretty_on_a_pipe_without_lines_shows_every_kept_run(tmp_path: Path) -> None:
    # A pipe has no height: the final view must not be cut to fit rich's assumed 25 lines.
    from makestream.events import ExecutionFinished, StreamOpened

    events = [StreamOpened(seq=1, ts="2026-12-01T10:00:00.000Z", api_limit=60,
                           budget_per_min=48, version="0")]
    for n in range(12):
        events.append(ExecutionFinished(
            seq=n + 2, ts=f"2026-12-01T10:{n + 1:02d}:00.000Z", scenario_id=100 + n,
            execution_id=f"run{n:02d}abcdef", status="success", duration_ms=1000,
            scenario_name=f"Scenario number {n}"))
    path = tmp_path / "many.ndjson"
    path.write_bytes(b"".join(encode(e) for e in events))
    env: dict[str, str | None] = {**ENV, "LINES": None}  # unset, even if the caller's shell sets it
    result = CliRunner().invoke(app, ["render", str(path)], env=env)
    assert result.exit_code == 0, result.stderr
    frame = result.stdout.split("Summary")[0] if "Summary" in result.stdout else result.stdout
    shown = [n for n in range(12) if f"Scenario number {n}" in frame]
    assert shown == list(range(12))
