"""EventStreamPanel: Step 7's live event stream as a table, newest on top.

The client's reader thread only appends each event to an
:class:`~amilab.frames.EventLog` ring (no widget is touched per event); a
:class:`~amilab.panels.redraw.RedrawLoop` thread turns the ring into the
table, the counts per event type and the status line a few times a second.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable
from fnmatch import translate
from typing import Protocol

import ipywidgets as widgets
import pandas as pd

from amilab.frames import EventLog
from amilab.panels.base import Panel
from amilab.panels.redraw import RedrawLoop
from amilab.panels.tables import html_table
from amilab.protocol import Message
from amilab.sim.classes import CLASSES

#: The table's columns. ``Details`` holds every other header as
#: ``Name: value`` pairs joined by :data:`DETAILS_SEPARATOR`: the event's own
#: headers first, then its channel snapshot (:data:`CHANNEL_SNAPSHOT`), each
#: group in wire order, so that a VarSet row starts with its Variable and
#: Value. The headers in wire order, as a tidy table: ``panel.log.to_frame()``.
COLUMNS: tuple[str, ...] = ("Received", "Event", "Privilege", "Channel", "Details")
DETAILS_SEPARATOR = " · "
#: The channel snapshot every channel event carries after Channel, the same in
#: dozens of events of one call (Asterisk 22 main/manager_channels.c).
CHANNEL_SNAPSHOT = frozenset({
    "ChannelState", "ChannelStateDesc", "CallerIDNum", "CallerIDName", "ConnectedLineNum",
    "ConnectedLineName", "Language", "AccountCode", "Context", "Exten", "Priority", "Uniqueid",
    "Linkedid",
})
#: The events/s figure counts arrivals over this many seconds.
RATE_WINDOW = 2.0
#: The class filter's "no filter" choice.
ANY_CLASS = "any class"
_SHOWN_ELSEWHERE = frozenset({"Event", "Privilege", "Channel"})
_Row = tuple[float, str, str, str, str]


class EventSource(Protocol):
    """What the panel needs from a client (:class:`~amilab.AMIClient` has it)."""

    def on_event(self, pattern: str, callback: Callable[[Message], object]) -> Callable[[], None]:
        ...


class EventStreamPanel(Panel):
    """Every event the client receives, newest first, live.

    Controls: Pause/Start, Clear, a filter on event names (globs, any case,
    several separated by commas: ``Dial*, Hangup``) and one on the event class
    (the ``Privilege`` header: ``call``, ``dtmf``...). Filters apply to the
    table only, at once, over every event held; the counts per event type and
    the rate cover everything held.

    What a caller can rely on:

    * The ring holds the newest ``maxlen`` events; older ones are pushed out
      and counted (``log.evicted``), so ``log.appended == log.evicted +
      len(log)``: memory is bounded and no loss goes uncounted.
    * The widgets are redrawn at most once per ``interval`` seconds (less often
      if a redraw is large: see :data:`~amilab.panels.redraw.DATA_RATE_BUDGET`),
      only when something changed, and once more when the stream stops.
    * :meth:`pause` (and :meth:`close`) removes the callback from the client and
      stops the redraw thread before returning; events that arrive while paused
      are not recorded. When the connection ends the panel stops by itself.
    * :meth:`frame`, :meth:`counts` and :attr:`status` return exactly what is shown.
    """

    css_class = "amilab-event-panel"

    def __init__(
        self,
        client: EventSource,
        *,
        rows: int = 50,
        maxlen: int = 10_000,
        interval: float = 0.2,
        clock: Callable[[], float] = time.time,
        start: bool = True,
    ) -> None:
        super().__init__()
        if rows < 1:
            raise ValueError(f"rows must be at least 1, not {rows}")
        self._client = client
        self._rows = rows
        self._log = EventLog(maxlen, clock=clock)
        self._remove: Callable[[], None] | None = None
        self._ended = False
        self._pattern: re.Pattern[str] | None = None
        self._pattern_text = ""
        self._event_class = ""
        self._view_version = 0
        self._drawn_key: tuple[object, ...] | None = None
        self._shown: list[_Row] = []
        self._shown_counts: list[tuple[str, int]] = []
        self._loop = RedrawLoop(
            self._draw, interval=interval, clock=clock, name="amilab-event-panel redraw"
        )

        self._toggle = widgets.Button(description="Pause", icon="pause")
        self._toggle.add_class("amilab-event-toggle")
        self._toggle.on_click(lambda _: self.pause() if self.running else self.start())
        self._clear = widgets.Button(description="Clear", icon="trash")
        self._clear.add_class("amilab-event-clear")
        self._clear.on_click(lambda _: self.clear())
        self._pattern_box = widgets.Text(
            value="*", description="Events", placeholder="Dial*, Hangup", continuous_update=False
        )
        self._pattern_box.add_class("amilab-event-pattern")
        self._class_box = widgets.Dropdown(
            options=[ANY_CLASS, *CLASSES], value=ANY_CLASS, description="Class"
        )
        self._class_box.add_class("amilab-event-class")
        self._pattern_box.observe(self._filter_changed, names="value")
        self._class_box.observe(self._filter_changed, names="value")
        # min_width 0 lets the table's box shrink to the notebook's width and scroll
        self._table = widgets.HTML(layout=widgets.Layout(flex="1 1 auto", min_width="0"))
        self._table.add_class("amilab-event-table")
        self._counts_html = widgets.HTML(layout=widgets.Layout(flex="0 0 auto"))
        self._counts_html.add_class("amilab-event-counts")
        self._widget = self._root(
            widgets.HBox([self._toggle, self._clear, self._pattern_box, self._class_box]),
            widgets.HBox([self._counts_html, self._table]),  # the narrow counts first
        )
        if start:
            self.start()
        else:
            self._loop.draw_now()

    # -- control ------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """True while events are being recorded."""
        return self._remove is not None

    @property
    def rows(self) -> int:
        """How many rows the table shows at most."""
        return self._rows

    @property
    def interval(self) -> float:
        """Seconds between two redraws, at least."""
        return self._loop.interval

    @property
    def log(self) -> EventLog:
        """The ring of held events: ``panel.log.to_frame()`` is their full table."""
        return self._log

    @property
    def redraws(self) -> int:
        """How many times the widgets were redrawn."""
        return self._loop.draws

    def start(self) -> None:
        """Record events again (no effect while running)."""
        if self._remove is not None:
            return
        self._ended = False
        self._remove = self._client.on_event("*", self._log.append)
        self._loop.start()
        self._toggle.description, self._toggle.icon = "Pause", "pause"
        self._loop.draw_now()

    def pause(self) -> None:
        """Stop recording: remove the callback, stop the redraw thread, redraw once."""
        self._stop_listening()
        self._loop.stop()
        self._loop.draw_now()

    def close(self) -> None:
        """Pause, then close the widgets."""
        self.pause()
        super().close()

    def clear(self) -> None:
        """Forget every held event and reset the counters."""
        self._log.clear()
        self._view_version += 1
        self._loop.draw_now()

    def set_filter(self, pattern: str = "*", event_class: str | None = None) -> None:
        """Show only events whose name matches ``pattern`` (globs separated by
        commas, any case) and whose Privilege includes ``event_class``
        (None: any). Same as typing in the panel's boxes."""
        if event_class is not None and event_class not in CLASSES:
            raise ValueError(
                f"unknown event class {event_class!r}; Asterisk's classes are: {', '.join(CLASSES)}"
            )
        self._pattern_box.value = pattern
        self._class_box.value = event_class or ANY_CLASS

    def tick(self) -> bool:
        """Redraw if something changed and the interval has passed (the redraw
        thread calls this; tests with a manual clock call it themselves)."""
        return self._loop.tick()

    def _stop_listening(self) -> None:
        remove, self._remove = self._remove, None
        if remove is not None:
            remove()
        self._toggle.description, self._toggle.icon = "Start", "play"

    def _filter_changed(self, _change: object) -> None:
        globs = [g.strip() for g in self._pattern_box.value.split(",") if g.strip()]
        self._pattern_text = ", ".join(globs)
        if not globs or "*" in globs:
            self._pattern = None
        else:
            self._pattern = re.compile("|".join(translate(g) for g in globs), re.IGNORECASE)
        self._event_class = "" if self._class_box.value == ANY_CLASS else self._class_box.value
        self._view_version += 1
        self._loop.draw_now()

    # -- what is shown ------------------------------------------------------------

    def frame(self) -> pd.DataFrame:
        """The table as shown: :data:`COLUMNS`, newest first, ``Received`` as UTC times."""
        shown = self._shown
        micros = (pd.Series([r[0] for r in shown], dtype="float64") * 1_000_000).round()
        frame = pd.DataFrame({
            "Received": pd.to_datetime(micros, unit="us", utc=True).astype("datetime64[us, UTC]"),
            **{name: pd.Series([r[i] for r in shown], dtype="str")
               for i, name in enumerate(COLUMNS[1:], 1)},
        })
        return frame

    def counts(self) -> pd.Series:
        """Events held per event name, as shown: most frequent first."""
        names, numbers = zip(*self._shown_counts) if self._shown_counts else ((), ())
        return pd.Series(numbers, index=pd.Index(names, name="Event", dtype="str"),
                         name="count", dtype="int64")

    def _draw(self) -> int | None:
        """Redraw from the ring (on the redraw thread, or on a click); returns the
        bytes sent, or None when nothing changed."""
        if self._remove is not None and getattr(self._client, "closed", False):
            self._stop_listening()
            self._loop.stop_soon()
            self._ended = True
        rate = round(self._log.events_per_second(RATE_WINDOW), 1) if self.running else 0.0
        key = (self._log.appended, self._view_version, rate, self.running)
        if key == self._drawn_key:
            return None
        items = self._log.snapshot()
        self._shown = self._newest_matching(items)
        self._shown_counts = Counter(m.name or "" for _, m in items).most_common()
        self._drawn_key = key
        table = html_table(("Received (UTC)", *COLUMNS[1:]),
                           ((_clock_text(r[0]), *r[1:]) for r in self._shown),
                           "amilab-events")
        self._table.value = f'<div class="amilab-scroll">{table}</div>'
        self._counts_html.value = html_table(
            ("Event", "count"), ((name, f"{n:,}") for name, n in self._shown_counts),
            "amilab-counts",
        )
        self._set_status(self._describe(rate), error=self._ended)
        return len(self._table.value) + len(self._counts_html.value) + len(self.status)

    def _newest_matching(self, items: list[tuple[float, Message]]) -> list[_Row]:
        pattern, wanted = self._pattern, self._event_class
        rows: list[_Row] = []
        for when, message in reversed(items):
            name = message.name or ""
            if pattern is not None and not pattern.match(name):
                continue
            privilege = message.get("Privilege") or ""
            if wanted and wanted not in privilege.split(","):
                continue
            rows.append((when, name, privilege, message.get("Channel") or "", _details(message)))
            if len(rows) == self._rows:
                break
        return rows

    def _describe(self, rate: float) -> str:
        log = self._log
        if self._ended:
            state = "stopped: the connection ended"
        elif self.running:
            state = f"live, {rate:,.1f} events/s"
        else:
            state = "paused (events are not recorded)"
        shown = f"showing the newest {len(self._shown):,}"
        if self._pattern is not None:
            shown += f" matching {self._pattern_text}"
        if self._event_class:
            shown += f" of class {self._event_class}"
        return (
            f"{state} · {log.appended:,} received · {len(log):,} held "
            f"(ring of {log.maxlen:,}; {log.evicted:,} pushed out) · {shown}"
        )


def _details(message: Message) -> str:
    """Every header but the first Event, Privilege and Channel, as ``Name: value``:
    the event's own first, then the channel snapshot."""
    seen: set[str] = set()
    own, snapshot = [], []
    for name, value in message.headers:
        if name in _SHOWN_ELSEWHERE and name not in seen:
            seen.add(name)
            continue
        (snapshot if name in CHANNEL_SNAPSHOT else own).append(f"{name}: {value}")
    return DETAILS_SEPARATOR.join(own + snapshot)


def _clock_text(when: float) -> str:
    """``03:33:57.123`` (UTC), the Received column as the table shows it."""
    t = time.gmtime(when)
    return f"{t.tm_hour:02}:{t.tm_min:02}:{t.tm_sec:02}.{int(when * 1000) % 1000:03}"
