"""One request budget for every makestream process of a user on one machine.

Make's limit is per organization. A cron `watch --no-follow` and a live `watch` that each keep to
80 % of it send 160 % together, and everyone in the organization gets 429s. So the processes that
talk to the same organization record every send in one small *ledger* file and decide, each in
turn under an exclusive lock, whether one more send fits.

**A locked file, not a broker.** The ledger is a file under ``$XDG_RUNTIME_DIR/makestream/``
(else ``/tmp/makestream-UID/``, created private), locked with ``flock`` around each decision.
There is nothing to start, supervise or clean up: a process that dies holds no lock (the kernel
drops it with the descriptor) and its sends simply age out of the window; a decision is one lock,
one read and one write of a file of a few kilobytes, a few times a second at most. A broker
started on demand would add a socket protocol, a life cycle and a process to outlive its users,
for the same arithmetic.

**What it holds**, in the budget's monotonic clock seconds (``CLOCK_MONOTONIC`` is one clock for
every process of a machine, and the key includes the clock's speed, so only processes on the same
clock share a file):

- ``sends``: ``[time, pid]`` of every send of the last 60 s, by any process. The hard cap (the
  total share of the limit) is counted over them.
- ``paused_until``: the end of a 429 pause, so that a 429 seen by one process pauses all.
- ``members``: ``pid → last seen``, so that each process can say how many share the budget.

Pacing stays in each process (`makestream.make.budget`); it divides the rate among the processes
that sent in the last minute, so that two busy watches each get half instead of racing each
other into the hard cap.

Any failure of the file (unwritable directory, full disk, a foreign owner) leaves the process on
its own budget, as before there was a ledger, and is reported once through ``on_problem``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import stat
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import orjson

WINDOW_S = 60.0
# A member not seen for this long (clock seconds) is forgotten even if its pid lives on: pids
# are reused, and a process that sends nothing draws on nothing.
MEMBER_TTL_S = 120.0
# The file is ours, but a corrupt or planted one must not make a process read without bound.
LEDGER_MAX_BYTES = 1 << 20
ENV = "MAKESTREAM_BUDGET_DIR"


@dataclass(frozen=True)
class Claim:
    """The answer to "may I send now?": wait `delay` seconds first (0: sent, and counted)."""

    delay: float
    senders: int  # processes (this one included) that sent in the last window
    members: int  # processes (this one included) that share the ledger
    used: int  # sends of every process in the last window, this one included


class SharedLedger(Protocol):
    """What a `Budget` shares with other processes: the file `Ledger` on one machine, or a
    ledger in Redis across machines (`makestream.bus`). Times are the budget's monotonic clock
    seconds; each call may wait for I/O, and none raises: a ledger that fails answers None to
    `claim` and the budget goes on alone."""

    async def claim(self, now: float, cap: int) -> Claim | None: ...

    async def pause(self, now: float, until: float) -> None: ...

    async def adopt_account(self, account: str, now: float) -> None: ...

    async def leave(self) -> None: ...


def ledger_dir(env: Mapping[str, str] = os.environ) -> Path:
    """Where ledgers live: ``$MAKESTREAM_BUDGET_DIR``, else ``$XDG_RUNTIME_DIR/makestream``,
    else a private folder in the temporary directory."""
    if env.get(ENV):
        return Path(env[ENV])
    runtime = env.get("XDG_RUNTIME_DIR")
    if runtime:
        return Path(runtime) / "makestream"
    return Path(env.get("TMPDIR") or "/tmp") / f"makestream-{os.getuid()}"


def ledger_key(base_url: str, account: str, speed: float) -> str:
    """The file name for one organization (or, when the token cannot read it, one token) of one
    Make zone, on one clock. `account` is never written anywhere: only its hash is."""
    digest = hashlib.sha256(f"{base_url}\n{account}\n{speed:g}".encode()).hexdigest()
    return f"budget-{digest[:24]}.json"


class Ledger:
    """The shared record of one organization's sends, in one locked file.

    A process opens the ledger of its token (`open`) before its first request, and moves to its
    organization's (`adopt_account`) once it has read which one that is, so that processes with
    different tokens of one organization share too."""

    def __init__(
        self,
        directory: Path,
        base_url: str,
        account: str,
        *,
        speed: float = 1.0,
        pid: int | None = None,
        on_problem: Callable[[str], None] | None = None,
        alive: Callable[[int], bool] | None = None,
    ) -> None:
        self.directory = directory
        self.base_url = base_url
        self.speed = speed
        self.path = directory / ledger_key(base_url, account, speed)
        self.pid = os.getpid() if pid is None else pid
        self._on_problem = on_problem
        self._alive = alive or _pid_alive
        self.broken: str | None = None

    @classmethod
    def open(
        cls,
        directory: Path,
        base_url: str,
        account: str,
        *,
        speed: float = 1.0,
        on_problem: Callable[[str], None] | None = None,
    ) -> Ledger | None:
        """The ledger of `account` at `base_url` in `directory` (made private if new), or None,
        said once through `on_problem`, when the directory cannot be used safely."""
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            info = directory.stat()
        except OSError as exc:
            _tell(on_problem, f"cannot use {directory} ({exc.strerror or exc}); "
                  "keeping to this process's own budget")
            return None
        if info.st_uid != os.getuid() or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            _tell(on_problem, f"{directory} is not private to this user; "
                  "keeping to this process's own budget")
            return None
        return cls(directory, base_url, account, speed=speed, on_problem=on_problem)

    async def adopt_account(self, account: str, now: float) -> None:
        """Move to the ledger of `account` (the organization, once known), taking along this
        process's sends of the last window so that they still count."""
        path = self.directory / ledger_key(self.base_url, account, self.speed)
        if path == self.path or self.broken is not None:
            return
        mine: list[list[float]] = []
        with self._state(now) as state:
            if state is not None:
                mine = [s for s in state["sends"] if int(s[1]) == self.pid]
                state["sends"] = [s for s in state["sends"] if int(s[1]) != self.pid]
                state["members"].pop(str(self.pid), None)
        self.path = path
        with self._state(now) as state:
            if state is not None:
                state["sends"] = sorted([*state["sends"], *mine])

    # --- decisions ------------------------------------------------------------------------------

    async def claim(self, now: float, cap: int) -> Claim | None:
        """Count one send at `now` if fewer than `cap` sends of all processes fall in the last
        window and no 429 pause lasts; else say how long to wait. None once the file failed."""
        with self._state(now) as state:
            if state is None:
                return None
            sends: list[list[float]] = state["sends"]
            delay = 0.0
            paused = state.get("paused_until")
            if isinstance(paused, float | int) and paused > now:
                delay = float(paused) - now
            elif len(sends) >= cap:
                delay = max(0.0, sends[len(sends) - cap][0] + WINDOW_S - now)
            if delay <= 0:
                sends.append([now, self.pid])
                delay = 0.0
            senders = {int(pid) for _, pid in sends} | {self.pid}
            return Claim(delay, len(senders), len(state["members"]), len(sends))

    async def pause(self, now: float, until: float) -> None:
        """A 429: every process sharing the ledger waits until `until` (clock seconds)."""
        with self._state(now) as state:
            if state is None:
                return
            paused = state.get("paused_until")
            if not isinstance(paused, float | int) or paused < until:
                state["paused_until"] = until

    async def look(self, now: float) -> Claim | None:
        """The shared figures without sending (for snapshots); refreshes this member."""
        with self._state(now) as state:
            if state is None:
                return None
            sends = state["sends"]
            senders = {int(pid) for _, pid in sends}
            return Claim(0.0, len(senders), len(state["members"]), len(sends))

    async def leave(self) -> None:
        """Forget this process as a member (its sends stay counted until they age out)."""
        if self.broken is not None or not self.path.exists():
            return
        try:
            with self._locked() as handle:
                state = _read(handle)
                state["members"].pop(str(self.pid), None)
                _write(handle, state)
        except OSError:
            pass

    # --- the file -------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _state(self, now: float) -> Iterator[dict[str, Any] | None]:
        """The pruned state under the lock, written back afterwards; None once broken."""
        if self.broken is not None:
            yield None
            return
        with contextlib.ExitStack() as stack:
            try:
                handle = stack.enter_context(self._locked())
                state = _read(handle)
            except OSError as exc:
                self._fail(exc)
                yield None
                return
            self._prune(state, now)
            yield state
            try:
                _write(handle, state)
            except OSError as exc:
                self._fail(exc)

    def _fail(self, exc: OSError) -> None:
        self.broken = f"the shared budget file {self.path} failed ({exc.strerror or exc})"
        _tell(self._on_problem, f"{self.broken}; keeping to this process's own budget")

    @contextlib.contextmanager
    def _locked(self) -> Iterator[int]:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            # Held for one read and one write: microseconds, so blocking here is harmless.
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield fd
        finally:
            os.close(fd)  # releases the lock

    def _prune(self, state: dict[str, Any], now: float) -> None:
        state["sends"] = [s for s in state["sends"] if now - WINDOW_S < s[0] <= now + WINDOW_S]
        members: dict[str, float] = state["members"]
        members[str(self.pid)] = now
        for pid, seen in list(members.items()):
            if int(pid) != self.pid and (now - seen > MEMBER_TTL_S or not self._alive(int(pid))):
                del members[pid]
        paused = state.get("paused_until")
        if isinstance(paused, float | int) and paused <= now:
            state.pop("paused_until", None)


