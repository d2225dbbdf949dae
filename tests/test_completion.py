"""Shell completion: the protocol the scripts speak, and the scripts in real shells.

The scripts hand the command line to `makestream` with `_MAKESTREAM_COMPLETE=complete_<shell>`;
makestream answers from its command definitions. The protocol is tested directly (fast, every
enumerated option), then each committed script is loaded into its shell. bash is always there;
zsh and fish tests skip when the shell is missing, except under CI=true.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from makestream.cli import app
from makestream.docs import command_tree
from makestream.docs.model import CommandDoc, ParamDoc

ROOT = Path(__file__).resolve().parents[1]
COMPLETIONS = ROOT / "completions"
TREE = command_tree()


def bash_protocol(line: str) -> list[str]:
    """Candidates makestream offers for `line` (the cursor at its end), as bash asks."""
    words = line.split()
    if line.endswith(" "):
        words.append("")
    result = CliRunner().invoke(
        app,
        [],
        prog_name="makestream",
        env={
            "_MAKESTREAM_COMPLETE": "complete_bash",
            "COMP_WORDS": line,
            "COMP_CWORD": str(len(words) - 1),
        },
    )
    assert result.exit_code == 0, result.output
    return result.output.split()


def test_commands_complete() -> None:
    assert bash_protocol("makestream wa") == ["watch"]
    top = [c.path[0] for c in TREE.subcommands]
    assert sorted(bash_protocol("makestream ")) == sorted(top)
    assert "serve-sse" in top


def test_subcommands_complete() -> None:
    thresholds = next(c for c in TREE.subcommands if c.path == ("thresholds",))
    assert sorted(bash_protocol("makestream thresholds ")) == sorted(
        c.path[-1] for c in thresholds.subcommands
    )
    assert bash_protocol("makestream sim ") == ["serve"]


def test_options_complete() -> None:
    assert bash_protocol("makestream watch --fo") == ["--follow", "--format"]
    assert "--no-follow" in bash_protocol("makestream watch --no")


def test_format_values_complete() -> None:
    assert bash_protocol("makestream watch --format ") == ["auto", "ndjson", "pretty", "compact"]
    assert bash_protocol("makestream watch --format p") == ["pretty"]


def _enumerated() -> Iterator[tuple[CommandDoc, ParamDoc]]:
    for command in TREE.walk():
        for param in command.options:
            if param.choices:
                yield command, param


@pytest.mark.parametrize(
    ("command", "param"),
    list(_enumerated()),
    ids=[f"{c.name} {p.opts[0]}" for c, p in _enumerated()],
)
def test_every_enumerated_option_completes_its_values(
    command: CommandDoc, param: ParamDoc
) -> None:
    assert bash_protocol(f"{command.name} {param.opts[0]} ") == list(param.choices)


def test_the_enumerated_options_the_issue_names_are_covered() -> None:
    names = {p.opts[0] for _c, p in _enumerated()}
    assert {"--format", "--color", "--severity", "--fail-on-alert"} <= names


# --- through the real executable ----------------------------------------------------------------


@pytest.fixture(scope="module")
def bin_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with a `makestream` that runs this checkout, to put first on PATH."""
    directory = tmp_path_factory.mktemp("bin")
    shim = directory / "makestream"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m makestream "$@"\n')
    shim.chmod(0o755)
    return directory


