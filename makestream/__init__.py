"""makestream: watch Make.com scenario executions as they happen.

The library core is `makestream.make` (the Make API boundary), `makestream.engine` (the
streaming engine) and `makestream.events` (the event contract). `makestream.cli` is a thin
command line on top.
"""

__version__ = "0.1.0"
