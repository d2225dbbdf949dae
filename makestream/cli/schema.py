"""`makestream schema`: the JSON Schema of every event."""

from __future__ import annotations

import sys

from makestream.cli.common import command_app

app = command_app()


@app.command()
def schema() -> None:
    """Print the JSON Schema of the events that watch, render and serve-sse use."""
    import orjson

    from makestream.events import json_schema

    sys.stdout.buffer.write(orjson.dumps(json_schema(), option=orjson.OPT_INDENT_2) + b"\n")
