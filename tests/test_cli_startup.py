"""What the command line imports: `--version` needs no Typer, completing a command name needs no
command module, and a command needs only its own.

Each case runs the console-script entry (`makestream.cli:main`) in a fresh interpreter and reads
`sys.modules` as it exits. (`python -X importtime` cannot tell: it does not see modules loaded
with `importlib.import_module`, as the command modules are.)
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from makestream import __version__
from makestream.cli import app
from makestream.cli.root import COMMANDS, LazyGroup

# Modules that take tens of milliseconds to import and that no quick answer needs.
HEAVY = ("pydantic", "pydantic_core", "httpx", "rich", "starlette", "anyio", "orjson", "uvicorn")
COMMAND_MODULES = {f"makestream.cli.{entry.module}" for entry in COMMANDS.values()}

PROBE = """
import sys
sys.argv[0] = "makestream"
try:
    from makestream.cli import main
    main()
finally:
    sys.stderr.write("\\n".join(["--- modules", *sorted(sys.modules)]))
"""


def run_main(*args: str, **env: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run `makestream ARGS...`; its result, and the modules loaded when it ended."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("_MAKESTREAM")}
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=60,
        check=False, env={**clean, **env},
    )
    _, _, listing = result.stderr.partition("--- modules\n")
    return result, set(listing.splitlines())


def loaded(modules: set[str], *packages: str) -> set[str]:
    return {m for m in modules if m.split(".")[0] in packages}


@pytest.mark.parametrize("flag", ["--version", "-V"])
def test_version_imports_neither_typer_nor_any_command(flag: str) -> None:
    result, modules = run_main(flag)
    assert (result.returncode, result.stdout) == (0, f"makestream {__version__}\n")
    assert not loaded(modules, "typer", *HEAVY)
    assert not {m for m in modules if m.startswith("makestream.cli.")}


def test_python_m_makestream_version() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "makestream", "--version"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert (result.returncode, result.stdout) == (0, f"makestream {__version__}\n")


def test_version_with_more_arguments_still_goes_through_typer() -> None:
    # `--version` is eager: it answers even with other arguments after it, as it always has.
    result, modules = run_main("--version", "watch")
    assert (result.returncode, result.stdout) == (0, f"makestream {__version__}\n")
    assert "typer" in modules


def test_completing_a_command_name_imports_no_command_module() -> None:
    result, modules = run_main(
        _MAKESTREAM_COMPLETE="complete_bash", COMP_WORDS="makestream wa", COMP_CWORD="1"
    )
    assert (result.returncode, result.stdout.split()) == (0, ["watch"])
    assert not modules & COMMAND_MODULES
    assert not loaded(modules, *HEAVY)


def test_help_lists_the_commands_without_importing_them() -> None:
    result, modules = run_main("--help")
    assert result.returncode == 0
    rows = result.stdout.split("Commands:\n", 1)[1].splitlines()
    # A row is "  NAME  SUMMARY"; a summary too long for the line goes on, indented further.
    assert [row.split()[0] for row in rows if row[2:3].strip()] == list(COMMANDS)
    assert not modules & COMMAND_MODULES
    assert not loaded(modules, *HEAVY)


@pytest.mark.parametrize(
    ("args", "module"),
    [
        (["watch", "--help"], "makestream.cli.watch"),
        (["serve-sse", "--help"], "makestream.cli.serve"),
        (["thresholds", "set", "--help"], "makestream.cli.thresholds"),
        (["sim", "serve", "--help"], "makestream.cli.sim"),
    ],
)
def test_a_command_imports_only_its_own_module(args: list[str], module: str) -> None:
    result, modules = run_main(*args)
    assert result.returncode == 0, result.stderr
    assert modules & COMMAND_MODULES == {module}


def test_the_table_agrees_with_the_commands() -> None:
    # `--help` and completion show the table's summaries; the commands' own help must match.
    import typer.main
    from typer import _click
    from typer.core import TyperGroup

    root = typer.main.get_command(app)
    assert isinstance(root, LazyGroup)
    ctx = _click.Context(root, info_name="makestream")
    for name, entry in COMMANDS.items():
        command = root.get_command(ctx, name)
        assert command is not None and command.name == name and not command.hidden
        assert isinstance(command, TyperGroup) == entry.group, name
        first_paragraph = (command.help or "").split("\n\n", 1)[0]
        assert " ".join(first_paragraph.split()) == entry.summary, name
        assert command.short_help is None, f"{name}: `--help` would not show its short_help"


def test_a_mistyped_command_gets_a_suggestion() -> None:
    result = CliRunner().invoke(app, ["wach"], prog_name="makestream")
    assert result.exit_code == 2
    assert "No such command 'wach'. Did you mean 'watch'?" in result.output
