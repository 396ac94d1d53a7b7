"""The pandas layer: AMI messages in, tidy DataFrames out.

Everything a panel shows comes from here, so panels never parse bytes or
headers themselves:

* :func:`events_frame` — any messages as one row each (:data:`EVENT_COLUMNS` lead);
* :class:`EventLog` — a bounded, thread-safe ring a reader thread fills
  (``client.on_event("*", log.append)``), turned into a frame on demand;
* :func:`channels_frame`, :func:`endpoints_frame`, :func:`contacts_frame`,
  :func:`queue_status_frames`, :func:`list_frame` — list-action results;
* :func:`calls_frame`, :func:`call_timeline`, :func:`plot_call` — calls rebuilt
  from channel events, grouped by ``Linkedid``.

Column rules shared by every frame:

* Header columns keep Asterisk's names and wire spelling; derived columns
  (``Received``, and the call tables) are named by this module.
* Duplicate headers follow :meth:`Message.to_dict`: values joined by ``"\\n"``
  in wire order (several ``Variable:`` or ``Output:`` lines become one cell).
* Fields in :data:`NUMERIC_FIELDS` become nullable ``Int64`` (or ``Float64``
  when Asterisk writes a decimal point); an empty value or ``N/A`` becomes
  ``<NA>``. If any other value is not a number the column stays text, so
  nothing is lost. Everything else is text (``str``): ``Uniqueid`` keeps its
  exact digits, ``Exten`` its leading zeros, ``<unknown>`` stays as sent.
* Times are ``datetime64[us, UTC]``; durations ``timedelta64[us]``.
"""

from __future__ import annotations

import bisect
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from numbers import Real
from typing import TYPE_CHECKING, Protocol, Union

import pandas as pd

from amilab.protocol import Message

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = [
    "CALL_COLUMNS",
    "CHANNEL_COLUMNS",
    "CONTACT_COLUMNS",
    "ENDPOINT_COLUMNS",
    "EVENT_COLUMNS",
    "NO_CHANNEL",
    "NUMERIC_FIELDS",
    "QUIET_EVENTS",
    "TIMELINE_COLUMNS",
    "EventLog",
    "call_timeline",
    "calls_frame",
    "channels_frame",
    "contacts_frame",
    "endpoints_frame",
    "events_frame",
    "list_frame",
    "plot_call",
    "queue_status_frames",
]

TIME_DTYPE = "datetime64[us, UTC]"
DURATION_DTYPE = "timedelta64[us]"

#: The leading columns of :func:`events_frame`, always present, in this order.
#: ``Received`` is when the message arrived (see :func:`events_frame`); the rest
#: are the channel fields Asterisk 22 puts in call events, then dial and hangup
#: details. Any other header follows, in order of first appearance.
EVENT_COLUMNS: tuple[str, ...] = (
    "Received",
    "Event",
    "Channel",
    "Uniqueid",
    "Linkedid",
    "ChannelState",
    "ChannelStateDesc",
    "CallerIDNum",
    "CallerIDName",
    "Exten",
    "Context",
    "Priority",
    "Cause",
    "Cause-txt",
    "DestChannel",
    "DialStatus",
)

