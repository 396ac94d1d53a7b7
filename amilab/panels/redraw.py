"""The throttled redraw thread of a live panel.

Events may arrive 20,000 times a second; a widget must not be updated that
often: Jupyter Server drops iopub messages above its rate limits, and a panel
updated once per event was measured freezing on a stale value at 5,000
events/s. So a reader thread only appends to a ring, and one
:class:`RedrawLoop` thread per panel redraws from the ring at most once per
``interval``, and less often when a redraw sends so many bytes that
``interval`` would break the data budget.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)
#: How long close() waits for the redraw thread: a stuck draw must not hang the kernel.
_JOIN_TIMEOUT = 2.0

#: Bytes per second a panel may send to the browser. Jupyter Server drops
#: iopub output above ``iopub_data_rate_limit`` (1,000,000 bytes/s by default,
#: averaged over 3 s); a panel keeps to half of it.
DATA_RATE_BUDGET = 500_000


class RedrawLoop:
    """Calls ``draw()`` from a background thread at most once per ``interval``.

    ``draw()`` returns how many bytes it sent to the widgets, or None when
    nothing changed since the last draw (then nothing is counted and the next
    change is drawn at once, if ``interval`` has passed). After a draw of
    ``n`` bytes the next one waits ``max(interval, n / DATA_RATE_BUDGET)``
    seconds, read from ``clock`` (injectable: tests pass a manual clock and
    call :meth:`tick` themselves).

    What a caller can rely on: draws never overlap (one lock), :attr:`draws`
    counts them all, :meth:`stop` returns only once the thread has ended.
    An exception in ``draw()`` is logged, kept in :attr:`error` and ends the
    thread (a broken redraw would otherwise fail five times a second).
    """

    def __init__(
        self,
        draw: Callable[[], int | None],
        *,
        interval: float,
        clock: Callable[[], float],
        name: str,
    ) -> None:
        if not interval > 0:
            raise ValueError(f"interval must be a positive number of seconds, not {interval!r}")
        self.interval = interval
        self._draw = draw
        self._clock = clock
        self._name = name
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._last: float | None = None
        self._pause = 0.0
        #: Draws done so far (by the thread, by :meth:`tick` and by :meth:`draw_now`).
        self.draws = 0
        #: The exception that ended the thread, if one did.
        self.error: Exception | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start the thread (no effect while it runs)."""
        if self.running:
            return
        self._stopping.clear()
        self.error = None
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def stop_soon(self) -> None:
        """Ask the thread to end after its current draw, without waiting: safe
        from inside ``draw()``, which runs under the lock the thread may wait for."""
        self._stopping.set()

    def stop(self) -> None:
        """Stop the thread and wait for it (at once when called from the thread itself).
        Never call it from inside ``draw()``: use :meth:`stop_soon`."""
        self._stopping.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=_JOIN_TIMEOUT)
            if thread.is_alive():
                log.error("%s did not stop within %s s (a draw is stuck)", thread.name,
                          _JOIN_TIMEOUT)

    def tick(self) -> bool:
        """Draw if ``interval`` (or the data budget's pause) has passed since the
        last draw. Returns whether it drew something."""
        with self._lock:
            now = self._clock()
            if self._last is not None and self._last <= now < self._last + self._pause:
                return False  # (a clock that went back counts as due)
            return self._draw_locked(now)

    def draw_now(self) -> bool:
        """Draw at once, whatever the interval (a user's click, the final redraw)."""
        with self._lock:
            return self._draw_locked(self._clock())

    def _draw_locked(self, now: float) -> bool:
        sent = self._draw()
        if sent is None:
            return False
        self.draws += 1
        self._last = now
        self._pause = max(self.interval, sent / DATA_RATE_BUDGET)
        return True

    def _run(self) -> None:
        wait = self.interval
        while not self._stopping.wait(wait):
            try:
                self.tick()
            except Exception as err:
                self.error = err
                log.exception("%s: redraw failed; live updates stopped", self._name)
                return
            wait = self._until_due()

    def _until_due(self) -> float:
        """Sleep until the next draw may happen, so a change waits at most ``interval``."""
        with self._lock:
            if self._last is None:
                return self.interval
            left = self._last + self._pause - self._clock()
        return min(self.interval, left) if left > 0.001 else self.interval