def _read(fd: int) -> dict[str, Any]:
    """The ledger's state; an empty one for a new, truncated, oversized or garbled file (its
    sends are lost, which costs at most one window of sharing, never a crash)."""
    os.lseek(fd, 0, os.SEEK_SET)
    raw = os.read(fd, LEDGER_MAX_BYTES + 1)
    empty: dict[str, Any] = {"v": 1, "sends": [], "members": {}}
    if not raw or len(raw) > LEDGER_MAX_BYTES:
        return empty
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return empty
    if not isinstance(data, dict) or data.get("v") != 1:
        return empty
    sends = [
        [float(s[0]), int(s[1])]
        for s in data.get("sends", [])
        if isinstance(s, list) and len(s) == 2
        and isinstance(s[0], float | int) and isinstance(s[1], int)
    ]
    members = {
        str(pid): float(seen)
        for pid, seen in (data.get("members") or {}).items()
        if str(pid).isdigit() and isinstance(seen, float | int)
    }
    state: dict[str, Any] = {"v": 1, "sends": sends, "members": members}
    if isinstance(data.get("paused_until"), float | int):
        state["paused_until"] = float(data["paused_until"])
    return state


def _write(fd: int, state: dict[str, Any]) -> None:
    body = orjson.dumps(state)
    os.lseek(fd, 0, os.SEEK_SET)
    os.ftruncate(fd, 0)
    os.write(fd, body)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, someone else's: not ours to judge
    return True


def _tell(on_problem: Callable[[str], None] | None, message: str) -> None:
    if on_problem is not None:
        on_problem(message)
