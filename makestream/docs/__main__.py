"""``python -m makestream.docs [--check] [--root DIR]``: regenerate the documentation files.

Without ``--check`` it writes every generated file that changed and names it; with ``--check`` it
writes nothing and exits 1 when a committed file differs from what the code would generate.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from makestream.docs import generate, source_root


def main(argv: list[str] | None = None) -> int:
    """Regenerate (or check) the docs; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m makestream.docs",
        description="Regenerate the man page, shell completions and README reference blocks.",
    )
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 if any generated file is out of date")
    parser.add_argument("--root", type=Path, default=None,
                        help="the source tree (default: the one this package was imported from)")
    args = parser.parse_args(argv)
    root = args.root or source_root()
    if root is None:
        parser.error("makestream is installed, not run from its source tree: pass --root")
    stale: list[str] = []
    for relative, text in generate(root).items():
        path = root / relative
        old = path.read_text(encoding="utf-8") if path.is_file() else None
        if old == text:
            continue
        stale.append(relative)
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    verb = "out of date" if args.check else "written"
    for relative in stale:
        print(f"{verb}: {relative}", file=sys.stderr)
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