#: Header names whose values Asterisk 22 writes as numbers: channel events,
#: list items (CoreShowChannel, EndpointList, ContactList, Queue*), CoreStatus,
#: FullyBooted, OriginateResponse ``Reason``. ``Status`` is not here: it is text
#: in most events and numeric only in queue members (see :func:`queue_status_frames`).
NUMERIC_FIELDS: frozenset[str] = frozenset({
    "ChannelState", "DestChannelState", "LocalOneChannelState", "LocalTwoChannelState",
    "Priority", "DestPriority", "LocalOnePriority", "LocalTwoPriority",
    "Cause", "Reason", "ListItems", "ActiveChannels", "BridgeNumChannels", "DurationMs",
    "Uptime", "LastReload", "CoreCurrentCalls", "CoreMaxCalls", "CoreProcessedCalls",
    "CoreMaxLoadAvg", "CoreMaxFilehandles",
    "RoundtripUsec", "ViaPort", "QualifyFrequency", "QualifyTimeout", "ExpirationTime",
    "TotalContacts", "ContactsRegistered",
    "Max", "Calls", "Holdtime", "HoldTime", "TalkTime", "Completed", "Abandoned",
    "ServiceLevel", "ServicelevelPerf", "ServicelevelPerf2", "Weight", "Penalty",
    "CallsTaken", "LastCall", "LastPause", "LoginTime", "InCall", "Paused", "Wrapuptime",
    "Ringinuse", "LoggedIn", "Available", "Callers", "LongestHoldTime", "Position",
    "Count", "Wait",
})
#: Header names holding epoch seconds (``timestampevents=yes``, Ping): become UTC times.
_EPOCH_FIELDS = frozenset({"Timestamp"})
_MISSING_NUMBER = ("", "N/A")
#: Headers that only tie list items to their action: dropped from list frames.
_LIST_NOISE = ("ActionID", "EventList")

#: CoreShowChannel fields (Asterisk 22), leading :func:`channels_frame`.
CHANNEL_COLUMNS: tuple[str, ...] = (
    "Channel", "ChannelState", "ChannelStateDesc", "CallerIDNum", "CallerIDName",
    "ConnectedLineNum", "ConnectedLineName", "Context", "Exten", "Priority",
    "Application", "ApplicationData", "Duration", "BridgeId", "Uniqueid", "Linkedid",
)
#: EndpointList fields (Asterisk 22 PJSIPShowEndpoints), leading :func:`endpoints_frame`.
ENDPOINT_COLUMNS: tuple[str, ...] = (
    "ObjectName", "DeviceState", "ActiveChannels", "Contacts", "Aor", "Auths",
    "OutboundAuths", "Transport",
)
#: ContactList fields (Asterisk 22 PJSIPShowContacts), leading :func:`contacts_frame`.
CONTACT_COLUMNS: tuple[str, ...] = (
    "Endpoint", "Uri", "Status", "RoundtripUsec", "ViaAddr", "ViaPort", "UserAgent",
    "ExpirationTime", "QualifyFrequency", "ObjectName",
)
_QUEUE_COLUMNS: dict[str, tuple[str, ...]] = {
    "QueueParams": ("Queue", "Strategy", "Calls", "Holdtime", "TalkTime", "Completed",
                    "Abandoned", "ServiceLevel", "ServicelevelPerf", "Max", "Weight"),
    "QueueMember": ("Queue", "Name", "Location", "Status", "Paused", "InCall",
                    "CallsTaken", "LastCall", "Penalty", "Membership", "StateInterface"),
    "QueueEntry": ("Queue", "Position", "Channel", "CallerIDNum", "CallerIDName", "Wait",
                   "Uniqueid"),
}

#: :func:`calls_frame` columns and their dtypes.
CALL_COLUMNS: dict[str, str] = {
    "linkedid": "str",
    "caller": "str",
    "callee": "str",
    "channels": "int64",
    "start": TIME_DTYPE,
    "answer": TIME_DTYPE,
    "end": TIME_DTYPE,
    "duration": DURATION_DTYPE,
    "talk_time": DURATION_DTYPE,
    "dial_status": "str",
    "cause": "Int64",
    "cause_txt": "str",
    "hungup_by": "str",
    "hungup_channel": "str",
}
#: :func:`call_timeline` columns and their dtypes.
TIMELINE_COLUMNS: dict[str, str] = {
    "time": TIME_DTYPE,
    "elapsed": DURATION_DTYPE,
    "channel": "str",
    "event": "str",
    "state": "str",
    "detail": "str",
    "dest_channel": "str",
}
#: :func:`plot_call`'s lane for Dial events with no calling channel (an Originate's).
NO_CHANNEL = "(no channel)"
#: Events :func:`plot_call` leaves out by default: dozens per call, little to see in a chart.
QUIET_EVENTS: tuple[str, ...] = ("VarSet", "RTCPSent", "RTCPReceived")

Time = Union[float, datetime, pd.Timestamp]


