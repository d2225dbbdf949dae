"""The `makestream` command line: parse options, build the pipeline, map errors to exit codes.

Each command lives in its own module and only parses and wires; the work is done by the library
(`makestream.engine`, `makestream.make`, `makestream.render`). The Typer app is
`makestream.cli.root.app` (also reachable as `makestream.cli.app`); it imports a command's
module only when that command is used, and `main` answers `--version` without importing Typer at
all, so that `makestream --version` and shell completion start fast.
"""

from __future__ import annotations

import os
import sys

from makestream import __version__

# Not `typing.TYPE_CHECKING`: importing typing takes longer than the rest of `--version`.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from makestream.cli.root import app as app

VERSION_TEXT = f"makestream {__version__}"


def main() -> None:
    """Console-script entry point."""
    # The environment variable means a shell asks for completions, which Typer must answer.
    if sys.argv[1:] in (["--version"], ["-V"]) and "_MAKESTREAM_COMPLETE" not in os.environ:
        print(VERSION_TEXT)
        return
    from typer import Abort
    from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError

    from makestream.cli.root import app

    try:
        code = app(prog_name="makestream", standalone_mode=False)
    except NoArgsIsHelpError as exc:
        exc.show()  # a bare group command: its help, as the parser would show it
        sys.exit(exc.exit_code)
    except UsageError as exc:
        from makestream.cli.usage import describe

        print(f"makestream: error: {describe(exc)}", file=sys.stderr)
        sys.exit(2)
    except ClickException as exc:  # e.g. an unreadable file argument
        print(f"makestream: error: {exc.format_message()}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except Abort:
        sys.exit(130)  # Ctrl-C or end of input at a prompt
    sys.exit(code if isinstance(code, int) else 0)


def __getattr__(name: str) -> object:
    # Importing this package (the console script does) must not build the Typer app.
    if name == "app":
        from makestream.cli.root import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
