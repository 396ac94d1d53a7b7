"""The live panels, checked without a browser (ipywidgets runs without a frontend).

Panels are fed two ways: a fake client whose ``emit`` plays the reader
thread (synthetic bursts, exact control), and the simulated Asterisk over
real sockets. Redraw caps are counted against a manual clock, never timed.
"""

from __future__ import annotations

import socket
import threading
import time
from fnmatch import fnmatch

import ipywidgets as widgets
import pytest

from amilab import AMIClient
from amilab.panels import ActionPanel, ConnectionPanel, EventStreamPanel, PhonePanel
from amilab.panels.actions import ACTION_FIELDS
from amilab.panels.redraw import DATA_RATE_BUDGET, RedrawLoop
from amilab.protocol import Message
from amilab.sim.clock import ManualClock as PbxClock
from amilab.sim.pbx import PBX
from amilab.sim.server import SimulatedAsterisk
from tests.scripted_server import ScriptedServer, recording

COURSE_SECRET = "mysecretpassword"  # the course's admin secret (guide Step 2), as recorded

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


def test_details_start_with_the_events_own_headers_then_the_channel_snapshot(
        panel, client, clock):
    client.emit(event("VarSet", "dialplan,all", Channel="PJSIP/1001-00000008",
                      ChannelState="6", ChannelStateDesc="Up", Linkedid="1795749616.8",
                      Variable="DIALSTATUS", Value="ANSWER"))
    redraw_now(panel, clock)
    assert panel.frame().iloc[0]["Details"] == (
        "Variable: DIALSTATUS · Value: ANSWER · ChannelState: 6 · ChannelStateDesc: Up · "
        "Linkedid: 1795749616.8")


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


def test_a_filter_change_after_the_connection_ended_says_the_stream_stopped(client, clock):
    panel = EventStreamPanel(client, interval=0.2, clock=clock)  # its clock stands still
    client.emit(newchannel(1))
    client.closed = True
    panel.set_filter("Newchannel")
    assert panel.status.startswith("stopped: the connection ended")
    assert not panel.running and client.callbacks == []
    assert wait_for(lambda: not any(t.name == "amilab-event-panel redraw"
                                    for t in threading.enumerate()))
    panel.close()


def test_a_draw_may_end_its_loop_while_the_thread_waits_for_the_draw_lock():
    def draw() -> None:
        if threading.current_thread() is threading.main_thread():
            time.sleep(0.05)  # meanwhile the thread wakes and waits for the lock
            loop.stop_soon()

    loop = RedrawLoop(draw, interval=0.001, clock=ManualClock(), name="test redraw")
    loop.start()
    loop.draw_now()
    assert wait_for(lambda: not loop.running)


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


# -- ActionPanel, against real Asterisk 22 bytes (scripted server) ---------------------


@pytest.fixture
def asterisk():
    """Replay one recorded Asterisk 22 session; yields a logged-in client for it."""
    opened: list[tuple[ScriptedServer, AMIClient]] = []

    def start(name: str, *, username: str = "admin", secret: str = COURSE_SECRET,
              turns: slice | None = None, timeout: float = 5.0,
              delay: float = 0.0) -> AMIClient:
        script = recording(name)
        if turns is not None:
            script.turns = script.turns[turns]
        script.turns[-1].delay = delay
        server = ScriptedServer(script)
        ami = AMIClient(server.host, server.port, timeout=timeout).connect()
        opened.append((server, ami))
        ami.login(username, secret)
        return ami

    yield start
    for server, ami in opened:
        ami.close()
        server.close()
        assert server.errors == []


def test_action_panel_offers_the_course_actions_but_not_login_or_logoff():
    assert list(ACTION_FIELDS)[:4] == ["Events", "CoreStatus", "CoreSettings", "CoreShowChannels"]
    assert "Login" not in ACTION_FIELDS and "Logoff" not in ACTION_FIELDS
    panel = ActionPanel(FakeClient())
    with pytest.raises(ValueError, match="connection panel"):
        panel.choose("Logoff")
    panel.choose("command")
    assert panel.fields == {"Command": "core show channels"}
    panel.choose("Originate")
    assert {k: v for k, v in panel.fields.items() if v} == {
        "Channel": "PJSIP/1001", "Exten": "1002", "Context": "internal", "Priority": "1"}
    with pytest.raises(ValueError, match="Originate has no field 'Secret'"):
        panel.choose("Originate", Secret="x")