class _ListResult(Protocol):
    """What :meth:`AMIClient.send_list_action` returns (only ``events`` is read)."""

    events: list[Message]


# -- messages to a frame ------------------------------------------------------------


def events_frame(
    messages: Iterable[Message] | Iterable[tuple[Time, Message]],
    times: Sequence[Time] | None = None,
) -> pd.DataFrame:
    """One row per message, in the given order, :data:`EVENT_COLUMNS` first.

    A message does not carry its receive time, so ``Received`` comes from
    either ``times`` (one per message) or ``messages`` given as
    ``(time, message)`` pairs, as :meth:`EventLog.snapshot` returns them;
    otherwise it is ``NaT``. A time is epoch seconds (``time.time()``) or a
    datetime; naive datetimes are read as UTC.

    ``Event`` is categorical and empty for responses; the other columns follow
    the module's column rules. An empty input gives an empty frame that still
    has :data:`EVENT_COLUMNS` with their dtypes. Raises ValueError when
    ``times`` and ``messages`` differ in length, TypeError for a non-message.
    """
    items = list(messages)
    if items and not isinstance(items[0], Message):
        if times is not None:
            raise TypeError("give times either as (time, message) pairs or as times=, not both")
        if not all(isinstance(pair, tuple) and len(pair) == 2 for pair in items):
            raise TypeError("messages must be all Message objects or all (time, Message) pairs")
        times = [when for when, _ in items]
        items = [message for _, message in items]
    for item in items:
        if not isinstance(item, Message):
            raise TypeError(f"expected an amilab Message, got {type(item).__name__}: {item!r:.80}")
    if times is not None and len(times) != len(items):
        raise ValueError(f"{len(times)} times for {len(items)} messages")
    frame = _frame([m.to_dict() for m in items], EVENT_COLUMNS[2:], drop=("Event",))
    frame.insert(0, "Event", pd.Categorical([m.name if m.kind == "event" else None for m in items]))
    frame.insert(0, "Received", _to_times(times, len(items)))
    return frame


def _to_times(times: Sequence[Time] | None, count: int) -> pd.Series:
    if times is None:
        return pd.Series(pd.NaT, index=range(count), dtype=TIME_DTYPE)
    values = list(times)
    if values and isinstance(values[0], Real):
        # via whole microseconds: a float epoch is not exact (1.004 s would show as 1.003999)
        micros = (pd.Series(values, dtype="float64") * 1_000_000).round()
        converted = pd.to_datetime(micros, unit="us", utc=True)
    else:
        converted = pd.to_datetime(pd.Series(values, dtype=object), utc=True)
    return converted.astype(TIME_DTYPE)


def _frame(
    rows: list[dict[str, str]],
    leading: Sequence[str],
    *,
    drop: Sequence[str] = (),
    numeric: frozenset[str] = NUMERIC_FIELDS,
) -> pd.DataFrame:
    """Rows of header dicts as a frame: ``leading`` columns first (created when
    absent), the rest in order of first appearance, dtypes by the module's rules."""
    frame = pd.DataFrame(rows).drop(columns=list(drop), errors="ignore")
    for name in leading:
        if name not in frame:
            frame[name] = pd.Series(index=frame.index, dtype="str")
    frame = frame[[*leading, *(c for c in frame.columns if c not in leading)]]
    for name in frame.columns:
        if name in numeric:
            frame[name] = _numbers(frame[name])
        elif name in _EPOCH_FIELDS:
            frame[name] = _epoch_times(frame[name])
    return frame


def _numbers(column: pd.Series) -> pd.Series:
    """Int64/Float64 when every value is a number, empty or N/A; else unchanged."""
    text = column.where(~column.isin(_MISSING_NUMBER))
    numbers = pd.to_numeric(text, errors="coerce")
    if numbers.count() != text.count():
        return column
    decimal = text.dropna().astype("str").str.contains(r"[.eE]", regex=True).any()
    return numbers.astype("Float64" if decimal else "Int64")


def _epoch_times(column: pd.Series) -> pd.Series:
    seconds = _numbers(column)
    if not pd.api.types.is_numeric_dtype(seconds):
        return column
    return pd.to_datetime(seconds.astype("float64"), unit="s", utc=True).astype(TIME_DTYPE)


