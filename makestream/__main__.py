"""Allow ``python -m makestream``."""

from makestream.cli import main

main()
