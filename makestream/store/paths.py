"""Where the history store lives, and whether there is one.

Order of precedence: `--no-store`, then `--store PATH`, then `MAKESTREAM_STORE` (a path, or `off`),
then `$XDG_DATA_HOME/makestream/history.db` (`~/.local/share/makestream/history.db` without it).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from makestream.errors import UsageError

ENV = "MAKESTREAM_STORE"
OFF = ("off", "none", "no", "0")
# Retention when neither --keep nor a `history prune --keep` says otherwise.
DEFAULT_KEEP = "90d"


@dataclass(frozen=True)
class StoreChoice:
    """The store a command uses: a path, or None for none at all."""

    path: Path | None
    keep_s: float


def default_path(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    base = env.get("XDG_DATA_HOME") or ""
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".local" / "share"
    return root / "makestream" / "history.db"


def resolve(
    store: Path | None,
    no_store: bool,
    keep: str | None = None,
    env: Mapping[str, str] | None = None,
) -> StoreChoice:
    """The store the options and the environment choose; a bad value is a UsageError."""
    from makestream.timeutil import parse_duration

    env = os.environ if env is None else env
    keep_s = parse_duration(keep or DEFAULT_KEEP, option="--keep")
    if keep_s <= 0:
        raise UsageError("--keep: must be longer than 0 (try 90d)")
    if no_store and store is not None:
        raise UsageError("--store and --no-store cannot be used together")
    if no_store:
        return StoreChoice(None, keep_s)
    if store is None:
        named = env.get(ENV, "").strip()
        if named.lower() in OFF:
            return StoreChoice(None, keep_s)
        store = Path(named) if named else default_path(env)
    if store.is_dir():
        raise UsageError(f"--store {store}: is a directory; name a file such as history.db")
    return StoreChoice(store, keep_s)
