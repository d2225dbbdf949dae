"""One budget for several processes: the ledger file, and budgets that share it.

Processes are stood in for by ledgers with their own pids on one file; the end-to-end test with
real processes is in tests/test_budget_processes.py.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from makestream.clock import Clock
from makestream.make import ledger as ledger_module
from makestream.make.budget import Budget
from makestream.make.ledger import (
    LEDGER_MAX_BYTES,
    WINDOW_S,
    Claim,
    Ledger,
    ledger_dir,
    ledger_key,
)

pytestmark = pytest.mark.anyio
URL = "https://eu1.make.com/api/v2"


def member(directory: Path, pid: int, problems: list[str] | None = None) -> Ledger:
    return Ledger(
        directory, URL, "organization 1", pid=pid, alive=lambda _pid: True,
        on_problem=None if problems is None else problems.append,
    )


async def test_the_cap_counts_every_processs_sends(tmp_path: Path) -> None:
    a, b = member(tmp_path, 101), member(tmp_path, 102)
    assert a.path == b.path
    for n in range(3):
        claim = await (a if n % 2 else b).claim(10.0 + n, cap=4)
        assert claim is not None and claim.delay == 0
    assert (c := await a.claim(13.0, cap=4)) is not None and c.delay == 0 and c.used == 4
    refused = await b.claim(14.0, cap=4)
    # The oldest of the four sends (at 10.0) must leave the 60 s window first.
    assert refused is not None and refused.delay == pytest.approx(10.0 + WINDOW_S - 14.0)
    assert refused.senders == 2 and refused.members == 2 and refused.used == 4
    later = await b.claim(10.0 + WINDOW_S + 0.5, cap=4)
    assert later is not None and later.delay == 0


async def test_a_429_seen_by_one_process_pauses_the_others(tmp_path: Path) -> None:
    a, b = member(tmp_path, 101), member(tmp_path, 102)
    await a.pause(100.0, until=130.0)
    claim = await b.claim(110.0, cap=100)
    assert claim is not None and claim.delay == pytest.approx(20.0)
    await a.pause(111.0, until=120.0)  # a shorter pause never cuts a longer one
    claim = await b.claim(112.0, cap=100)
    assert claim is not None and claim.delay == pytest.approx(18.0)
    claim = await b.claim(130.5, cap=100)
    assert claim is not None and claim.delay == 0


async def test_members_that_died_or_went_quiet_are_forgotten(tmp_path: Path) -> None:
    dead = {202}
    alive = lambda pid: pid not in dead  # noqa: E731
    a = Ledger(tmp_path, URL, "organization 1", pid=201, alive=alive)
    b = Ledger(tmp_path, URL, "organization 1", pid=202, alive=alive)
    c = Ledger(tmp_path, URL, "organization 1", pid=203, alive=alive)
    await b.claim(1.0, cap=10)
    await c.claim(2.0, cap=10)
    look = await a.look(3.0)
    assert look is not None and look.members == 2  # 201 and 203; 202 is dead
    look = await a.look(200.0)
    assert look is not None and look.members == 1  # 203 has not been seen for too long
    await c.leave()
    assert (look := await a.look(201.0)) is not None and look.members == 1


async def test_a_garbled_oversized_or_foreign_version_file_starts_afresh(tmp_path: Path) -> None:
    a = member(tmp_path, 101)
    for junk in (b"{not json", b'{"v": 99, "sends": [[1, 2]]}', b"[1, 2, 3]",
                 b'{"v": 1, "sends": [["x", 1], [5, "y"], [5]], "members": {"a": 1}}',
                 b'{"v": 1, "sends": 5}', b'{"v": 1, "members": [1]}',
                 b'{"v": 1, "sends": [[1, 99999999999999999999]], "members": {"99999999999": 1}}',
                 b'{"v": 1, "sends": [[1, true]], "members": {"-4": 1}}',
                 b" " * (LEDGER_MAX_BYTES + 10)):
        a.path.write_bytes(junk)
        claim = await a.claim(5.0, cap=1)
        assert claim is not None and claim.delay == 0 and claim.used == 1, junk[:20]
    assert a.broken is None


def test_an_unusable_directory_leaves_the_process_on_its_own_budget(tmp_path: Path) -> None:
    problems: list[str] = []
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert Ledger.open(blocker / "sub", URL, "token x", on_problem=problems.append) is None
    open_to_all = tmp_path / "open-to-all"
    open_to_all.mkdir()
    open_to_all.chmod(0o777)
    assert Ledger.open(open_to_all, URL, "token x", on_problem=problems.append) is None
    assert len(problems) == 2
    assert "own budget" in problems[0] and "not private" in problems[1]


async def test_a_new_directory_is_private_and_the_file_names_no_secret(tmp_path: Path) -> None:
    ledger = Ledger.open(tmp_path / "runtime" / "makestream", URL, "token s3cret-value")
    assert ledger is not None
    assert stat.S_IMODE((tmp_path / "runtime" / "makestream").stat().st_mode) == 0o700
    await ledger.claim(1.0, cap=5)
    assert stat.S_IMODE(ledger.path.stat().st_mode) == 0o600
    assert "s3cret" not in ledger.path.name and b"s3cret" not in ledger.path.read_bytes()


async def test_a_file_that_fails_later_is_said_once_and_then_left_alone(tmp_path: Path) -> None:
    problems: list[str] = []
    directory = tmp_path / "d"
    directory.mkdir()
    ledger = member(directory, 101, problems)
    assert await ledger.claim(1.0, cap=5) is not None
    ledger.path.unlink()
    directory.rmdir()  # the runtime directory went away (a logout, a tmp cleaner)
    assert await ledger.claim(2.0, cap=5) is None
    assert await ledger.claim(3.0, cap=5) is None
    assert len(problems) == 1 and "own budget" in problems[0]


async def test_moving_to_the_organizations_ledger_takes_this_processs_sends_along(
        tmp_path: Path) -> None:
    mine = Ledger(tmp_path, URL, "token a", pid=101, alive=lambda _p: True)
    other = Ledger(tmp_path, URL, "organization 7", pid=102, alive=lambda _p: True)
    for t in (1.0, 2.0):
        await mine.claim(t, cap=10)
    await other.claim(2.5, cap=10)
    await mine.adopt_account("organization 7", 3.0)
    assert mine.path == other.path
    look = await other.look(4.0)
    assert look is not None and look.used == 3 and look.members == 2


def test_keys_separate_zones_accounts_and_clocks() -> None:
    keys = {
        ledger_key(URL, "organization 1", 1), ledger_key(URL, "organization 2", 1),
        ledger_key("https://us1.make.com/api/v2", "organization 1", 1),
        ledger_key(URL, "organization 1", 20),
    }
    assert len(keys) == 4


def test_a_cron_job_and_a_login_session_find_the_same_folder(tmp_path: Path) -> None:
    # cron sets neither XDG_RUNTIME_DIR nor TMPDIR; a login session sets both.
    cron: dict[str, str] = {"HOME": "/root", "PATH": "/usr/bin"}
    session = {"XDG_RUNTIME_DIR": "/elsewhere", "TMPDIR": "/var/tmp/mine"}
    runtime = tmp_path / "run-user"
    (runtime / str(os.getuid())).mkdir(parents=True)
    for env in (cron, session):
        assert ledger_dir(env, run_root=runtime) == runtime / str(os.getuid()) / "makestream"
        assert ledger_dir(env, run_root=tmp_path / "none") == Path(
            f"/tmp/makestream-{os.getuid()}")
    assert ledger_dir({"MAKESTREAM_BUDGET_DIR": "/x/y"}) == Path("/x/y")


async def test_a_link_planted_in_place_of_the_folder_is_refused(tmp_path: Path) -> None:
    problems: list[str] = []
    (tmp_path / "theirs").mkdir()
    (tmp_path / "planted").symlink_to(tmp_path / "theirs")
    assert Ledger.open(tmp_path / "planted", URL, "token x", on_problem=problems.append) is None
    assert problems and "not private" in problems[0]


@contextlib.contextmanager
def lock_held(ledger: Ledger) -> Iterator[None]:
    """The ledger's lock taken, as by another process inside a decision."""
    fd = os.open(ledger.path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


async def test_a_taken_lock_delays_the_send_without_counting_it(tmp_path: Path) -> None:
    a = member(tmp_path, 101)
    assert await a.claim(1.0, cap=5) is not None
    with lock_held(a), anyio.fail_after(1):
        claim = await a.claim(2.0, cap=5)
        # Not sent uncounted past the cap: asked to try again a few milliseconds later.
        assert claim is not None and claim.busy and claim.delay > 0
    assert a.broken is None
    claim = await a.claim(3.0, cap=5)
    assert claim is not None and not claim.busy and claim.delay == 0
    assert claim.used == 2  # the first send and this one, not the one that found the lock taken


async def test_a_lock_held_for_good_is_not_waited_for_past_a_moment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ledger_module, "BUSY_WAIT_S", 0.05)
    a = member(tmp_path, 101)
    assert await a.claim(1.0, cap=5) is not None
    with lock_held(a), anyio.fail_after(1):  # another process, stopped inside the lock
        first = await a.claim(2.0, cap=5)
        assert first is not None and first.busy
        await anyio.sleep(0.06)
        assert await a.claim(2.5, cap=5) is None  # decided alone from now on
        assert await a.claim(2.6, cap=5) is None
    claim = await a.claim(3.0, cap=5)
    assert claim is not None and not claim.busy and claim.used == 2
    # The lock got again: a later taken lock is waited for again.
    with lock_held(a):
        later = await a.claim(4.0, cap=5)
        assert later is not None and later.busy


