"""Which events `watch` writes: `--type`, `--status` and `--no-progress`, as one pure predicate.

Filters shape the output only. The engine, the alert sinks, the cursor file and the exit status
see every event, so a filtered watch ends, alerts and resumes exactly as an unfiltered one.
`stream.opened` and `stream.closed` are always written: scripts rely on the last line carrying
the exit code.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from makestream.errors import UsageError
from makestream.events import KNOWN_TYPES, _Event

STATUSES = ("success", "warning", "error")
_ALWAYS = frozenset({"stream.opened", "stream.closed"})


@dataclass(frozen=True)
class EventFilter:
    """`types`: globs over event types (none: every type); `statuses`: the execution.finished
    statuses kept (none: every status); `progress`: whether execution.progress is kept."""

    types: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    progress: bool = True

    @classmethod
    def from_cli(
        cls, types: list[str], statuses: list[str], *, progress: bool = True
    ) -> EventFilter:
        """Check the flags' values; an unknown type glob or status is a one-line error."""
        for pattern in types:
            if not any(fnmatch.fnmatchcase(t, pattern.lower()) for t in KNOWN_TYPES):
                known = ", ".join(sorted(KNOWN_TYPES))
                raise UsageError(f"--type: {pattern!r} matches no event type (types: {known})")
        for status in statuses:
            if status.lower() not in STATUSES:
                raise UsageError(
                    f"--status: {status!r} is not one of: {', '.join(STATUSES)}"
                )
        return cls(
            tuple(p.lower() for p in types), tuple(s.lower() for s in statuses), progress
        )

    @property
    def everything(self) -> bool:
        return not self.types and not self.statuses and self.progress

    def keep(self, event: _Event) -> bool:
        kind = event.type
        if kind in _ALWAYS:
            return True
        if kind == "execution.progress" and not self.progress:
            return False
        if self.types and not any(fnmatch.fnmatchcase(kind, p) for p in self.types):
            return False
        if self.statuses and kind == "execution.finished":
            return getattr(event, "status", None) in self.statuses
        return True
