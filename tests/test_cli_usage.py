"""Usage errors are one line in makestream's words; help shows arguments the Unix way."""

from __future__ import annotations

import sys

import pytest
import typer
from typer._click.core import Context
from typer.core import TyperGroup

from makestream.cli import main
from makestream.cli.root import app


def run_main(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["makestream", *args])
    with pytest.raises(SystemExit) as ended:
        main()
    code = ended.value.code
    return (code if isinstance(code, int) else 0), capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["watch", "--format", "json"],
            "--format: 'json' is not one of: auto, ndjson, pretty, compact",
        ),
        (["watch", "--count", "x"], "--count: expects a whole number"),
        (["watch", "--count", "0"], "--count: must be at least 1"),
        (["state", "--last", "500"], "--last: must be at most 200"),
        (["watch", "abc"], "SCENARIO: expects a whole number"),
        (["flow"], "makestream flow: missing SCENARIO"),
        (["watch", "--no-such-flag"], "No such option: --no-such-flag"),
        (["no-such-command"], "No such command 'no-such-command'"),
    ],
)
def test_a_usage_error_is_one_line_naming_the_problem(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    expected: str,
) -> None:
    code, err = run_main(monkeypatch, capsys, *args)
    assert code == 2
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("makestream: error: ")
    assert expected in lines[0]
    for library_words in ("Input should", "Value error", "Usage:", "Traceback", "<int"):
        assert library_words not in err


def test_a_bare_group_shows_its_help(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # `makestream sim` with no subcommand: the parser's help, not a one-line error.
    monkeypatch.setattr(sys, "argv", ["makestream", "sim"])
    with pytest.raises(SystemExit) as ended:
        main()
    assert ended.value.code == 2
    shown = capsys.readouterr()
    assert "Usage: makestream sim" in shown.out + shown.err
    assert "makestream: error:" not in shown.err


def _commands() -> list[tuple[str, list[str], list[str]]]:
    """(path, usage pieces, help-record names) for every command and subcommand."""
    found: list[tuple[str, list[str], list[str]]] = []

    def walk(
        command: typer.core.TyperCommand | TyperGroup, path: list[str], parent: Context | None
    ) -> None:
        ctx = Context(command, info_name=path[-1], parent=parent)
        names = [rec[0] for p in command.params if (rec := p.get_help_record(ctx))]
        found.append((" ".join(path), command.collect_usage_pieces(ctx), names))
        if isinstance(command, TyperGroup):
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                assert sub is not None
                walk(sub, [*path, name], ctx)  # type: ignore[arg-type]

    walk(typer.main.get_command(app), ["makestream"], None)  # type: ignore[arg-type]
    return found


def test_help_names_values_in_words_not_python_types() -> None:
    commands = _commands()
    assert len(commands) > 10
    for path, usage, names in commands:
        line = " ".join(usage)
        assert "[[" not in line and "{" not in line, (path, line)
        for name in names:
            # Choices (<auto|ndjson|…>) are words; a Python type (<int>, <list[int]>) is not.
            for python_type in ("<int", "<str", "<float", "<file", "<list", "<path", "range>"):
                assert python_type not in name, (path, name)
    watch = next(usage for path, usage, _ in commands if path == "makestream watch")
    assert "[SCENARIO]..." in watch