async def test_only_claims_time_a_spell_of_taken_locks(tmp_path: Path) -> None:
    a = member(tmp_path, 101)
    assert await a.claim(1.0, cap=5) is not None
    with lock_held(a):
        await a.pause(1.5, until=100.0)  # found the lock taken: kept for the next decision
        await anyio.sleep(0.05)
        claim = await a.claim(2.0, cap=5)
        assert claim is not None and claim.busy  # waits: a pause or a look starts no spell
    claim = await a.claim(3.0, cap=5)
    assert claim is not None and claim.paused and claim.delay == pytest.approx(97.0)
    b = member(tmp_path, 102)
    theirs = await b.claim(4.0, cap=5)
    assert theirs is not None and theirs.paused  # the pause reached the other process


async def test_a_budget_waits_for_a_taken_lock_then_counts_its_send(tmp_path: Path) -> None:
    ledger = member(tmp_path, 101)
    budget = Budget(60, clock=Clock(1))
    budget.share_with(ledger)
    await ledger.look(budget.clock.monotonic())  # the file exists, no send in it
    sent = anyio.Event()

    async def send() -> None:
        await budget.acquire()
        sent.set()

    with anyio.fail_after(2):
        async with anyio.create_task_group() as tg:
            with lock_held(ledger):
                tg.start_soon(send)
                await anyio.sleep(0.05)
                assert not sent.is_set()  # waits for the holder's decision
            await sent.wait()
    claim = await ledger.look(budget.clock.monotonic())
    assert claim is not None and claim.used == 1  # counted in the ledger, not sent past it


