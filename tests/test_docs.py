"""The documentation matches the code: generated files are current, and nothing goes undocumented.

The man page, the completion scripts and the README's generated blocks are committed; these tests
regenerate them in memory and fail on any difference, so a changed help text, option or event
cannot ship without its documentation. Run `scripts/gen-docs` to bring them up to date.
"""

from __future__ import annotations

import re
import shutil
import tomllib
from pathlib import Path

import pytest

from makestream.docs import command_tree, generate
from makestream.docs.__main__ import main as gen_docs
from makestream.docs.completions import SCRIPTS
from makestream.docs.model import CommandDoc, ParamDoc
from makestream.docs.reference import ENVIRONMENT, EXIT_STATUS, event_reference
from makestream.docs.roff import escape
from makestream.errors import ExitCode
from makestream.events import KNOWN_TYPES

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
MAN = (ROOT / "man" / "makestream.1").read_text(encoding="utf-8")
TREE = command_tree()
COMMANDS = [c for c in TREE.walk() if c.path]


def _params() -> list[tuple[CommandDoc, ParamDoc]]:
    return [(c, p) for c in TREE.walk() for p in c.params]


def _param_id(pair: tuple[CommandDoc, ParamDoc]) -> str:
    command, param = pair
    return f"{command.name}:{param.label}"


# --- drift --------------------------------------------------------------------------------------


GENERATED = ["man/makestream.1", *SCRIPTS, "README.md"]


@pytest.fixture(scope="module")
def generated() -> dict[str, str]:
    return generate(ROOT)


def test_every_generated_file_is_checked(generated: dict[str, str]) -> None:
    assert sorted(generated) == sorted(GENERATED)


@pytest.mark.parametrize("relative", GENERATED)
def test_generated_file_is_current(relative: str, generated: dict[str, str]) -> None:
    committed = (ROOT / relative).read_text(encoding="utf-8")
    assert committed == generated[relative], f"{relative} is out of date: run scripts/gen-docs"


def test_changing_a_help_text_without_regenerating_is_drift(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from makestream.cli import common

    monkeypatch.setattr(common.DemoOpt, "help", "A different help text.")
    regenerated = generate(ROOT)
    assert regenerated["man/makestream.1"] != MAN
    assert "A different help text." in regenerated["man/makestream.1"]


def test_gen_docs_check_reports_and_regeneration_fixes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A page generated afresh is dated by SOURCE_DATE_EPOCH: pinned to the committed page's date,
    # the comparison below holds on any day.
    from datetime import UTC, datetime

    committed = re.search(r'^\.TH MAKESTREAM 1 "([^"]*)"', MAN, re.MULTILINE)
    assert committed is not None
    day = datetime.fromisoformat(committed.group(1)).replace(tzinfo=UTC)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", str(int(day.timestamp())))
    shutil.copy(ROOT / "README.md", tmp_path / "README.md")
    assert gen_docs(["--check", "--root", str(tmp_path)]) == 1  # nothing generated yet
    assert gen_docs(["--root", str(tmp_path)]) == 0
    assert gen_docs(["--check", "--root", str(tmp_path)]) == 0
    for relative in generate(ROOT):
        assert (tmp_path / relative).read_text() == (ROOT / relative).read_text()


def test_unchanged_man_page_keeps_its_date() -> None:
    # Regenerating on another day must not be drift; only a changed text gets a new date.
    from datetime import date

    from makestream.docs.roff import render

    assert render(TREE, MAN, today=date(2099, 1, 1)) == MAN
    assert '"2099-01-01"' in render(TREE, MAN.replace("Print the version", "Print it"),
                                    today=date(2099, 1, 1))


# --- everything is documented -------------------------------------------------------------------


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c.name)
def test_every_command_has_help(command: CommandDoc) -> None:
    assert command.summary, f"{command.name} has no help text"


@pytest.mark.parametrize("pair", _params(), ids=_param_id)
def test_every_option_and_argument_has_help(pair: tuple[CommandDoc, ParamDoc]) -> None:
    command, param = pair
    assert param.help, f"{command.name} {param.label} has no help text"


def _man_section(command: CommandDoc) -> str:
    """The man page text of one command: from its heading to the next."""
    heading = f'.SS "{escape(command.name)}"\n'
    assert heading in MAN, f"{command.name} is missing from the man page"
    return MAN.split(heading, 1)[1].split("\n.SS ", 1)[0].split("\n.SH ", 1)[0]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c.name)