# -- the live event log -------------------------------------------------------------


class EventLog:
    """The newest ``maxlen`` messages with their receive times, for live panels.

    Made to be a callback on the client's reader thread:
    ``client.on_event("*", log.append)``. :meth:`append` only records the clock
    and the message (no parsing, no formatting); the work happens when a panel
    asks for :meth:`to_frame`, :meth:`counts` or :meth:`events_per_second`.

    Overflow: when full, each append evicts the oldest message and counts it in
    :attr:`evicted`, so ``appended == evicted + len(log)`` always holds (until
    :meth:`clear`). All methods are thread-safe. ``clock`` gives epoch seconds;
    tests pass a manual one.
    """

    def __init__(self, maxlen: int = 10_000, *, clock: Callable[[], float] = time.time) -> None:
        if maxlen < 1:
            raise ValueError(f"maxlen must be at least 1, not {maxlen}")
        self._items: deque[tuple[float, Message]] = deque(maxlen=maxlen)
        self._lock = threading.Lock()
        self._clock = clock
        self._appended = 0
        self._evicted = 0
        self._started = clock()

    @property
    def maxlen(self) -> int:
        return self._items.maxlen  # type: ignore[return-value]

    @property
    def appended(self) -> int:
        """Messages appended since creation or the last :meth:`clear`."""
        return self._appended

    @property
    def evicted(self) -> int:
        """Messages pushed out by newer ones (oldest first) since creation or :meth:`clear`."""
        return self._evicted

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return (
            f"<EventLog {len(self)}/{self.maxlen} held, {self._appended} appended, "
            f"{self._evicted} evicted>"
        )

    def append(self, message: Message) -> None:
        """Record ``message`` with the current time. Safe from any thread."""
        if not isinstance(message, Message):
            raise TypeError(f"EventLog holds amilab Messages, not {type(message).__name__}")
        with self._lock:
            if len(self._items) == self._items.maxlen:
                self._evicted += 1
            self._items.append((self._clock(), message))
            self._appended += 1

    def clear(self) -> None:
        """Forget every message and reset the counters and the rate window."""
        with self._lock:
            self._items.clear()
            self._appended = self._evicted = 0
            self._started = self._clock()

    def snapshot(self, last: int | None = None) -> list[tuple[float, Message]]:
        """``(receive time, message)`` pairs, oldest first; only the newest
        ``last`` when given. A copy: appends after the call do not change it."""
        with self._lock:
            return self._copy(last)

    def _copy(self, last: int | None) -> list[tuple[float, Message]]:
        if last is None or last >= len(self._items):
            return list(self._items)
        newest = list(itertools.islice(reversed(self._items), max(last, 0)))
        newest.reverse()
        return newest

    def to_frame(self, *, last: int | None = None, newest_first: bool = False) -> pd.DataFrame:
        """The held messages as :func:`events_frame` rows, oldest first unless
        ``newest_first``; only the newest ``last`` when given (cheaper for a
        panel that shows a page). The index, ``seq``, numbers messages in
        arrival order from 0 since creation or :meth:`clear`: a row keeps its
        number as the log moves on."""
        with self._lock:
            items = self._copy(last)
            first_seq = self._appended - len(items)
        frame = events_frame(items)
        frame.index = pd.RangeIndex(first_seq, first_seq + len(frame), name="seq")
        return frame.iloc[::-1] if newest_first else frame

    def counts(self) -> pd.Series:
        """How many held events each event name has, most frequent first.
        Responses are left out; evicted messages are only in :attr:`evicted`."""
        names = [m.name for _, m in self.snapshot() if m.kind == "event"]
        counts = pd.Series(names, dtype="str").value_counts()
        counts.index.name = "Event"
        return counts

    def events_per_second(self, window: float = 10.0) -> float:
        """Arrival rate over the last ``window`` seconds, or over the shorter
        span the log can vouch for: since creation/:meth:`clear`, and, once
        messages were evicted, since the oldest one still held."""
        if window <= 0:
            raise ValueError(f"window must be positive, not {window}")
        with self._lock:
            now = self._clock()
            times = [t for t, _ in self._items]
            span = min(window, now - self._started)
            if self._evicted and times:
                span = min(span, now - times[0])
        recent = len(times) - bisect.bisect_left(times, now - window)
        return recent / span if span > 0 else 0.0