def test_core_show_channels_items_become_a_table_beside_the_raw_exchange(asterisk):
    ami = asterisk("g_coreshowchannels")
    panel = ActionPanel(ami)
    panel.choose("CoreShowChannels")
    panel.send()
    assert panel.status.endswith("Success, 0 items")
    panel.choose("Originate")
    panel.send()
    panel.choose("CoreShowChannels")
    panel.send()

    assert list(panel.frame()["Channel"]) == [
        "Local/1000@internal-00000000;2", "Local/1000@internal-00000000;1"]
    assert panel.status == "CoreShowChannels: Success, 2 items"
    assert list(panel.response_frame()["Header"]) == ["Response", "ActionID", "EventList",
                                                      "Message"]
    raw = panel.raw_text
    action_id = panel.response_frame()["Value"][1]
    assert raw.startswith(f"Action: CoreShowChannels\nActionID: {action_id}\n\n"
                          f"Response: Success\nActionID: {action_id}\nEventList: start\n")
    assert raw.count("Event: CoreShowChannel\n") == 2
    assert raw.endswith("Event: CoreShowChannelsComplete\n"
                        f"ActionID: {action_id}\nEventList: Complete\nListItems: 2\n\n")
    assert "\r" not in raw
    shown = part(panel, "amilab-raw").value
    assert "Local/1000@internal-00000000;2" in shown
    assert "Local/1000@internal-00000000;2" in part(panel, "amilab-list").value


def test_the_raw_view_is_exactly_what_crossed_the_wire(asterisk):
    ami = asterisk("e_corestatus_actionid", turns=slice(0, 2))
    panel = ActionPanel(ami)
    panel.choose("CoreStatus")
    panel.send()
    [sent] = [e.text for e in ami.transcript if e.direction == "send" and "CoreStatus" in e.text]
    [received] = [e.text for e in ami.transcript
                  if e.direction == "recv" and e.text.startswith("Response") and "CoreStartup"
                  in e.text]
    assert panel.raw_text == (sent + received).replace("\r\n", "\n")
    frame = panel.frame()
    assert list(frame["Header"])[:2] == ["Response", "ActionID"]
    assert frame.set_index("Header")["Value"]["CoreCurrentCalls"] == "0"


def test_a_typed_action_id_is_sent_and_echoed(asterisk):
    ami = asterisk("e_corestatus_actionid", turns=slice(0, 2))
    panel = ActionPanel(ami)
    part(panel, "amilab-action-id").value = "my-request-123"
    panel.send()
    assert panel.raw_text.startswith("Action: CoreStatus\nActionID: my-request-123\n\n"
                                     "Response: Success\nActionID: my-request-123\n")


def test_permission_denied_is_shown_in_the_panel_not_raised(asterisk):
    ami = asterisk("c_monitor_permissions", username="monitor", secret="monitor-password",
                   turns=slice(0, 2))
    panel = ActionPanel(ami, action="Originate")
    panel.send()
    assert panel.status == "Originate: Error: Permission denied"
    assert panel.status_is_error
    assert panel.frame().set_index("Header")["Value"]["Message"] == "Permission denied"
    assert "Message: Permission denied\n" in panel.raw_text
    assert "Permission denied" in part(panel, "amilab-response").value


def test_command_output_lines_each_get_a_row(asterisk):
    ami = asterisk("i_command", turns=slice(0, 2))
    panel = ActionPanel(ami)
    panel.choose("Command", Command="core show version")
    panel.send()
    frame = panel.frame()
    output = frame[frame["Header"] == "Output"]["Value"]
    assert output.iloc[0].startswith("Asterisk 22.10.1")
    assert panel.status == "Command: Success"


