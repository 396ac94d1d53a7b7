"""Simulated time for the PBX: when things happen, and what time it is.

Everything time-related in the simulated Asterisk goes through a :class:`Clock`:
the timed steps of a call (ringing, answer, hangup), and the wall-clock values
that end up on the wire (Uniqueid, ``Timestamp:``, ``ExpirationTime``,
``CoreStartupDate``). Two implementations:

* :class:`RealClock` runs steps on one daemon timer thread, optionally faster or
  slower than real time (``speed=10`` makes a 20 s ring timeout last 2 s);
* :class:`ManualClock` never runs anything on its own: tests call
  :meth:`ManualClock.advance` and every step that falls due runs synchronously,
  in time order, in the caller's thread. Its wall clock starts at a fixed epoch,
  so Uniqueids and timestamps are reproducible.

Steps must not block; an exception in a step is logged and does not stop the
clock.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

#: ManualClock's default wall-clock start: 2026-11-27 03:19:39 UTC, the start of
#: the Asterisk 22.10.1 lab in the recordings (tests/data/transcripts, CoreStatus).
DEFAULT_MANUAL_EPOCH = 1795749579.0


class Timer:
    """A scheduled step. :meth:`cancel` stops it from running (no effect once it ran)."""

    __slots__ = ("due", "callback", "args", "cancelled")

    def __init__(self, due: float, callback: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.due = due
        self.callback = callback
        self.args = args
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


def _run(timer: Timer) -> None:
    try:
        timer.callback(*timer.args)
    except Exception:
        log.exception("simulated PBX step %r failed", timer.callback)


class Clock(ABC):
    """Simulated time: ``monotonic()`` for durations, ``wall()`` for epoch values,
    ``call_later()`` for timed steps. All methods are thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: list[tuple[float, int, Timer]] = []
        self._order = itertools.count()

    @abstractmethod
    def monotonic(self) -> float:
        """Simulated seconds since an arbitrary origin; never goes back."""

    @abstractmethod
    def wall(self) -> float:
        """Simulated Unix time in seconds (what Asterisk's ``time()`` would say)."""

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> Timer:
        """Run ``callback(*args)`` once ``delay`` simulated seconds have passed.
        Steps due at the same time run in the order they were scheduled."""
        timer = Timer(self.monotonic() + max(0.0, delay), callback, args)
        with self._lock:
            heapq.heappush(self._queue, (timer.due, next(self._order), timer))
        self._scheduled()
        return timer

    def pending(self) -> int:
        """How many steps are scheduled and not cancelled."""
        with self._lock:
            return sum(1 for _, _, t in self._queue if not t.cancelled)

    def close(self) -> None:
        """Drop every scheduled step (and stop the timer thread, if any)."""
        with self._lock:
            self._queue.clear()

    def _pop_due(self, now: float) -> Timer | None:
        with self._lock:
            while self._queue and self._queue[0][0] <= now:
                timer = heapq.heappop(self._queue)[2]
                if not timer.cancelled:
                    return timer
            return None

    def _scheduled(self) -> None:
        """Hook: a step was added (the real clock wakes its thread)."""


class ManualClock(Clock):
    """Time stands still until :meth:`advance` moves it; for tests and notebooks
    that want to step through a call."""

    def __init__(self, epoch: float = DEFAULT_MANUAL_EPOCH) -> None:
        super().__init__()
        self._now = 0.0
        self._epoch = epoch

    def monotonic(self) -> float:
        return self._now

    def wall(self) -> float:
        return self._epoch + self._now

    def advance(self, seconds: float = 0.0) -> None:
        """Move time forward by ``seconds``, running every step that falls due,
        in time order, at its own time (steps scheduled by steps are included)."""
        if seconds < 0:
            raise ValueError("time cannot go backwards")
        end = self._now + seconds
        while True:
            with self._lock:
                head = self._queue[0][0] if self._queue else None
            if head is None or head > end:
                break
            self._now = max(self._now, head)
            timer = self._pop_due(self._now)
            if timer is not None:
                _run(timer)
        self._now = end


class RealClock(Clock):
    """Real time times ``speed``: a step scheduled ``d`` seconds ahead runs after
    ``d / speed`` real seconds, on a single daemon thread started on first use.
    The thread never prints; failures go to :mod:`logging`."""

    def __init__(self, speed: float = 1.0) -> None:
        if not speed > 0:
            raise ValueError("speed must be a positive number")
        super().__init__()
        self.speed = speed
        self._real0 = time.monotonic()
        self._wall0 = time.time()
        self._wakeup = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None
        self._closed = False

    def monotonic(self) -> float:
        return (time.monotonic() - self._real0) * self.speed

    def wall(self) -> float:
        return self._wall0 + self.monotonic()

    def _scheduled(self) -> None:
        with self._lock:
            if self._closed:
                return
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="amilab-sim-clock", daemon=True
                )
                self._thread.start()
            self._wakeup.notify()

    def _loop(self) -> None:
        while True:
            with self._lock:
                while not self._closed:
                    if self._queue:
                        wait = (self._queue[0][0] - self.monotonic()) / self.speed
                        if wait <= 0:
                            break
                    else:
                        wait = None
                    self._wakeup.wait(wait)
                if self._closed:
                    return
            timer = self._pop_due(self.monotonic())
            if timer is not None:
                _run(timer)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._queue.clear()
            self._wakeup.notify()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=2.0)