# -- list-action results ------------------------------------------------------------


def _items(result: _ListResult | Iterable[Message]) -> list[Message]:
    """The item events of a list result or of a plain message list: responses
    and the ``EventList: Complete`` event are left out."""
    messages = result.events if hasattr(result, "events") else result
    return [m for m in messages if m.kind == "event" and m.get("EventList") is None]


def _item_frame(
    result: _ListResult | Iterable[Message],
    item: str,
    leading: Sequence[str],
    *,
    numeric: frozenset[str] = NUMERIC_FIELDS,
) -> pd.DataFrame:
    items = _items(result)
    others = sorted({str(m.name) for m in items} - {item})
    if others:
        raise ValueError(f"expected {item} items, got {', '.join(others)}")
    rows = [m.to_dict() for m in items]
    return _frame(rows, leading, drop=("Event", *_LIST_NOISE), numeric=numeric)


def list_frame(result: _ListResult | Iterable[Message]) -> pd.DataFrame:
    """Any list action's items, one row each: ``Event`` (categorical) first, then
    the item headers in order of first appearance; ``ActionID`` and
    ``EventList`` dropped. Accepts the client's list result or a list of
    messages (a response and the ``*Complete`` event in it are skipped)."""
    items = _items(result)
    frame = _frame([m.to_dict() for m in items], (), drop=("Event", *_LIST_NOISE))
    frame.insert(0, "Event", pd.Categorical([m.name for m in items]))
    return frame


def channels_frame(result: _ListResult | Iterable[Message]) -> pd.DataFrame:
    """CoreShowChannels: one row per channel, :data:`CHANNEL_COLUMNS` first,
    ``Duration`` as a timedelta. Raises ValueError for items of another list."""
    frame = _item_frame(result, "CoreShowChannel", CHANNEL_COLUMNS)
    text = frame["Duration"].where(frame["Duration"] != "")
    durations = pd.to_timedelta(text, errors="coerce")
    if durations.count() == text.count():  # else keep the text: nothing is lost
        frame["Duration"] = durations.astype(DURATION_DTYPE)
    return frame


def endpoints_frame(result: _ListResult | Iterable[Message]) -> pd.DataFrame:
    """PJSIPShowEndpoints: one row per endpoint, :data:`ENDPOINT_COLUMNS` first."""
    return _item_frame(result, "EndpointList", ENDPOINT_COLUMNS)


def contacts_frame(result: _ListResult | Iterable[Message]) -> pd.DataFrame:
    """PJSIPShowContacts: one row per registered contact, :data:`CONTACT_COLUMNS`
    first; ``RoundtripUsec`` is ``<NA>`` where Asterisk says ``N/A`` (not qualified)."""
    return _item_frame(result, "ContactList", CONTACT_COLUMNS)


def queue_status_frames(result: _ListResult | Iterable[Message]) -> dict[str, pd.DataFrame]:
    """QueueStatus: one frame per item type, keyed by event name.

    ``"QueueParams"`` (one row per queue), ``"QueueMember"`` and
    ``"QueueEntry"`` (callers waiting) are always present, possibly empty; an
    item type Asterisk adds later gets its own key rather than being dropped.
    A member's ``Status`` is the numeric device state Asterisk sends.
    """
    items = _items(result)
    kinds = dict.fromkeys([*_QUEUE_COLUMNS, *(str(m.name) for m in items)])
    return {
        kind: _item_frame(
            [m for m in items if m.name == kind],
            kind,
            _QUEUE_COLUMNS.get(kind, ()),
            numeric=NUMERIC_FIELDS | {"Status"},
        )
        for kind in kinds
    }


# -- calls ------------------------------------------------------------------------


