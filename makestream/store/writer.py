"""The store's writer: a thread with a bounded queue, so that the stream never waits for the disk.

`offer(event)` never blocks: it puts the event on a queue of QUEUE_MAX items (and counts what it
had to drop when the queue is full). The thread takes up to BATCH_MAX events at a time and writes
them in one transaction with `INSERT OR IGNORE` on their keys (see `rows`), so a batch that two
processes, or a restarted watch, write again changes nothing. A crash mid-batch rolls that batch
back and leaves every earlier one.

Failures never reach the stream as exceptions. The first is kept in `problem` for the caller to
report once (`take_problem`); then:

- a file that cannot be used at all (damaged, another program's, newer schema, read-only) turns
  the writer off: later events are dropped;
- a locked file or a full disk is retried with backoff, holding the batch; events that arrive
  meanwhile wait in the queue, and past its size are dropped (and counted).

`offer` returns a ticket; `wait_stored(ticket)` blocks until that event is on disk, for a caller
whose own progress marker must never run ahead of the store (`watch --cursor-file`).

Retention: every PRUNE_EVERY_S the thread deletes at most PRUNE_CHUNK rows older than `keep_s`
from each table, so a large backlog is trimmed a little at a time, never in one long lock.
"""

from __future__ import annotations

import contextlib
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from makestream.events import _Event
from makestream.store import query
from makestream.store.rows import STORED_TYPES, CoverageRow, ExecutionRow, NoteRow, to_row
from makestream.store.schema import StoreError, describe, open_write

QUEUE_MAX = 20_000
# How long starting the writer waits for its first try at opening the file (milliseconds, as a
# rule; longer only on a very slow disk, and then the stream does not wait for it further).
OPEN_WAIT_S = 2.0
BATCH_MAX = 1000
PRUNE_EVERY_S = 60.0
PRUNE_CHUNK = 5000
RETRY_MIN_S = 0.5
RETRY_MAX_S = 30.0

_STOP = object()
ScenarioInfo = tuple[int, str | None, int | None]  # id, name, team


@dataclass(frozen=True)
class _Spans:
    rows: list[CoverageRow]


