"""The live panels, checked without a browser (ipywidgets runs without a frontend).

Panels are fed two ways: a fake client whose ``emit`` plays the reader
thread (synthetic bursts, exact control), and the simulated Asterisk over
real sockets. Redraw caps are counted against a manual clock, never timed.
"""

from __future__ import annotations

import threading
import time
from fnmatch import fnmatch

import ipywidgets as widgets
import pytest

from amilab.panels import EventStreamPanel
from amilab.panels.redraw import DATA_RATE_BUDGET
from amilab.protocol import Message

# -- fakes --------------------------------------------------------------------------


class ManualClock:
    """Epoch seconds that move only when a test says so."""

    def __init__(self, now: float = 1_795_749_579.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeClient:
    """Plays an AMIClient's event side: ``emit`` is the reader thread delivering one event."""

    def __init__(self) -> None:
        self.callbacks: list[tuple[str, object]] = []
        self.closed = False

    def on_event(self, pattern, callback):
        entry = (pattern, callback)
        self.callbacks.append(entry)
        return lambda: self.callbacks.remove(entry)

    def emit(self, message: Message) -> None:
        for pattern, callback in list(self.callbacks):
            if fnmatch((message.name or "").lower(), pattern.lower()):
                callback(message)


def event(name: str, privilege: str = "call,all", **fields: str) -> Message:
    return Message([("Event", name), ("Privilege", privilege), *fields.items()])


def newchannel(n: int) -> Message:
    return event("Newchannel", Channel=f"PJSIP/1001-{n:08x}", ChannelState="4",
                 ChannelStateDesc="Ring", Exten="1002", Context="internal")


@pytest.fixture
def clock():
    return ManualClock()


@pytest.fixture
def client():
    return FakeClient()


@pytest.fixture
def panel(client, clock):
    panel = EventStreamPanel(client, rows=20, interval=0.2, clock=clock)
    yield panel
    panel.close()


def redraw_now(panel: EventStreamPanel, clock: ManualClock) -> None:
    clock.advance(1.0)
    assert panel.tick()


# -- EventStreamPanel ------------------------------------------------------------------


def test_event_panel_shows_the_newest_event_on_top_with_every_header(panel, client, clock):
    client.emit(event("ContactStatus", "system,all", AOR="1001", ContactStatus="Created",
                      URI="sip:1001@127.0.0.1:51005", EndpointName="1001"))
    client.emit(newchannel(8))
    redraw_now(panel, clock)

    frame = panel.frame()
    assert list(frame.columns) == ["Received", "Event", "Privilege", "Channel", "Details"]
    assert list(frame["Event"]) == ["Newchannel", "ContactStatus"]
    top = frame.iloc[0]
    assert top["Privilege"] == "call,all"
    assert top["Channel"] == "PJSIP/1001-00000008"
    assert top["Details"] == ("ChannelState: 4 · ChannelStateDesc: Ring · Exten: 1002 · "
                              "Context: internal")
    assert frame.iloc[1]["Details"] == ("AOR: 1001 · ContactStatus: Created · "
                                        "URI: sip:1001@127.0.0.1:51005 · EndpointName: 1001")
    assert str(frame["Received"].dtype) == "datetime64[us, UTC]"
    table = part(panel, "amilab-event-table").value
    assert table.index("Newchannel") < table.index("ContactStatus")
    assert "sip:1001@127.0.0.1:51005" in table


def test_event_panel_escapes_header_values_in_its_html(panel, client, clock):
    client.emit(event("UserEvent", "user,all", Body="<script>alert(1)</script> & co"))
    redraw_now(panel, clock)
    table = part(panel, "amilab-event-table").value
    assert "<script>" not in table
    assert "&lt;script&gt;" in table
    assert panel.frame().iloc[0]["Details"] == "Body: <script>alert(1)</script> & co"


def test_event_panel_counts_each_event_type_and_shows_the_rate(panel, client, clock):
    for n in range(6):
        client.emit(newchannel(n))
        clock.advance(0.1)
    for _ in range(3):
        client.emit(event("Hangup", Cause="16"))
        clock.advance(0.1)
    redraw_now(panel, clock)
    assert panel.counts().to_dict() == {"Newchannel": 6, "Hangup": 3}
    assert "9 received" in panel.status
    assert "events/s" in panel.status


def test_name_filter_takes_globs_in_any_case_and_applies_to_held_events(panel, client, clock):
    for name in ("Newchannel", "DialBegin", "DialEnd", "Hangup", "VarSet"):
        client.emit(event(name))
    panel.set_filter("dial*, HANGUP")
    assert list(panel.frame()["Event"]) == ["Hangup", "DialEnd", "DialBegin"]
    assert "matching dial*, HANGUP" in panel.status
    panel.set_filter("*")
    assert len(panel.frame()) == 5
    # the counts always cover every held event
    assert panel.counts().sum() == 5


def test_class_filter_reads_the_privilege_header(panel, client, clock):
    client.emit(event("DTMFBegin", "dtmf,all", Digit="5"))
    client.emit(event("Newstate", "call,all"))
    client.emit(event("FullyBooted", "system,all"))
    panel.set_filter(event_class="dtmf")
    assert list(panel.frame()["Event"]) == ["DTMFBegin"]
    assert "of class dtmf" in panel.status
    panel.set_filter("*", None)
    assert len(panel.frame()) == 3
    with pytest.raises(ValueError, match="unknown event class 'calls'"):
        panel.set_filter(event_class="calls")


def test_pause_removes_the_callback_and_start_records_again(panel, client, clock):
    client.emit(newchannel(1))
    panel.pause()
    assert client.callbacks == []
    assert not panel.running
    assert panel.status.startswith("paused")
    assert len(panel.frame()) == 1  # the final redraw showed what had arrived
    client.emit(newchannel(2))  # nobody listens
    panel.start()
    client.emit(newchannel(3))
    redraw_now(panel, clock)
    assert list(panel.frame()["Channel"]) == ["PJSIP/1001-00000003", "PJSIP/1001-00000001"]
    assert len(client.callbacks) == 1


def test_the_pause_button_toggles_between_pause_and_start(panel, client):
    toggle = part(panel, "amilab-event-toggle")
    toggle.click()
    assert not panel.running and toggle.description == "Start"
    toggle.click()
    assert panel.running and toggle.description == "Pause"


def test_clear_forgets_held_events_and_resets_the_counts(panel, client, clock):
    for n in range(5):
        client.emit(newchannel(n))
    part(panel, "amilab-event-clear").click()
    assert panel.frame().empty
    assert panel.counts().empty
    assert "0 received" in panel.status


def test_the_ring_is_bounded_and_every_event_it_pushes_out_is_counted(client, clock):
    panel = EventStreamPanel(client, rows=20, maxlen=100, interval=0.2, clock=clock)
    try:
        for n in range(1_000):
            client.emit(newchannel(n))
        redraw_now(panel, clock)
        assert len(panel.log) == 100
        assert panel.log.evicted == 900
        assert panel.log.appended == panel.log.evicted + len(panel.log)
        assert "1,000 received · 100 held (ring of 100; 900 pushed out)" in panel.status
        assert panel.frame().iloc[0]["Channel"] == f"PJSIP/1001-{999:08x}"
        assert len(panel.frame()) == 20
    finally:
        panel.close()


def test_redraws_at_most_once_per_interval_however_fast_events_arrive(panel, client, clock):
    before = panel.redraws
    # 10,000 events over 2 s of clock time, and a tick after every one of them
    for n in range(10_000):
        client.emit(newchannel(n))
        clock.advance(0.0002)
        panel.tick()
    drawn = panel.redraws - before
    assert 2.0 / 0.2 - 1 <= drawn <= 2.0 / 0.2 + 1
    panel.pause()  # the final redraw shows the last event
    assert panel.frame().iloc[0]["Channel"] == f"PJSIP/1001-{9_999:08x}"


def test_nothing_is_redrawn_while_nothing_changes(panel, client, clock):
    client.emit(newchannel(1))
    redraw_now(panel, clock)
    clock.advance(10.0)  # the rate window empties: one more redraw shows 0 events/s
    panel.tick()
    drawn = panel.redraws
    for _ in range(5):
        clock.advance(1.0)
        assert not panel.tick()
    assert panel.redraws == drawn


def test_a_large_table_is_redrawn_less_often_to_stay_under_the_data_budget(client, clock):
    panel = EventStreamPanel(client, rows=500, interval=0.2, clock=clock)
    try:
        long_value = "x" * 400
        for n in range(500):
            client.emit(event("VarSet", Channel=f"PJSIP/1001-{n:08x}", Value=long_value))
        redraw_now(panel, clock)
        size = sum(len(part(panel, name).value)
                   for name in ("amilab-event-table", "amilab-event-counts", "amilab-status"))
        pause = size / DATA_RATE_BUDGET
        assert pause > 0.2
        client.emit(newchannel(1))
        clock.advance(0.2)
        assert not panel.tick()
        clock.advance(pause - 0.2 + 0.001)
        assert panel.tick()
    finally:
        panel.close()


def test_the_redraw_thread_shows_a_burst_and_draws_once_more_when_paused(client):
    panel = EventStreamPanel(client, rows=50, interval=0.01)
    try:
        started = panel.redraws
        burst = threading.Thread(target=lambda: [client.emit(newchannel(n)) for n in range(20_000)])
        begun = time.monotonic()
        burst.start()
        burst.join()
        panel.pause()
        elapsed = time.monotonic() - begun
        assert panel.frame().iloc[0]["Channel"] == f"PJSIP/1001-{19_999:08x}"
        assert "20,000 received" in panel.status
        # one draw per interval at most, plus the final one (and one for a boundary)
        assert panel.redraws - started <= elapsed / 0.01 + 2
        assert not any(t.name == "amilab-event-panel redraw" and t.is_alive()
                       for t in threading.enumerate())
    finally:
        panel.close()


def test_the_panel_stops_by_itself_when_the_connection_ends(panel, client, clock):
    client.emit(newchannel(1))
    client.closed = True
    redraw_now(panel, clock)
    assert not panel.running
    assert client.callbacks == []
    assert panel.status.startswith("stopped: the connection ended")
    assert panel.status_is_error


def test_the_event_panel_never_prints(client, capfd):
    panel = EventStreamPanel(client, interval=0.01)
    for n in range(2_000):
        client.emit(newchannel(n))
    panel.close()
    assert capfd.readouterr() == ("", "")


def test_the_event_panel_displays_as_a_widget_with_stable_css_classes(panel):
    bundle = panel._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    classes = {c for w in walk(panel.widget) for c in w._dom_classes}
    assert {"amilab-event-panel", "amilab-event-table", "amilab-event-counts",
            "amilab-event-pattern", "amilab-event-class", "amilab-status"} <= classes


def part(panel, css_class: str) -> widgets.Widget:
    """The one widget of ``panel`` carrying ``css_class`` (as a browser test finds it)."""
    found = [w for w in walk(panel.widget) if css_class in w._dom_classes]
    assert len(found) == 1, f"{len(found)} widgets with class {css_class}"
    return found[0]


def walk(widget: widgets.Widget):
    yield widget
    for child in getattr(widget, "children", ()):
        yield from walk(child)
