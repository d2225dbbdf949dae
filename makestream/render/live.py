"""The live terminal view: events in, a redrawn screen out, a summary left behind.

`LiveWriter` has the same two methods as every writer (`write(event)`, `close()`). On a
terminal it draws with `rich.live.Live`, whose own thread redraws a few times a second: the
picture keeps moving (elapsed times, ETAs) while no event arrives, and a burst of events costs
one redraw, not one each. Anywhere else (a pipe, a file, `makestream render` of a saved stream)
it draws nothing while events arrive and prints the final view once, at `close()`. Either way
`close()` ends with the summary, which stays in the scrollback.

Elapsed times between events are extrapolated from the latest event's `ts` with the wall clock,
so the view ticks at real-time speed; the next event corrects it.

What is drawn comes from the view model, which cleans Make's text as it takes it in
(`makestream.render.view`); the frame and the summary are also wrapped in `Sanitized`, the last
check before rich writes to the terminal.
"""

from __future__ import annotations

import atexit
import threading
import time
from collections.abc import Callable, Mapping
from typing import IO, TYPE_CHECKING, Any

from makestream.render.console import Sanitized, make_console
from makestream.render.view import ViewState, apply

if TYPE_CHECKING:
    from rich.console import Console, RenderableType
    from rich.live import Live

    from makestream.events import _Event
    from makestream.make.models import Blueprint


class LiveWriter:
    """Shows events as a live view on a terminal; prints the final view and a summary at close."""

    def __init__(
        self,
        target: Console | IO[str],
        *,
        color: Any = "auto",
        blueprints: Mapping[int, Blueprint] | None = None,
        animate: bool | None = None,
        refresh_per_second: float = 4.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        from rich.console import Console

        self.console = target if isinstance(target, Console) else make_console(target, color)
        self.state = ViewState()
        # Blueprints may be added while the view runs (the caller fetches them as scenarios
        # appear), so keep a reference to the caller's mapping rather than a copy.
        self.blueprints: Mapping[int, Blueprint] = blueprints if blueprints is not None else {}
        terminal = self.console.is_terminal and not self.console.is_dumb_terminal
        self.animate = terminal if animate is None else animate and terminal
        self.refresh_per_second = refresh_per_second
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._received_at: float | None = None
        self._live: Live | None = None
        self._closed = False

    # -- the writer interface -------------------------------------------------------------------

    def write(self, event: _Event) -> None:
        with self._lock:
            apply(self.state, event)
            self._received_at = self._monotonic()
        if self.animate and self._live is None and not self._closed:
            self._start()

    def close(self) -> None:
        """Stop drawing and leave the summary (and, when nothing was animated, the final view)."""
        if self._closed:
            return
        self._closed = True
        if self._live is not None:
            self._stop_live()
        else:
            self.console.print(self.frame())
            self.console.print()
        self.console.print(self.summary())

    # -- drawing --------------------------------------------------------------------------------

    def stream_now(self) -> float | None:
        """Stream time now: the latest event's time, advanced by the wall clock since then."""
        now = self.state.now
        if now is None or self._received_at is None or not self.animate or self._closed:
            return now
        return now + max(0.0, self._monotonic() - self._received_at)

    def frame(self) -> RenderableType:
        """The screen as it should look now (called by rich's refresh thread)."""
        from makestream.render.screen import screen

        width, rows = self.console.size
        # A pipe or a file has no bottom: show everything the view keeps.
        height = rows if self._fits_screen() else None
        with self._lock:
            return Sanitized(screen(self.state, now=self.stream_now(), width=width, height=height,
                                    blueprints=self.blueprints, ascii_only=self._ascii_only()))

    def summary(self) -> RenderableType:
        from makestream.render.summary import summary

        with self._lock:
            return Sanitized(summary(self.state, ascii_only=self._ascii_only()))

    def _fits_screen(self) -> bool:
        """Whether the view must fit a height: a terminal's, or one the console was given
        (LINES, or a caller's `height`). A pipe has none; rich would assume 25 lines."""
        if self.console.is_terminal and not self.console.is_dumb_terminal:
            return True
        # rich keeps the height it was given (or read from LINES) here, and None otherwise.
        return getattr(self.console, "_height", None) is not None

    def _ascii_only(self) -> bool:
        return not self.console.encoding.startswith("utf")

    def _start(self) -> None:
        from rich.live import Live

        self._live = Live(
            console=self.console,
            get_renderable=self.frame,
            refresh_per_second=self.refresh_per_second,
            # The view is replaced by the summary at close; only the summary should remain.
            transient=True,
            redirect_stdout=False,
            vertical_overflow="crop",
        )
        self._live.start()
        # A caller that dies without close() must not leave the cursor hidden.
        atexit.register(self._stop_live)

    def _stop_live(self) -> None:
        live, self._live = self._live, None
        if live is not None:
            atexit.unregister(self._stop_live)
            live.stop()
