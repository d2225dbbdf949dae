"""One request budget for every makestream process of a user on one machine.

Make's limit is per organization. A cron `watch --no-follow` and a live `watch` that each keep to
80 % of it send 160 % together, and everyone in the organization gets 429s. So the processes that
talk to the same organization record every send in one small *ledger* file and decide, each in
turn under an exclusive lock, whether one more send fits.

**A locked file, not a broker.** The ledger is a file under ``/run/user/UID/makestream/``
(else ``/tmp/makestream-UID/``, created private; see `ledger_dir`), locked with ``flock``
around each decision.
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

Pacing stays in each process (`makestream.make.budget`): each paces at its fair part of the rate
(the total divided among the processes that sent in the last minute) or at what the others leave
unused, whichever is more, so that two busy watches each get half instead of racing each other
into the hard cap, and a lone cron job that sends a few requests costs a live watch only those.

A folder that cannot be used safely (not a folder, a foreign owner, writable by others) leaves
the process on its own budget, said once through ``on_problem``. A file that fails later (the
folder removed, a full disk) is said once too, and the process goes on counting alone at the
part of the rate it last had, so that processes cut off from each other do not each take the
whole share. A lock held far longer than a decision takes is waited for only a few
milliseconds (this runs in the event loop); a send then waits a few milliseconds more, off the
event loop, and asks again, so that a holder descheduled on a busy machine does not let sends past
the cap. Only a lock held for a whole second (a process stopped inside it) leaves the others
deciding alone until they get it again.
"""

from __future__ import annotations

import bisect
import contextlib
import fcntl
import hashlib
import os
import stat
import time
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
PID_MAX = 2**31 - 1
# Waiting for the lock: at most this many tries this far apart (a few milliseconds in all).
LOCK_TRIES = 20
LOCK_PAUSE_S = 0.0002
# A send that found the lock taken asks again this much later (real seconds, awaited off the
# event loop, with one try of the lock instead of LOCK_TRIES), for at most BUSY_WAIT_S in a row
# before deciding alone. Busy tries less than BUSY_SPELL_GAP_S apart are one spell: a holder
# stopped for good is not waited for again at each send.
BUSY_RETRY_S = 0.005
BUSY_WAIT_S = 1.0
BUSY_SPELL_GAP_S = 5.0
ENV = "MAKESTREAM_BUDGET_DIR"


class _Busy(Exception):
    """The ledger's lock stayed taken for longer than a decision takes."""


@dataclass(frozen=True)
class Claim:
    """The answer to "may I send now?": wait `delay` seconds first (0: sent, and counted)."""

    delay: float
    senders: int  # processes (this one included) that sent in the last window
    members: int  # processes (this one included) that share the ledger
    used: int  # sends of every process in the last window, this one included
    paused: bool = False  # the delay is a 429 pause some process saw
    busy: bool = False  # the lock was taken: nothing was counted, ask again after the delay


class SharedLedger(Protocol):
    """What a `Budget` shares with other processes: the file `Ledger` on one machine, or a
    ledger in Redis across machines (`makestream.bus`). Times are the budget's monotonic clock
    seconds; each call may wait for I/O, and none raises: a ledger that fails answers None to
    `claim` and the budget goes on alone."""

    async def claim(self, now: float, cap: int) -> Claim | None: ...

    async def pause(self, now: float, until: float) -> None: ...

    async def adopt_account(self, account: str, now: float) -> None: ...

    async def leave(self) -> None: ...