def _call_events(events: pd.DataFrame) -> pd.DataFrame:
    """The channel events of ``events`` with a ``call`` key: ``Linkedid``, or
    ``DestLinkedid`` for a dial with no calling channel (Originate's DialBegin).
    Items answering an action (they carry ``ActionID``, e.g. CoreShowChannel)
    are snapshots, not call history: left out."""
    missing = [c for c in EVENT_COLUMNS if c not in events]
    if missing:
        raise ValueError(f"not an events frame (missing {', '.join(missing)}): use events_frame()")
    ev = events[events["Event"].notna()]
    if "ActionID" in ev:
        ev = ev[ev["ActionID"].isna()]
    call = ev["Linkedid"]
    if "DestLinkedid" in ev:
        call = call.fillna(ev["DestLinkedid"])
    ev = ev.assign(call=call, Event=ev["Event"].astype("str"))
    return ev[ev["call"].notna()]


def calls_frame(events: pd.DataFrame) -> pd.DataFrame:
    """One row per call (all channels sharing a ``Linkedid``), oldest first.

    ``events`` is an :func:`events_frame` / :meth:`EventLog.to_frame` frame in
    arrival order. Columns (:data:`CALL_COLUMNS`):

    * ``caller`` / ``callee``: the originating channel's (``Uniqueid ==
      Linkedid``, else the first seen) ``CallerIDNum`` and dialled ``Exten``;
    * ``start``: first event; ``answer``: first moment any channel of the call
      is Up (state 6), ``NaT`` if never; ``end``: last ``Hangup`` once every
      channel seen has hung up, ``NaT`` while the call lasts;
      ``duration = end - start``, ``talk_time = end - answer``;
    * ``dial_status``: the last DialEnd's ``DialStatus`` (ANSWER, BUSY, ...);
    * ``cause`` / ``cause_txt``: the first ``Hangup`` event's;
    * ``hungup_by`` / ``hungup_channel``: ``CallerIDNum`` and channel of the
      call's first ``HangupRequest``. Asterisk 22 sends HangupRequest to a
      channel whose own side reported the hangup (a phone's BYE: in Demo 2 the
      phone that hangs up) and SoftHangupRequest to channels it tears down
      (the other leg, dialplan ``Hangup()``, AMI ``Hangup``). With Local
      channels the HangupRequest lands on the half facing the one that ran
      ``Hangup()``. ``<NA>`` when the call had no HangupRequest.

    Times are ``NaT`` when the frame has no receive times.
    """
    ev = _call_events(events)
    if ev.empty:
        return pd.DataFrame({name: pd.Series(dtype=dtype) for name, dtype in CALL_COLUMNS.items()})
    table = ev.groupby("call", sort=False).agg(
        start=("Received", "min"), channels=("Uniqueid", "nunique")
    )
    origin = _origins(ev)
    table["caller"] = origin["CallerIDNum"]
    table["callee"] = origin["Exten"]
    table["answer"] = ev[ev["ChannelState"].eq(6).fillna(False)].groupby("call")["Received"].min()
    hangups = ev[ev["Event"] == "Hangup"]
    first_hangup = hangups.drop_duplicates("call").set_index("call")
    table["cause"] = first_hangup["Cause"]
    table["cause_txt"] = first_hangup["Cause-txt"]
    gone = hangups.groupby("call").agg(end=("Received", "max"), hung=("Uniqueid", "nunique"))
    gone = gone.reindex(table.index)
    table["end"] = gone["end"].where(gone["hung"].fillna(0) >= table["channels"])
    table["duration"] = table["end"] - table["start"]
    table["talk_time"] = table["end"] - table["answer"]
    table["dial_status"] = ev[ev["Event"] == "DialEnd"].groupby("call")["DialStatus"].last()
    request = ev[ev["Event"] == "HangupRequest"].drop_duplicates("call").set_index("call")
    table["hungup_by"] = request["CallerIDNum"]
    table["hungup_channel"] = request["Channel"]
    table = table.rename_axis("linkedid").reset_index()
    table = table.sort_values("start", kind="stable", ignore_index=True)
    return table[list(CALL_COLUMNS)].astype(CALL_COLUMNS)