def shell_env(bin_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("_MAKESTREAM")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    return env


def need(shell: str) -> str:
    path = shutil.which(shell)
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{shell} is missing: CI must install it to test its completion script")
        pytest.skip(f"{shell} is not installed")
    return path


def run(argv: list[str], bin_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=60, check=False,
        env={**shell_env(bin_dir), **env}, cwd=ROOT,
    )


def test_protocol_through_the_executable(bin_dir: Path) -> None:
    result = run(
        ["makestream"], bin_dir,
        _MAKESTREAM_COMPLETE="complete_bash", COMP_WORDS="makestream watch --color ",
        COMP_CWORD="3",
    )
    assert (result.returncode, result.stdout.split()) == (0, ["auto", "always", "never"])


BASH_COMPLETE = """
source completions/makestream.bash
complete -p makestream
COMP_WORDS=({words}); COMP_CWORD={cword}
_makestream_completion makestream
printf '%s\\n' "${{COMPREPLY[@]}}"
"""


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        ("makestream wa", ["watch"]),
        ("makestream watch --format ''", ["auto", "ndjson", "pretty", "compact"]),
        ("makestream watch --fail-on-alert ''", ["warning", "critical"]),
    ],
)
def test_bash_script(bin_dir: Path, words: str, expected: list[str]) -> None:
    bash = need("bash")
    cword = len(words.split()) - 1
    script = BASH_COMPLETE.format(words=words, cword=cword)
    result = run([bash, "--norc", "--noprofile", "-c", script], bin_dir)
    assert result.returncode == 0, result.stderr
    registered, *candidates = result.stdout.splitlines()
    assert registered == "complete -o default -F _makestream_completion makestream"
    assert candidates == expected


def test_zsh_script_loads_sourced_and_autoloaded(bin_dir: Path) -> None:
    zsh = need("zsh")
    sourced = run(
        [zsh, "-f", "-c", "autoload -U compinit && compinit -u -D; "
         "source completions/_makestream; print -r -- $_comps[makestream]"],
        bin_dir,
    )
    assert (sourced.returncode, sourced.stdout.strip()) == (0, "_makestream_completion"), (
        sourced.stderr
    )
    # Installed into site-functions, compinit finds the file by its #compdef line.
    autoloaded = run(
        [zsh, "-f", "-c", "fpath=(completions $fpath); autoload -U compinit && compinit -u -D; "
         "print -r -- $_comps[makestream]"],
        bin_dir,
    )
    assert (autoloaded.returncode, autoloaded.stdout.strip()) == (0, "_makestream"), (
        autoloaded.stderr
    )


# zsh's completion widgets need a terminal; the function itself does not. With `_describe` and
# `_files` (the zsh builtins it ends in) replaced by stubs that print what they were given, the
# real function runs against the real makestream.
ZSH_COMPLETE = """
autoload -U compinit && compinit -u -D
_describe() { print -rl -- "${(@P)${@[-1]}}" }
_files() { print -r -- "(files)" }
source completions/_makestream
words=(%s); CURRENT=${#words}
_makestream_completion
"""


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        ("makestream wa", ["watch:Stream events about scenario executions:..."]),
        ("makestream watch --fo", [
            "--follow:Keep watching, or report what is new and exit (--no-follow alone: the "
            "last hour).",
            "--format:auto: pretty on a terminal, ndjson otherwise.",
        ]),
        ("makestream watch --format ''", ["auto", "ndjson", "pretty", "compact"]),
        ("makestream render ''", ["(files)"]),
    ],
)
def test_zsh_function(bin_dir: Path, words: str, expected: list[str]) -> None:
    zsh = need("zsh")
    result = run([zsh, "-f", "-c", ZSH_COMPLETE % words], bin_dir)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == expected


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("makestream wa", ["watch"]),
        ("makestream watch --format ", ["auto", "ndjson", "pretty", "compact"]),
        ("makestream thresholds set --severity ", ["warning", "critical"]),
    ],
)
def test_fish_script(bin_dir: Path, line: str, expected: list[str]) -> None:
    fish = need("fish")
    result = run(
        [fish, "--no-config", "-c",
         f"source completions/makestream.fish; complete --do-complete '{line}'"],
        bin_dir,
    )
    assert result.returncode == 0, result.stderr
    # fish sorts candidates itself.
    candidates = [row.split("\t", 1)[0] for row in result.stdout.splitlines()]
    assert sorted(candidates) == sorted(expected)