def test_a_line_break_in_a_field_is_refused_before_anything_is_sent(asterisk):
    ami = asterisk("e_corestatus_actionid", turns=slice(0, 1))
    panel = ActionPanel(ami)
    panel.choose("Command", Command="core show version\r\nAction: Logoff")
    panel.send()
    assert panel.status_is_error
    assert "CR or LF" in panel.status
    assert panel.raw_text.startswith("(nothing was sent)")
    assert not any(e.direction == "send" and "Command" in e.text for e in ami.transcript)


def test_no_answer_in_time_is_shown_as_a_timeout(asterisk):
    ami = asterisk("e_corestatus_actionid", turns=slice(0, 2), timeout=0.2, delay=0.5)
    panel = ActionPanel(ami)
    panel.send()
    assert panel.status_is_error
    assert "no response to CoreStatus" in panel.status
    assert panel.raw_text.startswith("Action: CoreStatus\n")


def test_the_send_button_returns_at_once_and_the_answer_arrives_later(asterisk):
    ami = asterisk("e_corestatus_actionid", turns=slice(0, 2))
    panel = ActionPanel(ami)
    button = part(panel, "amilab-action-send")
    button.click()
    assert wait_for(lambda: panel.status == "CoreStatus: Success")
    assert wait_for(lambda: not button.disabled)


# -- ConnectionPanel --------------------------------------------------------------------


@pytest.fixture
def replay():
    """A scripted Asterisk 22 replaying one recorded connection."""
    servers: list[ScriptedServer] = []

    def start(name: str, connection: int = 0) -> ScriptedServer:
        servers.append(ScriptedServer(recording(name, connection)))
        return servers[-1]

    yield start
    for server in servers:
        server.close()
        assert server.errors == []


def test_connection_panel_connects_logs_in_and_logs_off_like_steps_4_5_and_8(replay):
    server = replay("u_logoff")
    panel = ConnectionPanel(host=server.host, port=server.port, secret=COURSE_SECRET)
    assert panel.client is None
    client = panel.connect()
    assert panel.client is client and client.server_kind == "asterisk"
    assert panel.status == (f"Connected: Asterisk at {client.address}, banner "
                            "'Asterisk Call Manager/11.0.0'. Not logged in yet.")
    assert panel.login() is client and panel.logged_in
    assert panel.status == f"Logged in as admin: Asterisk at {client.address}."
    assert panel.frame().iloc[0].to_dict() == {
        "Host": server.host, "Port": server.port, "Username": "admin", "Server": "asterisk",
        "Address": client.address, "Banner": "Asterisk Call Manager/11.0.0", "LoggedIn": True}
    panel.logoff()
    assert panel.status == "Logged off: Response: Goodbye, Message: Thanks for all the fish."
    assert panel.client is None and client.closed
    panel.close()


def test_a_wrong_secret_is_reported_and_never_shown(replay):
    server = replay("b_login_wrong_secret")
    typed = "not-the-Secret-42"
    panel = ConnectionPanel(host=server.host, port=server.port, secret=typed)
    assert panel.login() is None
    assert panel.status_is_error
    assert "login as 'admin'" in panel.status and "Authentication failed" in panel.status
    assert panel.client is None
    assert_secret_only_in_password_field(panel, typed)
    panel.close()


def test_a_given_secret_is_used_but_shown_nowhere(replay, caplog):
    server = replay("a_banner_login_fullybooted")
    panel = ConnectionPanel(host=server.host, port=server.port, secret=COURSE_SECRET)
    with caplog.at_level("DEBUG"):
        client = panel.login()
    assert panel.logged_in
    assert_secret_only_in_password_field(panel, COURSE_SECRET)
    assert COURSE_SECRET not in caplog.text
    # other panels on the same client do not show it either, even the raw view
    actions = ActionPanel(client)
    assert_secret_only_in_password_field(actions, COURSE_SECRET)
    # a given secret is used, not shown: not even in the Password field, whose
    # value a saved widget state would keep in the notebook
    assert part(panel, "amilab-connection-secret").value == ""
    panel.close()