class StoreWriter:
    """Writes stored events to a store file from its own thread; see the module docstring."""

    def __init__(
        self,
        path: Path,
        *,
        keep_s: float,
        now: Callable[[], float] = time.time,
        queue_max: int = QUEUE_MAX,
        zone: str = "",
    ) -> None:
        self.path = path
        self.keep_s = keep_s
        self.zone = zone  # the Make host the events come from (see `recorder.zone_of`)
        self.now = now
        self._queue: queue.Queue[object] = queue.Queue(maxsize=queue_max)
        self._thread = threading.Thread(target=self._run, name="makestream-store", daemon=True)
        self._lock = threading.Lock()
        self._problem: str | None = None
        self._reported = False
        self.off = False  # the file cannot be used; events are dropped
        self.dropped = 0
        self.written = 0  # rows newly stored (not counting ones already there)
        self._last_prune = 0.0
        self._stopping = threading.Event()
        self._opened = threading.Event()  # the first attempt to open the file is over
        # Items queued and items done with (written or given up), in queue order: a caller can
        # wait until what it offered is on disk (`wait_stored`).
        self._queued = 0
        self._done = 0
        self._progress = threading.Condition()

    # -- the caller's side (the event loop) -----------------------------------------------------

    def start(self) -> StoreWriter:
        """Start the thread, and give it a moment to open the file: a file that cannot be used
        is then known before the stream begins, so its first event already says so."""
        self._thread.start()
        self._opened.wait(OPEN_WAIT_S)
        return self

    def offer(self, event: _Event) -> int:
        """Queue an event to be stored, if it is a kind the store keeps. Never blocks.

        Returns a ticket for `wait_stored`, or 0 when the event was not queued."""
        if event.type in STORED_TYPES and not self.off and not getattr(event, "from_store", False):
            return self._put(event)
        return 0

    def note_scenarios(self, scenarios: Iterable[ScenarioInfo]) -> None:
        """Remember scenario names and teams (for `history --team` and display)."""
        if not self.off:
            self._put(list(scenarios))

    def cover(self, spans: Iterable[CoverageRow]) -> None:
        """Record spans in which a stream reported every run (see `store.replay`). Queued after
        the events offered so far, and written in their transaction or a later one, so that a
        span on disk never vouches for a run that is not. Refused once any event was dropped:
        the spans would then vouch for a run that is missing."""
        if not self.off and not self.dropped:
            self._put(_Spans(list(spans)))

    def _put(self, item: object) -> int:
        with self._progress:  # one producer in practice; the lock keeps tickets in queue order
            try:
                self._queue.put_nowait(item)
            except queue.Full:
                self.dropped += 1
                self._fail(
                    f"history store {self.path}: writes fall behind; events are being dropped"
                )
                return 0
            self._queued += 1
            return self._queued

    def mark(self) -> int:
        """The ticket of the last event queued so far (0 when none was)."""
        with self._progress:
            return self._queued

    def wait_stored(self, ticket: int, timeout: float) -> bool:
        """Block until the item with this ticket is written (True) or given up, or until
        `timeout` passes or the writer has a problem (False). Call it off the event loop."""
        with self._progress:
            self._progress.wait_for(
                lambda: self._done >= ticket or self._problem is not None, timeout
            )
            return self._done >= ticket and not self.off and self._problem is None

    def _finished(self, count: int) -> None:
        with self._progress:
            self._done += count
            self._progress.notify_all()

    def take_problem(self) -> str | None:
        """The first problem the writer met, once; None if there is none or it was taken."""
        with self._lock:
            if self._problem is None or self._reported:
                return None
            self._reported = True
            return self._problem

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything offered so far is written (or given up); False on timeout."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            if not self._thread.is_alive():
                return False
            time.sleep(0.005)
        return not self._queue.unfinished_tasks

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued (waiting at most `timeout`), then stop the thread."""
        if not self._thread.is_alive():
            return
        self._stopping.set()
        with contextlib.suppress(queue.Full):
            self._queue.put(_STOP, timeout=timeout)
        self._thread.join(timeout)

    # -- the thread -----------------------------------------------------------------------------

    def _fail(self, message: str) -> None:
        with self._lock:
            if self._problem is None:
                self._problem = message
        with self._progress:
            self._progress.notify_all()

    def _run(self) -> None:
        delay = RETRY_MIN_S
        while True:
            try:
                conn = open_write(self.path)
                break
            except StoreError as exc:
                if "locked" not in exc.message or self._stopping.is_set():
                    self._turn_off(exc.message)
                    self._opened.set()
                    return
                # Another process holds the file (a long migration, a backup): wait for it.
                self._fail(f"{exc.message}; retrying, events wait meanwhile")
                self._opened.set()
                time.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
        self._opened.set()
        try:
            self._loop(conn)
        finally:
            conn.close()

    def _turn_off(self, message: str) -> None:
        self._fail(f"{message}; events are not being stored")
        self.off = True
        self._drain()

    def _drain(self) -> None:
        """Mark everything queued as done (dropped), so that flush() does not wait for it."""
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is not _STOP:
                self._finished(1)
            self._queue.task_done()

    def _loop(self, conn: sqlite3.Connection) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < BATCH_MAX:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stop = any(item is _STOP for item in batch)
            items = [item for item in batch if item is not _STOP]
            try:
                if items:
                    self._write(conn, items)
                self._maybe_prune(conn)
            except StoreError as exc:
                self._turn_off(exc.message)  # first: a waiter must not take the batch as written
                self._finished(len(items))
                for _ in batch:
                    self._queue.task_done()
                return
            self._finished(len(items))
            for _ in batch:
                self._queue.task_done()
            if stop:
                return

    def _write(self, conn: sqlite3.Connection, items: list[object]) -> None:
        """Write one batch, retrying a locked file or a full disk with backoff."""
        executions: list[ExecutionRow] = []
        notes: list[NoteRow] = []
        scenarios: list[ScenarioInfo] = []
        spans: list[CoverageRow] = []
        for item in items:
            if isinstance(item, _Spans):
                spans.extend(item.rows)
                continue
            if isinstance(item, list):
                scenarios.extend(item)
                continue
            assert isinstance(item, _Event)
            row = to_row(item, self.zone)
            if isinstance(row, ExecutionRow):
                executions.append(row)
            elif isinstance(row, NoteRow):
                notes.append(row)
        delay = RETRY_MIN_S
        while True:
            try:
                self.written += query.insert(
                    conn, executions, notes, scenarios, now_ms=int(self.now() * 1000),
                    coverage=spans,
                )
                return
            except sqlite3.Error as exc:
                message = describe(exc, self.path)
                low = str(exc).lower()
                if not ("locked" in low or "busy" in low or "full" in low):
                    raise StoreError(message) from None
                self._fail(f"{message}; retrying, events wait meanwhile")
                if self._stopping.is_set():
                    raise StoreError(message) from None
                time.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)

    def _maybe_prune(self, conn: sqlite3.Connection) -> None:
        now = self.now()
        if now - self._last_prune < PRUNE_EVERY_S:
            return
        self._last_prune = now
        try:
            query.prune(conn, cutoff_ms=int((now - self.keep_s) * 1000), limit=PRUNE_CHUNK)
        except sqlite3.Error as exc:
            low = str(exc).lower()
            if not ("locked" in low or "busy" in low):
                raise StoreError(describe(exc, self.path)) from None
