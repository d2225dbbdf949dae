"""Generated documentation: the man page, shell completions, and the README's reference blocks.

Everything here is derived from the command definitions (the Typer app in `makestream.cli`), the
event models (`makestream.events`) and the tables in `makestream.docs.reference`, and written to
files that are committed::

    man/makestream.1                 the man page (roff)
    completions/makestream.bash      bash completion
    completions/_makestream          zsh completion
    completions/makestream.fish      fish completion
    README.md                        only its marked blocks (commands, exit status, environment,
                                     events); the rest is written by hand

Regenerate with ``python -m makestream.docs`` (or ``scripts/gen-docs``); ``--check`` only reports
drift. The docs tests regenerate in memory and fail when a committed file differs, so a changed
help text cannot ship without its man page.
"""

from __future__ import annotations

from pathlib import Path

from makestream.docs import completions, readme, roff
from makestream.docs.model import CommandDoc, collect

__all__ = ["CommandDoc", "collect", "generate", "source_root"]


def command_tree() -> CommandDoc:
    """The documented command tree of the `makestream` app as it is now."""
    from makestream.cli import app

    return collect(app)


def generate(root: Path) -> dict[str, str]:
    """Every generated file's text, by path relative to the source tree at `root`.

    Reads `root/README.md`, because only its marked blocks are generated.
    """
    tree = command_tree()
    man = root / "man" / "makestream.1"
    previous = man.read_text(encoding="utf-8") if man.is_file() else None
    files = {"man/makestream.1": roff.render(tree, previous)}
    files.update({path: build() for path, build in completions.SCRIPTS.items()})
    current = (root / "README.md").read_text(encoding="utf-8")
    files["README.md"] = readme.rewrite(current, tree)
    return files


def source_root() -> Path | None:
    """The source tree this package was imported from, or None when it is installed."""
    candidate = Path(__file__).resolve().parents[2]
    return candidate if (candidate / "pyproject.toml").is_file() else None