def test_the_password_field_wins_over_a_given_secret():
    from amilab.sim import SimulatedAsterisk

    with SimulatedAsterisk(failed_login_delay=0.01) as sim:
        panel = ConnectionPanel(host=sim.host, port=sim.port, secret="not-this-one")
        part(panel, "amilab-connection-secret").value = COURSE_SECRET
        assert panel.login() is not None and panel.logged_in
        panel.close()
        panel = ConnectionPanel(host=sim.host, port=sim.port, secret=COURSE_SECRET)
        part(panel, "amilab-connection-secret").value = "typed-wrong"
        assert panel.login() is None and "Authentication failed" in panel.status
        panel.close()


def assert_secret_only_in_password_field(panel, secret: str) -> None:
    for widget in walk(panel.widget):
        state = widget.get_state()
        if isinstance(widget, widgets.Password):
            state.pop("value")
        assert secret not in repr(state), f"{type(widget).__name__} holds the secret"
    assert secret not in panel.status
    assert secret not in panel.frame().to_string()


def test_a_server_that_is_not_ami_is_an_error_not_a_reason_to_fall_back():
    listener = socket.create_server(("127.0.0.1", 0))

    def greet_like_a_web_server() -> None:
        conn, _ = listener.accept()
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        conn.close()

    threading.Thread(target=greet_like_a_web_server, daemon=True).start()
    panel = ConnectionPanel(host="127.0.0.1", port=listener.getsockname()[1])
    try:
        assert panel.connect() is None
        assert panel.status_is_error and "is not an AMI server" in panel.status
        assert panel.simulator is None
    finally:
        listener.close()
        panel.close()


def test_connection_panel_has_the_classes_a_browser_test_needs():
    panel = ConnectionPanel()
    classes = {c for w in walk(panel.widget) for c in w._dom_classes}
    assert {"amilab-connection-panel", "amilab-connection-host", "amilab-connection-port",
            "amilab-connection-username", "amilab-connection-secret", "amilab-connection-connect",
            "amilab-connection-login", "amilab-connection-logoff", "amilab-status"} <= classes
    assert isinstance(part(panel, "amilab-connection-secret"), widgets.Password)
    panel.close()


def test_connection_panel_falls_back_to_the_simulator_when_nothing_answers():
    with socket.create_server(("127.0.0.1", 0)) as probe:
        free_port = probe.getsockname()[1]  # closed again: nothing listens there
    panel = ConnectionPanel(host="127.0.0.1", port=free_port, secret="")
    try:
        client = panel.login()
        assert client is not None and client.server_kind == "simulated"
        assert panel.simulator is client.simulator is not None
        assert panel.logged_in and not panel.status_is_error
        assert panel.status == (
            f"Nothing answered at 127.0.0.1:{free_port} (connection refused), so this panel "
            "started a simulated Asterisk 22 inside this kernel. Logged in as admin: simulated "
            f"Asterisk 22 in this kernel at {client.address}.")
        panel.logoff()
        assert client.simulator._closed  # logging off stops the simulator it started
    finally:
        panel.close()


def test_the_fallback_is_announced_when_connecting(monkeypatch):
    with socket.create_server(("127.0.0.1", 0)) as probe:
        free_port = probe.getsockname()[1]
    panel = ConnectionPanel(host="127.0.0.1", port=free_port)
    try:
        client = panel.connect()
        assert panel.status.startswith(
            f"Nothing answered at 127.0.0.1:{free_port} (connection refused), so this panel "
            f"started a simulated Asterisk 22 inside this kernel. Connected: simulated Asterisk "
            f"22 in this kernel at {client.address}")
    finally:
        panel.close()


# -- PhonePanel and the event stream, on the simulated Asterisk ------------------------


@pytest.fixture
def lab():
    """A simulated Asterisk whose PBX runs on a manual clock, a logged-in client,
    and an event panel on it. Timed steps (ringing, DTMF) wait for ``clock.advance``."""
    clock = PbxClock()
    pbx = PBX(clock=clock)
    server = SimulatedAsterisk(pbx=pbx)
    client = AMIClient(server.host, server.port, timeout=5).connect()
    client.login("admin", COURSE_SECRET)
    events = EventStreamPanel(client, rows=200, interval=0.01)
    phones = PhonePanel(server, interval=0.01)
    yield clock, events, phones
    phones.close()
    events.close()
    client.close()
    server.close()
    pbx.close()