async def test_a_pause_seen_by_another_process_slows_this_one_down_too(tmp_path: Path) -> None:
    clock = Clock(60)
    mine, theirs = Budget(60, clock=clock), Budget(60, clock=clock)
    mine.share_with(member(tmp_path, 101))
    theirs.share_with(member(tmp_path, 102))
    await mine.acquire()
    theirs.throttled(30.0)  # their request got a 429
    await theirs.share_pause()
    with anyio.move_on_after(0.1):  # 6 clock seconds: well within the pause
        await mine.acquire()
    snap = mine.snapshot()
    assert snap.throttled_until is not None
    assert snap.rate_per_min < 48  # halved like the one that saw the 429, not bursting after


async def test_a_light_sender_costs_a_busy_one_only_what_it_sends(tmp_path: Path) -> None:
    clock = Clock(1)
    light = member(tmp_path, 102)
    busy = Budget(60, clock=clock)
    busy.share_with(member(tmp_path, 101))
    now = clock.monotonic()
    for _ in range(3):
        await light.claim(now, cap=48)
    await busy.acquire()
    snap = busy.snapshot()
    assert snap.processes == 2
    assert snap.rate_per_min == pytest.approx(48 - 3)  # not 48 / 2


class Recording(Ledger):
    """A ledger that keeps the clock time of every send it counted: the times the shared cap
    holds for (times read after acquire() returns run late on a busy machine at a fast clock)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.granted: list[float] = []

    async def claim(self, now: float, cap: int) -> Claim | None:
        claim = await super().claim(now, cap)
        if claim is not None and claim.delay <= 0:
            self.granted.append(now)
        return claim


async def busy_callers(budgets: dict[Any, Budget], clock: Clock, seconds: float,
                       callers: int) -> dict[Any, list[float]]:
    """`callers` tasks per budget acquiring as fast as they are let through for `seconds`
    (clock): when each acquire returned, per budget (a little after the budget let it go, at a
    fast clock on a busy machine)."""
    sent: dict[Any, list[float]] = {name: [] for name in budgets}

    async def caller(name: Any) -> None:
        while True:
            await budgets[name].acquire()
            sent[name].append(clock.monotonic())

    async with anyio.create_task_group() as tg:
        for name in budgets:
            for _ in range(callers):
                tg.start_soon(caller, name)
        await clock.sleep(seconds)
        tg.cancel_scope.cancel()
    return sent


def busiest(times: list[float], window_s: float) -> int:
    """The most of `times` in any window of `window_s`."""
    every = sorted(times)
    return max(sum(1 for t in every if s <= t < s + window_s) for s in every)


async def test_two_busy_budgets_on_one_ledger_keep_to_one_share_and_split_it(
        tmp_path: Path) -> None:
    clock = Clock(120)
    budgets = {}
    ledgers = {}
    for pid in (1, 2):
        budget = Budget(60, clock=clock)
        ledgers[pid] = Recording(tmp_path, URL, "organization 1", pid=pid, speed=clock.speed,
                                 alive=lambda _p: True)
        budget.share_with(ledgers[pid])
        budgets[pid] = budget
    returned = await busy_callers(budgets, clock, 180, callers=5)
    sent = {pid: ledger.granted for pid, ledger in ledgers.items()}
    # Every send a budget let through is one the ledger counted, and only those.
    assert {pid: len(times) for pid, times in returned.items()} == {
        pid: len(times) for pid, times in sent.items()}
    every = sent[1] + sent[2]
    assert busiest(every, WINDOW_S) <= 48
    assert len(every) >= 100  # the share is used, not starved
    # Pacing divides the rate between the two: neither takes the lion's share.
    assert 0.35 <= len(sent[1]) / len(every) <= 0.65
    snap = budgets[1].snapshot()
    assert snap.processes == 2 and snap.total_rate_per_min == pytest.approx(48)