def _origins(ev: pd.DataFrame) -> pd.DataFrame:
    """Per call (index), the first event of the channel that started it
    (``Uniqueid == Linkedid``), or the call's first event if that channel was not seen."""
    later = ev["Uniqueid"].ne(ev["call"])
    first = ev.assign(later=later).sort_values("later", kind="stable").drop_duplicates("call")
    return first.set_index("call")


_Describe = Callable[[pd.DataFrame], pd.Series]


def _text(rows: pd.DataFrame, name: str) -> pd.Series:
    """A column as text, ``""`` where absent or missing."""
    if name not in rows:
        return pd.Series("", index=rows.index, dtype="str")
    column = rows[name]
    return column.astype("str").where(column.notna(), "")


def _unless_empty(prefix: str, value: pd.Series) -> pd.Series:
    return (prefix + value).where(value != "", "")


#: Per event name, the short text shown in a timeline's ``detail`` column.
_DETAILS: dict[str, _Describe] = {
    "Newchannel": lambda r: _text(r, "Exten") + "@" + _text(r, "Context"),
    "Newstate": lambda r: _text(r, "ChannelStateDesc"),
    "Newexten": lambda r: _text(r, "Application") + "(" + _text(r, "AppData") + ")",
    "VarSet": lambda r: _text(r, "Variable") + "=" + _text(r, "Value"),
    "DialBegin": lambda r: _unless_empty("dials ", _text(r, "DestChannel")),
    "DialState": lambda r: _text(r, "DialStatus"),
    "DialEnd": lambda r: _text(r, "DialStatus"),
    "HangupRequest": lambda r: _unless_empty("cause ", _text(r, "Cause")),
    "SoftHangupRequest": lambda r: _unless_empty("cause ", _text(r, "Cause")),
    "Hangup": lambda r: _text(r, "Cause") + " " + _text(r, "Cause-txt"),
    "BridgeEnter": lambda r: _unless_empty("bridge ", _text(r, "BridgeUniqueid").str[:8]),
    "BridgeLeave": lambda r: _unless_empty("bridge ", _text(r, "BridgeUniqueid").str[:8]),
    "DTMFBegin": lambda r: _unless_empty("digit ", _text(r, "Digit")),
    "DTMFEnd": lambda r: _unless_empty("digit ", _text(r, "Digit")),
    "NewCallerid": lambda r: _text(r, "CallerIDNum"),
    "NewConnectedLine": lambda r: _unless_empty("to ", _text(r, "ConnectedLineNum")),
}


def call_timeline(events: pd.DataFrame, linkedid: str | None = None) -> pd.DataFrame:
    """Every event of one call in arrival order (:data:`TIMELINE_COLUMNS`):
    receive ``time``, ``elapsed`` since the call's first event, ``channel``,
    ``event``, ``state`` (ChannelStateDesc), a short ``detail`` such as
    ``16 Normal Clearing`` or ``dials PJSIP/1002-00000009``, and
    ``dest_channel``, the channel a Dial event is about. ``channel`` is empty
    for a dial with no calling channel (Originate's DialBegin and DialEnd).

    ``linkedid=None`` picks the call that started last. Raises KeyError when
    ``events`` hold no such call.
    """
    return _timeline(_call_events(events), linkedid)[1]


def _timeline(ev: pd.DataFrame, linkedid: str | None) -> tuple[str, pd.DataFrame]:
    if linkedid is None:
        if ev.empty:
            raise KeyError("these events hold no call")
        linkedid = str(ev["call"].drop_duplicates().iloc[-1])
    rows = ev[ev["call"] == linkedid]
    if rows.empty:
        raise KeyError(f"no call with Linkedid {linkedid!r} in these events")
    detail = pd.Series("", index=rows.index, dtype="str")
    for event, describe in _DETAILS.items():
        mask = rows["Event"] == event
        if mask.any():
            detail[mask] = describe(rows[mask])
    timeline = pd.DataFrame({
        "time": rows["Received"],
        "elapsed": rows["Received"] - rows["Received"].min(),
        "channel": rows["Channel"],
        "event": rows["Event"],
        "state": rows["ChannelStateDesc"],
        "detail": detail,
        "dest_channel": rows["DestChannel"],
    })
    return linkedid, timeline.reset_index(drop=True).astype(TIMELINE_COLUMNS)