def ledger_dir(env: Mapping[str, str] = os.environ, *, run_root: Path = Path("/run/user")) -> Path:
    """Where ledgers live: ``$MAKESTREAM_BUDGET_DIR``, else ``/run/user/UID/makestream`` when the
    user's runtime folder exists, else ``/tmp/makestream-UID``.

    Chosen by the user id alone, not by ``XDG_RUNTIME_DIR`` or ``TMPDIR``: a cron job gets
    neither while a login session gets both, and the two must find the same ledger."""
    if env.get(ENV):
        return Path(env[ENV])
    uid = os.getuid()
    runtime = run_root / str(uid)
    try:
        info = runtime.lstat()
    except OSError:
        info = None
    if info is not None and stat.S_ISDIR(info.st_mode) and info.st_uid == uid:
        return runtime / "makestream"
    return Path("/tmp") / f"makestream-{uid}"


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
        # Since when (real monotonic seconds) every claim found the lock taken, and the latest
        # that did; None when the last one got it.
        self._busy_since: float | None = None
        self._busy_last = 0.0
        # A 429 pause that found the lock taken: written at the next decision that gets it.
        self._pause_pending: float | None = None

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
            # lstat: a link planted in /tmp in place of the folder must not be followed.
            info = directory.lstat()
        except OSError as exc:
            _tell(on_problem, f"cannot use {directory} ({exc.strerror or exc}); "
                  "keeping to this process's own budget")
            return None
        if (not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid()
                or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)):
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
                mine = [s for s in state["sends"] if s[1] == self.pid]
                state["sends"] = [s for s in state["sends"] if s[1] != self.pid]
                state["members"].pop(str(self.pid), None)
        self.path = path
        with self._state(now) as state:
            if state is not None:
                state["sends"] = sorted([*state["sends"], *mine])

    # --- decisions ------------------------------------------------------------------------------

    async def claim(self, now: float, cap: int) -> Claim | None:
        """Count one send at `now` if fewer than `cap` sends of all processes fall in the last
        window and no 429 pause lasts; else say how long to wait (`busy`: the lock was taken,
        ask again). None once the file failed, or while the lock stays taken past BUSY_WAIT_S:
        the process then decides alone."""
        spell = self._busy_since is not None
        with self._state(now, tries=1 if spell else LOCK_TRIES) as state:
            if state is None:
                if self.broken is not None:
                    return None
                t = time.monotonic()
                if self._busy_since is None or t - self._busy_last > BUSY_SPELL_GAP_S:
                    self._busy_since = t
                self._busy_last = t
                if t - self._busy_since < BUSY_WAIT_S:
                    # Held by a process descheduled inside it: wait for its decision rather
                    # than send uncounted past the cap.
                    return Claim(BUSY_RETRY_S * self.speed, 1, 1, 0, busy=True)
                return None  # held for good (a process stopped inside it): decide alone
            self._busy_since = None
            sends: list[list[float]] = state["sends"]
            delay = 0.0
            paused = state.get("paused_until")
            is_paused = False
            if isinstance(paused, float | int) and paused > now:
                delay, is_paused = float(paused) - now, True
            elif len(sends) >= cap:
                delay = max(0.0, sends[len(sends) - cap][0] + WINDOW_S - now)
            if delay <= 0:
                # In time order: a process that read the clock just before another but took
                # the lock just after must not put the window's oldest send out of place.
                bisect.insort(sends, [now, self.pid])
                delay = 0.0
            senders = {int(pid) for _, pid in sends} | {self.pid}
            return Claim(delay, len(senders), len(state["members"]), len(sends), is_paused)

    async def pause(self, now: float, until: float) -> None:
        """A 429: every process sharing the ledger waits until `until` (clock seconds)."""
        with self._state(now) as state:
            if state is None:
                if self.broken is None:  # the lock was taken: write it at the next decision
                    self._pause_pending = max(until, self._pause_pending or until)
                return
            _pause_until(state, until)

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
        except (OSError, _Busy):
            pass  # leaving is a courtesy: a member that does not leave ages out

    # --- the file -------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _state(self, now: float, tries: int = LOCK_TRIES) -> Iterator[dict[str, Any] | None]:
        """The pruned state under the lock, written back afterwards; None once broken, or when
        the lock stayed taken for `tries` tries (`broken` is then None)."""
        if self.broken is not None:
            yield None
            return
        with contextlib.ExitStack() as stack:
            try:
                handle = stack.enter_context(self._locked(tries))
            except _Busy:
                # Another process holds the lock far longer than a decision takes (descheduled
                # or stopped inside it, or a slow file system): no state this time.
                yield None
                return
            except OSError as exc:
                self._fail(exc)
                yield None
                return
            state = _read(handle)
            self._prune(state, now)
            if self._pause_pending is not None:
                _pause_until(state, self._pause_pending)
                self._pause_pending = None
            yield state
            try:
                _write(handle, state)
            except OSError as exc:
                self._fail(exc)

    def _fail(self, exc: OSError) -> None:
        self.broken = f"the shared budget file {self.path} failed ({exc.strerror or exc})"
        _tell(self._on_problem, f"{self.broken}; keeping to this process's own budget")

    @contextlib.contextmanager
    def _locked(self, tries: int = LOCK_TRIES) -> Iterator[int]:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            # A decision holds the lock for one read and one write (microseconds). This runs in
            # the event loop, so it waits a bounded moment for the lock, never for ever.
            for attempt in range(tries):
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if attempt == tries - 1:
                        raise _Busy from None
                    time.sleep(LOCK_PAUSE_S)
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


def _pause_until(state: dict[str, Any], until: float) -> None:
    """Make the state's 429 pause last at least until `until`."""
    paused = state.get("paused_until")
    if not isinstance(paused, float | int) or paused < until:
        state["paused_until"] = until


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
    raw_sends, raw_members = data.get("sends"), data.get("members")
    sends = [
        [float(s[0]), s[1]]
        for s in (raw_sends if isinstance(raw_sends, list) else [])
        if isinstance(s, list) and len(s) == 2
        and isinstance(s[0], float | int) and _is_pid(s[1])
    ]
    members = {
        pid: float(seen)
        for pid, seen in (raw_members if isinstance(raw_members, dict) else {}).items()
        if _is_pid(pid) and isinstance(seen, float | int)
    }
    sends.sort()  # claims keep them in time order; a file written otherwise is put in it
    state: dict[str, Any] = {"v": 1, "sends": sends, "members": members}
    if isinstance(data.get("paused_until"), float | int):
        state["paused_until"] = float(data["paused_until"])
    return state


def _is_pid(value: object) -> bool:
    """A process id as the ledger writes it (an int in sends, its text as a member key)."""
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 10:
        value = int(value)
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= PID_MAX


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