def seen(events: EventStreamPanel, name: str, **fields: str) -> bool:
    """Has ``events`` recorded an event ``name`` with these header values?"""
    return any(m.name == name and all(m.get(k) == v for k, v in fields.items())
               for _, m in events.log.snapshot())


def names_in_order(events: EventStreamPanel) -> list[str]:
    return [m.name for _, m in events.log.snapshot()]


def test_registering_1001_shows_demo_1s_events_in_the_event_panel(lab):
    clock, events, phones = lab
    part(phones, "amilab-phone-register-1001").click()
    assert wait_for(lambda: seen(events, "ContactStatus", AOR="1001"))
    assert seen(events, "PeerStatus", Peer="PJSIP/1001", PeerStatus="Reachable")
    assert phones.frame().set_index("Phone")["Registered"].to_dict() == {"1001": True,
                                                                        "1002": False}
    part(phones, "amilab-phone-unregister-1001").click()
    assert wait_for(lambda: seen(events, "ContactStatus", AOR="1001", ContactStatus="Removed"))
    assert not phones.frame()["Registered"].any()
    events.pause()
    shown = events.frame()
    assert shown.iloc[0]["Event"] in ("ContactStatus", "DeviceStateChange", "PeerStatus")
    assert "ContactStatus: Removed" in " ".join(shown["Details"])


def test_a_call_from_1001_to_1002_follows_demo_2_button_by_button(lab):
    clock, events, phones = lab
    phones.register("1001")
    phones.register("1002")
    part(phones, "amilab-phone-call").click()  # returns at once: 1002 rings on the clock
    assert phones.frame().set_index("Phone")["ChannelState"]["1002"] == "Down"
    clock.advance(0.1)  # the table follows the PBX on its own
    assert wait_for(lambda: phones.frame().set_index("Phone")["ChannelState"]["1002"]
                    == "Ringing")
    part(phones, "amilab-phone-answer").click()
    assert phones.frame()["ChannelState"].tolist() == ["Up", "Up"]
    part(phones, "amilab-phone-hangup-1002").click()
    clock.advance(1.0)
    assert wait_for(lambda: sum(n == "Hangup" for n in names_in_order(events)) == 2)
    assert wait_for(lambda: phones.frame()["Channel"].tolist() == ["", ""])
    course_order = ["Newchannel", "DialBegin", "Newstate", "DialEnd", "HangupRequest", "Hangup"]
    story = [n for n in names_in_order(events) if n in course_order]
    firsts = [story.index(name) for name in course_order]
    assert firsts == sorted(firsts)
    assert seen(events, "DialEnd", DialStatus="ANSWER")
    assert seen(events, "HangupRequest", CallerIDNum="1002")
    assert seen(events, "Hangup", **{"Cause": "16", "Cause-txt": "Normal Clearing"})


def test_the_echo_test_and_a_dtmf_digit_follow_demo_3(lab):
    clock, events, phones = lab
    phones.register("1001")
    part(phones, "amilab-phone-echo").click()
    clock.advance(1.0)
    part(phones, "amilab-phone-digit").value = "7"
    part(phones, "amilab-phone-dtmf").click()
    clock.advance(1.0)
    part(phones, "amilab-phone-hangup-1001").click()
    clock.advance(1.0)
    assert wait_for(lambda: seen(events, "Hangup", Exten="9999"))
    assert seen(events, "Newchannel", Exten="9999", Context="internal")
    assert seen(events, "Newstate", ChannelStateDesc="Up")
    assert seen(events, "DTMFBegin", Digit="7", Direction="Received")
    assert seen(events, "DTMFEnd", Digit="7")
    events.set_filter(event_class="dtmf")
    assert set(events.frame()["Event"]) == {"DTMFBegin", "DTMFEnd"}