_MARKER_COLOURS = {
    "Newchannel": "tab:green", "Newstate": "tab:green",
    "DialBegin": "tab:blue", "DialState": "tab:blue", "DialEnd": "tab:blue",
    "HangupRequest": "tab:red", "SoftHangupRequest": "tab:red", "Hangup": "tab:red",
}


def plot_call(
    events: pd.DataFrame,
    linkedid: str | None = None,
    *,
    skip: Iterable[str] = QUIET_EVENTS,
    ax: Axes | None = None,
) -> Axes:
    """A sequence chart of one call, like the course's Demo 2: one vertical lane
    per channel, one labelled marker per event, time flowing down (one step per
    event, the y labels give the time since the call started); an arrow from
    the dialling channel to the dialled one for Dial events.

    Events named in ``skip`` are left out (:data:`QUIET_EVENTS` by default;
    ``skip=()`` shows all). Draws on ``ax`` or a new figure and returns the
    Axes: exactly one marker (in ``ax.collections[0]``) and one text label (in
    ``ax.texts``) per event drawn. Never calls ``plt.show()``.
    """
    from matplotlib.patches import FancyArrowPatch

    ev = _call_events(events)
    call, timeline = _timeline(ev, linkedid)
    origin = _origins(ev[ev["call"] == call]).iloc[0]
    shown = timeline[~timeline["event"].isin(list(skip))].reset_index(drop=True)
    shown["channel"] = shown["channel"].fillna(NO_CHANNEL)
    lanes = {lane: float(i) for i, lane in enumerate(dict.fromkeys(shown["channel"]))}
    points = shown.assign(
        x=shown["channel"].map(lanes).astype("float64"),
        y=shown.index.astype("float64"),
        target=shown["dest_channel"].map(lanes),
        colour=shown["event"].map(_MARKER_COLOURS).fillna("tab:gray"),
    )
    where = (
        {"ax": ax} if ax is not None
        else {"figsize": (3 + 3.2 * max(len(lanes), 1), 1.2 + 0.32 * max(len(points), 1))}
    )
    ax = points.plot.scatter(x="x", y="y", c=points["colour"].tolist(), s=36, zorder=3, **where)
    for x in lanes.values():
        ax.axvline(x, color="lightgray", linewidth=1, zorder=1)
    labels = points["event"] + (": " + points["detail"]).where(points["detail"] != "", "")
    for x, y, label in zip(points["x"], points["y"], labels):
        ax.text(x + 0.06, y, label, va="center", fontsize=8, zorder=4,
                bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1})
    dials = points[points["event"].str.startswith("Dial") & points["target"].notna()]
    for x, y, target in zip(dials["x"], dials["y"], dials["target"]):
        ax.add_patch(FancyArrowPatch(
            (x, y), (target, y), arrowstyle="-|>", mutation_scale=10,
            color="tab:blue", alpha=0.5, zorder=2,
        ))
    ax.set_xticks(list(lanes.values()), list(lanes))
    ax.set_xlim(-0.5, max(len(lanes), 1) - 0.2)
    ax.set_yticks(points["y"].tolist(), _elapsed_labels(shown["elapsed"]))
    ax.set_ylim(max(len(points), 1) - 0.5, -0.5)
    ax.set_xlabel("")
    timed = shown["elapsed"].notna().any()
    ax.set_ylabel("time since the call started" if timed else "event order")
    ax.set_title(f"Call {call}: {origin['CallerIDNum']} → {origin['Exten']}")
    return ax


def _elapsed_labels(elapsed: pd.Series) -> list[str]:
    """``+1.054 s`` per event, or its step number when receive times are missing."""
    seconds = elapsed.dt.total_seconds()
    return [f"+{s:.3f} s" if pd.notna(s) else str(step) for step, s in enumerate(seconds, 1)]
