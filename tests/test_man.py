"""The man page renders cleanly, and roff's special characters in help text stay literal.

groff and man-db come from Debian (CI installs them); where they are missing the rendering tests
skip, except under CI=true, where a missing tool is a broken CI setup rather than a reason to
skip. mandoc's linter is stricter than groff and optional.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from makestream.docs.model import CommandDoc, ParamDoc
from makestream.docs.roff import escape, prose, render

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "man" / "makestream.1"


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{tool} is missing: CI must install it (see .ci/run)")
        pytest.skip(f"{tool} is not installed")
    return path


def groff(page: Path) -> subprocess.CompletedProcess[str]:
    """`groff -ww -man -Tutf8 PAGE`, its output with bold and underline overstrikes removed."""
    result = subprocess.run(
        [need("groff"), "-ww", "-man", "-Tutf8", str(page)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    result.stdout = re.sub(".\b", "", result.stdout)
    return result


def test_groff_renders_without_warnings() -> None:
    result = groff(PAGE)
    assert result.returncode == 0
    assert result.stderr == ""
    assert "EXIT STATUS" in result.stdout


def test_mandoc_lint_is_clean() -> None:
    mandoc = shutil.which("mandoc")
    if mandoc is None:
        pytest.skip("mandoc is not installed (optional: apt-get install mandoc)")
    # Style notes (long source lines in examples) are not faults; warnings and errors are.
    result = subprocess.run(
        [mandoc, "-T", "lint", "-W", "warning", str(PAGE)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_man_reads_the_page() -> None:
    man = need("man")
    env = {**os.environ, "MANWIDTH": "80", "MANPAGER": "cat", "PAGER": "cat"}
    result = subprocess.run(
        [man, "-l", str(PAGE)], capture_output=True, text=True, timeout=60, check=False, env=env
    )
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert "makestream - watch Make.com scenario executions in real time" in text
    # Options copy out of the page as typed: ASCII hyphen-minus, no hyphenation.
    assert "--no-follow" in text
    assert "--cursor-file" in text
    assert "\u2010" not in text


# --- escaping -----------------------------------------------------------------------------------


def test_escape_makes_dashes_minus_and_backslashes_literal() -> None:
    assert escape("--no-follow") == "\\-\\-no\\-follow"
    assert escape(r'"\(.name)"') == '"\\e(.name)"'
    assert escape("a · b") == "a \\[u00B7] b"


def test_prose_sets_options_and_code_in_bold_and_keeps_word_hyphens() -> None:
    text = prose("With --team: a one-line `jq -c` filter for serve-sse.", ["serve-sse"])
    assert "\\fB\\-\\-team\\fR" in text
    assert "one-line" in text
    assert "\\fBjq \\-c\\fR" in text
    assert "\\fBserve\\-sse\\fR" in text


def tricky_tree() -> CommandDoc:
    """A command whose help text is full of what roff would otherwise interpret."""
    option = ParamDoc(
        kind="option", name="filter", opts=("--filter",), secondary_opts=(), metavar="JQ",
        help=".type is read literally; 'quotes' too; a \\backslash; ÄÖ · — all kept.",
        default="'.x'", choices=(), range=None, required=False, repeatable=False,
    )
    command = CommandDoc(
        path=("odd",),
        help="'Starts with a quote.\n\n.starts with a dot\n\n  .indented example\n  'quoted'",
        params=(option,),
    )
    return CommandDoc(path=(), help="Tricky: a test tree.", params=(), subcommands=(command,),
                      is_group=True)


def test_roff_specials_in_help_text_render_literally(tmp_path: Path) -> None:
    page = tmp_path / "tricky.1"
    page.write_text(render(tricky_tree()), encoding="utf-8")
    result = groff(page)
    assert result.stderr == ""
    text = result.stdout
    for phrase in ["'Starts with a quote.", ".starts with a dot", ".indented example",
                   "'quoted'", ".type is read literally", "\\backslash", "ÄÖ · —",
                   "Default: '.x'."]:
        assert phrase in text, phrase