def test_a_digit_pressed_in_a_call_to_1002_raises_no_event_and_the_panel_says_why(lab):
    clock, events, phones = lab
    phones.register("1001")
    phones.register("1002")
    part(phones, "amilab-phone-call").click()
    clock.advance(1.0)
    part(phones, "amilab-phone-answer").click()
    clock.advance(1.0)
    part(phones, "amilab-phone-dtmf").click()
    clock.advance(1.0)
    assert "no DTMF event" in phones.status and not phones.status_is_error
    part(phones, "amilab-phone-hangup-1001").click()
    clock.advance(1.0)
    assert wait_for(lambda: seen(events, "Hangup", CallerIDNum="1001"))
    assert not seen(events, "DTMFBegin") and not seen(events, "DTMFEnd")


def test_phone_mistakes_are_shown_in_the_panel_not_raised(lab):
    clock, events, phones = lab
    part(phones, "amilab-phone-answer").click()
    assert phones.status_is_error and phones.status.startswith("No call to answer")
    part(phones, "amilab-phone-dtmf").click()
    assert phones.status_is_error and "has no answered call" in phones.status
    phones.echo_test()
    part(phones, "amilab-phone-call").click()
    assert phones.status == "A call is in progress: hang it up first."
    part(phones, "amilab-phone-register-1002").click()
    assert not phones.status_is_error


def test_calling_an_unregistered_phone_explains_chanunavail(lab):
    clock, events, phones = lab
    phones.register("1001")
    phones.call()
    assert "1002 is not registered" in phones.status
    assert wait_for(lambda: seen(events, "Hangup", CallerIDNum="1001"))
    assert seen(events, "VarSet", Variable="DIALSTATUS", Value="CHANUNAVAIL")
    assert not seen(events, "DialBegin")


def test_on_a_real_asterisk_the_phone_panel_says_so_and_disables_its_buttons(replay):
    server = replay("a_banner_login_fullybooted")
    conn = ConnectionPanel(host=server.host, port=server.port, secret=COURSE_SECRET)
    conn.login()
    phones = PhonePanel(conn)
    assert f"this client is on a real Asterisk at {conn.client.address}" in phones.status
    buttons = [w for w in walk(phones.widget) if isinstance(w, widgets.Button)]
    assert buttons and all(b.disabled for b in buttons)
    phones.close()
    conn.close()


def test_the_phone_panel_has_the_classes_a_browser_test_needs(lab):
    _, _, phones = lab
    classes = {c for w in walk(phones.widget) for c in w._dom_classes}
    assert {"amilab-phone-panel", "amilab-phone-table", "amilab-phone-call",
            "amilab-phone-answer", "amilab-phone-echo", "amilab-phone-dtmf",
            "amilab-phone-register-1001", "amilab-phone-unregister-1002",
            "amilab-phone-hangup-1001", "amilab-phone-hangup-1002", "amilab-status"} <= classes


def wait_for(condition, timeout: float = 5.0) -> bool:
    """Poll ``condition`` (a worker thread is finishing); True once it holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def part(panel, css_class: str) -> widgets.Widget:
    """The one widget of ``panel`` carrying ``css_class`` (as a browser test finds it)."""
    found = [w for w in walk(panel.widget) if css_class in w._dom_classes]
    assert len(found) == 1, f"{len(found)} widgets with class {css_class}"
    return found[0]


def walk(widget: widgets.Widget):
    yield widget
    for child in getattr(widget, "children", ()):
        yield from walk(child)


def test_a_real_servers_secret_is_not_tried_on_the_fallback_simulator(monkeypatch):
    monkeypatch.setenv("AMI_SECRET", "the-production-secret")
    with socket.socket() as probe:  # a port where nothing listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    panel = ConnectionPanel(host="127.0.0.1", port=port)
    try:
        assert panel.login() is not None, panel.status
        assert panel.client.server_kind == "simulated" and panel.logged_in
    finally:
        panel.close()


def test_a_bad_ami_port_is_reported_not_silently_replaced(monkeypatch):
    from amilab import AMIError

    monkeypatch.setenv("AMI_PORT", "99999")
    with pytest.raises(AMIError, match="AMI_PORT is .99999."):
        ConnectionPanel()