def test_every_command_and_option_is_in_the_man_page(command: CommandDoc) -> None:
    section = _man_section(command)
    for param in (*command.arguments, *command.own_options):
        names = [*param.opts, *param.secondary_opts] or [param.label]
        for name in names:
            assert escape(name) in section, f"{command.name} {name} is missing from the man page"
        for choice in param.choices:
            assert f"\\fB{escape(choice)}\\fR" in section


def test_global_options_are_in_the_man_page() -> None:
    options = MAN.split(".SH OPTIONS\n", 1)[1].split("\n.SH ", 1)[0]
    for param in TREE.options:
        for name in param.opts:
            assert f"\\fB{escape(name)}\\fR" in options


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c.name)
def test_every_command_is_in_the_readme(command: CommandDoc) -> None:
    assert f"`{command.name}`" in README


@pytest.mark.parametrize(
    "section",
    ["NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "COMMANDS", "EVENTS", '"EXIT STATUS"',
     "ENVIRONMENT", "FILES", "EXAMPLES", '"SEE ALSO"'],
)
def test_man_page_has_section(section: str) -> None:
    assert f"\n.SH {section}\n" in MAN


def test_every_exit_code_is_documented() -> None:
    assert set(EXIT_STATUS) == set(ExitCode)
    for code in ExitCode:
        assert f"\n.TP\n\\fB{int(code)}\\fR\n" in MAN
        assert f"\n| {int(code)} | " in README


def test_every_event_type_is_documented() -> None:
    _common, events = event_reference()
    assert {e.type for e in events} == set(KNOWN_TYPES)
    for event_type in KNOWN_TYPES:
        assert f"**`{event_type}`**" in README
        assert f"\\fB{escape(event_type)}\\fR" in MAN


# --- the environment section tells the truth ----------------------------------------------------

_ENV_NAME = re.compile(r"""["'](MAKE_[A-Z_]+|MAKESTREAM_[A-Z_]+|XDG_CONFIG_HOME|NO_COLOR)["']""")


def _package_sources() -> str:
    package = ROOT / "makestream"
    return "\n".join(
        p.read_text(encoding="utf-8")
        for p in package.rglob("*.py")
        if "docs" not in p.relative_to(package).parts
    )


def test_documented_variables_are_read_by_the_code() -> None:
    sources = _package_sources()
    for var in ENVIRONMENT:
        assert f'"{var.name}"' in sources, f"{var.name} is documented but never read"


def test_variables_the_code_reads_are_documented() -> None:
    documented = {var.name for var in ENVIRONMENT}
    read = set(_ENV_NAME.findall(_package_sources()))
    assert read - documented == set(), "undocumented environment variables"


# --- README examples that are not shell commands ------------------------------------------------


def test_readme_config_examples_are_valid() -> None:
    from makestream.config import parse

    blocks = re.findall(r"```toml\n(.*?)```", README, re.DOTALL)
    assert blocks
    for block in blocks:
        parse(block, "README.md")


def test_readme_keeps_its_first_two_commands_first() -> None:
    blocks = re.findall(r"```sh\n(.*?)```", README, re.DOTALL)
    assert blocks[0] == (
        "python3 -m venv .venv && .venv/bin/pip install -q . && "
        ".venv/bin/makestream watch --demo --count 3\n"
    )
    assert blocks[1] == (
        "python3 -m venv .venv && .venv/bin/pip install -q -e '.[test]' && .venv/bin/pytest\n"
    )


# --- shipping -----------------------------------------------------------------------------------


def test_wheel_installs_man_page_and_completions() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    shared = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["shared-data"]
    assert shared == {
        "man/makestream.1": "share/man/man1/makestream.1",
        "completions/makestream.bash": "share/bash-completion/completions/makestream",
        "completions/_makestream": "share/zsh/site-functions/_makestream",
        "completions/makestream.fish": "share/fish/vendor_completions.d/makestream.fish",
    }
    for source in shared:
        assert (ROOT / source).is_file()


def test_event_notes_name_real_types_and_fields() -> None:
    # Notes about an event or field that no longer exists would document nothing.
    from makestream.docs.reference import EVENT_SUMMARIES, FIELD_NOTES
    from makestream.events import EVENT_TYPES

    fields = {
        (str(model.model_fields["type"].default), name)
        for model in EVENT_TYPES
        for name in model.model_fields
    }
    assert set(EVENT_SUMMARIES) <= set(KNOWN_TYPES)
    for key in FIELD_NOTES:
        event_type, _, name = key.rpartition(".")
        if event_type:
            assert (event_type, name) in fields, key
        else:
            assert any(name == field for _type, field in fields), key
