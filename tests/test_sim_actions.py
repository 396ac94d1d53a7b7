"""The simulated Asterisk's PBX actions, byte for byte against real Asterisk 22.

Each handler runs directly: an ActionCall whose reply collects the messages, a
real PBX on a manual clock, and a fake manager half. Where a recording exists,
the reply is framed as the session frames it and compared with what Asterisk
22.10.1 sent for the same ActionID, after normalising values that differ
between any two runs (times, dates, unique ids, channel sequence numbers).
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence

import pytest

from amilab.protocol import Message, Parser, encode_action
from amilab.sim import classes
from amilab.sim.actions import ACTIONS, ActionCall, Caller, parse_callerid
from amilab.sim.clock import ManualClock
from amilab.sim.pbx import PBX
from amilab.sim.session import frame
from tests import transcripts

#: The course's admin user: every class the recordings' admin had.
ADMIN_WRITE = classes.parse_perms(
    "system,call,log,verbose,command,agent,user,config,dtmf,reporting,cdr,dialplan,originate"
)
#: The recorded lab: endpoints 1001 and 1002 only.
LAB_ENDPOINTS = ("1001", "1002")


class FakeManager:
    """The manager half as actions see it: ``manager show settings`` and reload."""

    def __init__(self, reload_error: str = "") -> None:
        self.reloads = 0
        self.reload_error = reload_error

    def run_cli(self, line: str) -> str | None:
        if line.split()[:1] != ["manager"]:
            return None
        if line.split() == ["manager", "show", "settings"]:
            return "\nGlobal Settings:\n----------------\n"
        return "Usage: manager show user <user>\n"

    def reload(self) -> str:
        self.reloads += 1
        return self.reload_error


class Answer:
    """What one action answered, and when."""

    def __init__(self) -> None:
        self.messages: list[list[tuple[str, str]]] | None = None

    def __call__(self, messages: list[list[tuple[str, str]]]) -> None:
        assert self.messages is None, "an action must answer exactly once"
        self.messages = messages

    @property
    def wire(self) -> bytes:
        assert self.messages is not None, "the action has not answered"
        return b"".join(frame(pairs) for pairs in self.messages)

    @property
    def first(self) -> dict[str, str]:
        assert self.messages is not None
        return dict(self.messages[0])


def request(action: str, *headers: tuple[str, str]) -> Message:
    """A request as the session hands it over (server-role parser)."""
    (message,) = Parser(role="server").feed(encode_action(action, list(headers)))
    return message


def run(
    pbx: PBX,
    action: str,
    *headers: tuple[str, str],
    write: int = ADMIN_WRITE,
    manager: FakeManager | None = None,
) -> Answer:
    answer = Answer()
    call = ActionCall(
        request=request(action, *headers),
        caller=Caller("admin", write, "127.0.0.1"),
        pbx=pbx,
        manager=manager or FakeManager(),
        reply=answer,
    )
    ACTIONS[action.lower()].handler(call)
    return answer


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def pbx(clock: ManualClock):
    pbx = PBX(clock, endpoints=LAB_ENDPOINTS)
    yield pbx
    pbx.close()


# -- the recordings ------------------------------------------------------------------------

_VOLATILE = re.compile(
    rb"(Timestamp|CoreStartupDate|CoreStartupTime|CoreReloadDate|CoreReloadTime|LoginTime"
    rb"|ExpirationTime|CallId|ViaPort|BridgeId|Uniqueid|Linkedid|DestUniqueid|DestLinkedid)"
    rb": [^\r\n]+\r"
)
_CHANNEL_SEQUENCE = re.compile(rb"-[0-9a-f]{8}(;[12])?")
_CONTACT_HASH = re.compile(rb"@[0-9a-f]{32}")
_CLIENT_PORT = re.compile(rb"127\.0\.0\.1:\d+")


def normalise(data: bytes) -> bytes:
    """Blank what differs between any two runs of the same lab: clock readings,
    unique ids, channel sequence numbers, a phone's port, Call-ID and contact hash."""
    data = _VOLATILE.sub(rb"\1: N\r", data)
    data = _CHANNEL_SEQUENCE.sub(rb"-SEQ\1", data)
    data = _CONTACT_HASH.sub(rb"@HASH", data)
    return _CLIENT_PORT.sub(b"127.0.0.1:PORT", data)


def _wire_messages(received: bytes) -> list[tuple[Message, bytes]]:
    """Each message Asterisk sent with its exact bytes: from its start to the
    next message's start, so a stray CRLF after ``No Contacts found\\n`` stays."""
    messages = Parser(role="client").feed(received)
    starts, position = [], 0
    for message in messages:
        position = received.index(message.raw, position)
        starts.append(position)
        position += len(message.raw)
    ends = [*starts[1:], len(received)]
    return [(m, received[a:b]) for m, a, b in zip(messages, starts, ends, strict=True)]


def recorded(name: str, action_id: str, index: int = 0) -> bytes:
    """What Asterisk answered to the request with ``action_id``: the response and
    its list items (events with that ActionID and no Privilege header)."""
    received = transcripts.connection(name, index).received()
    return b"".join(
        raw
        for m, raw in _wire_messages(received)
        if m.get("ActionID") == action_id and m.get("Privilege") is None
    )


def recorded_without_action_id(name: str, action: str) -> bytes:
    """Asterisk's answer to the one request that had no ActionID, located by
    pairing requests and responses in order."""
    conn = transcripts.connection(name)
    sent = Parser(role="server").feed(conn.sent())
    responses = [raw for m, raw in _wire_messages(conn.received()) if m.kind == "response"]
    for req, raw in zip(sent, responses, strict=False):
        if req.get("Action") == action and not req.get("ActionID"):
            return raw
    raise AssertionError(f"no {action} without ActionID in {name}")


def test_normaliser_keeps_what_a_user_reads() -> None:
    raw = b"Response: Success\r\nCoreStartupTime: 03:19:39\r\nCoreCurrentCalls: 0\r\n\r\n"
    assert (
        normalise(raw) == b"Response: Success\r\nCoreStartupTime: N\r\nCoreCurrentCalls: 0\r\n\r\n"
    )
    assert (
        normalise(b"Channel: Local/8000@internal-00000003;1\r\n")
        == b"Channel: Local/8000@internal-SEQ;1\r\n"
    )
    assert normalise(b"Message: Channel Hungup\r\n") == b"Message: Channel Hungup\r\n"


def events_of(pbx: PBX) -> list:
    """Every event the PBX publishes from now on, as a live list."""
    seen: list = []
    pbx.subscribe(seen.append)
    return seen


# -- registry ------------------------------------------------------------------------------


def test_actions_carry_asterisks_names_and_write_classes() -> None:
    s, c, r = classes.SYSTEM, classes.CALL, classes.REPORTING
    assert {spec.name: spec.privilege for spec in ACTIONS.values()} == {
        "Ping": 0,
        "CoreStatus": s | r,
        "CoreSettings": s | r,
        "CoreShowChannels": s | r,
        "PJSIPShowEndpoints": s,
        "PJSIPShowEndpoint": s,
        "PJSIPShowContacts": s,
        "PJSIPShowAors": s,
        "Command": classes.COMMAND,
        "Originate": classes.ORIGINATE,
        "Hangup": s | c,
        "Redirect": c,
        "Reload": classes.CONFIG | s,
        "QueueStatus": 0,
        "QueueSummary": 0,
        "Getvar": c | r,
        "Setvar": c,
    }
    assert all(key == spec.name.lower() for key, spec in ACTIONS.items())


def test_listcommands_lines_match_the_recording() -> None:
    received = transcripts.connection("s_listcommands").received().decode()
    recorded_lines = dict(
        line.split(": ", 1) for line in received.split("\r\n") if "(Priv: " in line
    )
    shown = [name for name in ("Command", "CoreSettings") if name in recorded_lines]
    assert shown == ["Command", "CoreSettings"]
    for name in shown:
        spec = ACTIONS[name.lower()]
        privilege = classes.perms_to_str(spec.privilege)
        assert f"{spec.synopsis}  (Priv: {privilege})" == recorded_lines[name]


# -- e, f, j: core status, settings, ping -------------------------------------------------


def test_corestatus_matches_recording_with_and_without_actionid(pbx: PBX) -> None:
    with_id = run(pbx, "CoreStatus", ("ActionID", "e-12345"))
    without = run(pbx, "CoreStatus")
    assert normalise(with_id.wire) == normalise(recorded("e_corestatus_actionid", "e-12345"))
    assert normalise(without.wire) == normalise(
        recorded_without_action_id("e_corestatus_actionid", "CoreStatus")
    )


def test_corestatus_dates_are_the_pbx_start_in_local_time(pbx: PBX, clock: ManualClock) -> None:
    clock.advance(3600)
    answer = run(pbx, "CoreStatus").first
    started = time.localtime(pbx.started_at)
    assert answer["CoreStartupDate"] == time.strftime("%Y-%m-%d", started)
    assert answer["CoreStartupTime"] == time.strftime("%H:%M:%S", started)


def test_coresettings_matches_recording(pbx: PBX) -> None:
    assert run(pbx, "CoreSettings", ("ActionID", "f1")).wire == recorded("f_coresettings", "f1")


def test_ping_answers_pong_with_the_pbx_wall_clock(pbx: PBX, clock: ManualClock) -> None:
    clock.advance(0.004512)
    answer = run(pbx, "Ping", ("ActionID", "j1"))
    assert normalise(answer.wire) == normalise(recorded("j_ping", "j1"))
    assert answer.first["Timestamp"] == f"{int(clock.wall())}.{round(clock.wall() % 1 * 1e6):06d}"
    assert re.fullmatch(r"\d+\.\d{6}", answer.first["Timestamp"])


# -- g: CoreShowChannels ------------------------------------------------------------------


def originate_and_wait(
    pbx: PBX, clock: ManualClock, *headers: tuple[str, str]
) -> tuple[Answer, dict[str, str]]:
    """An Async Originate, then time until its OriginateResponse is out and the
    steps due at that moment have run (the next request comes later)."""
    events = events_of(pbx)
    answer = run(pbx, "Originate", *headers, ("Async", "true"))
    for _ in range(100):
        responses = [e for e in events if e.name == "OriginateResponse"]
        if responses:
            clock.advance(0.0)
            return answer, dict(responses[0].body)
        clock.advance(0.1)
    raise AssertionError("no OriginateResponse within 10 s")


def test_coreshowchannels_idle_matches_recording(pbx: PBX) -> None:
    assert run(pbx, "CoreShowChannels", ("ActionID", "g1")).wire == recorded(
        "g_coreshowchannels", "g1"
    )


def test_coreshowchannels_during_a_call_matches_recording(pbx: PBX, clock: ManualClock) -> None:
    originate_and_wait(
        pbx,
        clock,
        ("Channel", "Local/1000@internal"),
        ("Application", "Wait"),
        ("Data", "5"),
        ("ActionID", "g2"),
    )
    answer = run(pbx, "CoreShowChannels", ("ActionID", "g3"))
    assert normalise(answer.wire) == normalise(recorded("g_coreshowchannels", "g3"))


def test_coreshowchannels_duration_counts_from_channel_creation(
    pbx: PBX, clock: ManualClock
) -> None:
    originate_and_wait(
        pbx, clock, ("Channel", "Local/9999@internal"), ("Application", "Wait"), ("Data", "3700")
    )
    clock.advance(3665)
    durations = [dict(item)["Duration"] for item in run(pbx, "CoreShowChannels").messages[1:-1]]
    assert durations == ["01:01:05", "01:01:05"]


def test_coreshowchannels_during_a_phone_call_matches_recording(
    pbx: PBX, clock: ManualClock
) -> None:
    pbx.register("1001")
    pbx.register("1002")
    pbx.call("1001", "1002", answer_after=1.0, talk_for=30.0)
    clock.advance(1.5)
    answer = run(pbx, "CoreShowChannels", ("ActionID", "d2-csc"))
    assert normalise(answer.wire) == normalise(recorded("demo2_call_1001_to_1002", "d2-csc"))
    assert answer.messages is not None
    bridges = {dict(item)["BridgeId"] for item in answer.messages[1:-1]}
    assert len(bridges) == 1 and "" not in bridges


# -- h, h2: PJSIP -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "headers", "action_id"),
    [
        ("PJSIPShowEndpoints", (), "h1"),
        ("PJSIPShowEndpoint", (("Endpoint", "1001"),), "h2"),
        ("PJSIPShowContacts", (), "h3"),
        ("PJSIPShowAors", (), "h4"),
        ("PJSIPShowEndpoint", (("Endpoint", "nosuch"),), "h5"),
    ],
)
def test_pjsip_actions_without_registrations_match_recording(
    pbx: PBX, action: str, headers: tuple[tuple[str, str], ...], action_id: str
) -> None:
    answer = run(pbx, action, *headers, ("ActionID", action_id))
    assert answer.wire == recorded("h_pjsip_show", action_id)


def test_no_contacts_error_ends_in_a_bare_lf(pbx: PBX) -> None:
    assert (
        run(pbx, "PJSIPShowContacts").wire
        == b"Response: Error\r\nMessage: No Contacts found\n\r\n\r\n"
    )


def test_no_endpoints_error_ends_in_a_bare_lf(clock: ManualClock) -> None:
    empty = PBX(clock, endpoints=())
    try:
        assert (
            run(empty, "PJSIPShowEndpoints").wire
            == b"Response: Error\r\nMessage: No endpoints found\n\r\n\r\n"
        )
    finally:
        empty.close()


def test_pjsip_lists_with_a_registered_contact_match_recording(pbx: PBX) -> None:
    pbx.register("1001")
    contacts = run(pbx, "PJSIPShowContacts", ("ActionID", "h2-1"))
    endpoints = run(pbx, "PJSIPShowEndpoints", ("ActionID", "h2-2"))
    assert normalise(contacts.wire) == normalise(
        recorded("h2_pjsip_with_registered_contact", "h2-1")
    )
    assert normalise(endpoints.wire) == normalise(
        recorded("h2_pjsip_with_registered_contact", "h2-2")
    )
    pbx.unregister("1001")
    after = run(pbx, "PJSIPShowContacts", ("ActionID", "h2-3"))
    assert after.wire == recorded("h2_pjsip_with_registered_contact", "h2-3")


def test_aor_and_endpoint_detail_list_a_registered_contact(pbx: PBX) -> None:
    pbx.register("1002", qualify=True)
    (aor,) = [
        dict(item)
        for item in run(pbx, "PJSIPShowAors").messages[1:-1]
        if dict(item)["ObjectName"] == "1002"
    ]
    assert aor["Contacts"].startswith("1002/sip:1002@127.0.0.1:") and aor["Contacts"].endswith(",")
    detail = run(pbx, "PJSIPShowEndpoint", ("Endpoint", "PJSIP/1002")).messages
    assert [dict(m).get("Event") for m in detail[1:]] == [
        "EndpointDetail",
        "AuthDetail",
        "AorDetail",
        "ContactStatusDetail",
        "EndpointDetailComplete",
    ]
    assert dict(detail[-1])["ListItems"] == "4"
    assert dict(detail[3])["TotalContacts"] == "1"
    assert dict(detail[1])["DeviceState"] == "Not in use"


# -- i: Command and the CLI ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "action_id"),
    [
        ("core show version", "i1"),
        ("dialplan show internal", "i2"),
        ("no such cli command", "i3"),
        (None, "i4"),
    ],
)
def test_command_matches_recording(pbx: PBX, line: str | None, action_id: str) -> None:
    headers = [("Command", line)] if line is not None else []
    answer = run(pbx, "Command", *headers, ("ActionID", action_id))
    assert answer.wire == recorded("i_command", action_id)


def command_output(
    pbx: PBX, line: str, manager: FakeManager | None = None
) -> tuple[str, list[str]]:
    answer = run(pbx, "Command", ("Command", line), manager=manager)
    assert answer.messages is not None
    (message,) = answer.messages
    assert message[:2] == [("Response", message[0][1]), ("Message", "Command output follows")]
    return message[0][1], [value for name, value in message[2:] if name == "Output"]


def test_command_refuses_blacklisted_commands(pbx: PBX) -> None:
    for line in ("module load app_dial.so", "MODULE  Unload chan_pjsip.so", "restart gracefully"):
        assert run(pbx, "Command", ("Command", line)).first == {
            "Response": "Error",
            "Message": "Command blacklisted",
        }
    assert command_output(pbx, "module reload app_queue")[0] == "Success"


def test_command_runs_manager_cli_commands_on_the_manager_half(pbx: PBX) -> None:
    assert command_output(pbx, "manager show settings") == (
        "Success",
        ["", "Global Settings:", "----------------"],
    )
    assert command_output(pbx, "manager show user")[0] == "Error"


def test_command_unknown_hint_keeps_the_words_that_lead_somewhere(pbx: PBX) -> None:
    assert command_output(pbx, "core show nonsense here") == (
        "Error",
        [
            "No such command 'core show nonsense here'"
            " (type 'core show help core show nonsense here' "
            "for other possible commands)"
        ],
    )
    assert command_output(pbx, "core show")[1] == [
        "No such command 'core show' (type 'core show help core show' for other possible commands)"
    ]


def test_command_with_empty_output_still_sends_one_output_line(pbx: PBX) -> None:
    answer = run(pbx, "Command", ("Command", "module reload"))
    assert answer.messages == [
        [("Response", "Success"), ("Message", "Command output follows"), ("Output", "")]
    ]


def test_core_show_channels_lists_channels_and_counts_calls(pbx: PBX, clock: ManualClock) -> None:
    assert command_output(pbx, "core show channels") == (
        "Success",
        [
            f"{'Channel':<20} {'Location':<20} {'State':<7} {'Application(Data)':<30}",
            "0 active channels",
            "0 active calls",
            "0 calls processed",
        ],
    )
    pbx.register("1001")
    pbx.register("1002")
    pbx.call("1001", "1002", answer_after=1.0, talk_for=30.0)
    clock.advance(2.0)
    _, lines = command_output(pbx, "core show channels")
    assert lines[1].split()[:4] == [lines[1].split()[0], "@internal:1", "Up", "AppDial((Outgoing"]
    assert lines[2].split() == [lines[2].split()[0], "1002@internal:1", "Up", "Dial(PJSIP/1002,20)"]
    assert lines[3:] == [
        "2 active channels",
        "1 active call",
        f"{pbx.processed_calls} call{'s' if pbx.processed_calls != 1 else ''} processed",
    ]
    assert command_output(pbx, "core show channels count")[1] == lines[3:]
    assert command_output(pbx, "core show channels sideways")[1][0].startswith(
        "Usage: core show channels"
    )


def test_core_show_uptime_spells_out_units(pbx: PBX, clock: ManualClock) -> None:
    assert command_output(pbx, "core show uptime")[1] == [
        "System uptime: 0 seconds",
        "Last reload: 0 seconds",
    ]
    clock.advance(3 * 86400 + 60 + 1)
    assert (
        command_output(pbx, "core show uptime")[1][0] == "System uptime: 3 days, 1 minute, 1 second"
    )
    assert (
        command_output(pbx, "core show uptime seconds")[1][0] == f"System uptime: {3 * 86400 + 61}"
    )


def test_dialplan_show_lists_every_context_and_says_when_one_is_missing(pbx: PBX) -> None:
    status, lines = command_output(pbx, "dialplan show")
    assert status == "Success"
    assert lines[0] == "[ Context 'internal' created by 'pbx_config' ]"
    assert lines[-1] == "-= 5 extensions (15 priorities) in 1 context. =-"
    assert command_output(pbx, "dialplan show nosuch") == (
        "Error",
        ["There is no existence of 'nosuch' context"],
    )
    _, only = command_output(pbx, "dialplan show 9999@internal")
    assert only[1].startswith("  '9999' =>         1. NoOp(echo test)")
    assert only[-1] == "-= 1 extension (4 priorities) in 1 context. =-"


def test_dialplan_show_numbers_extra_extensions_after_the_recorded_ones(clock: ManualClock) -> None:
    pbx = PBX(clock)  # 1001-1003: 1003 is not in the recorded extensions.conf
    try:
        _, lines = command_output(pbx, "dialplan show internal")
    finally:
        pbx.close()
    (first,) = [line for line in lines if "'1003' =>" in line]
    assert first.endswith("[extensions.conf:28]")


def test_pjsip_show_endpoints_and_contacts_cli(pbx: PBX) -> None:
    assert command_output(pbx, "pjsip show contacts")[1] == ["", "No objects found.", ""]
    pbx.register("1001")
    _, endpoints = command_output(pbx, "pjsip show endpoints")
    assert endpoints[1].startswith(" Endpoint:  <Endpoint/CID")
    body = [line for line in endpoints if line.startswith((" Endpoint:  1", "      Contact:  1"))]
    assert body[0].split() == ["Endpoint:", "1001", "Not", "in", "use", "0", "of", "inf"]
    assert body[1].split()[1].startswith("1001/sip:1001@127.0.0.1:") and body[1].split()[3:] == [
        "NonQual",
        "nan",
    ]
    assert endpoints[-2:] == ["Objects found: 2", ""]
    _, contacts = command_output(pbx, "pjsip show contacts")
    assert contacts[-2:] == ["Objects found: 1", ""]


def test_module_reload_reports_problems_per_module(pbx: PBX) -> None:
    events = events_of(pbx)
    assert command_output(pbx, "module reload nosuch app_dial res_pjsip.so") == (
        "Success",
        ["No such module 'nosuch'", "The module 'app_dial' does not support reloads"],
    )
    assert [(e.name, dict(e.body)) for e in events] == [
        ("Reload", {"Module": "nosuch", "Status": "2"}),
        ("Reload", {"Module": "app_dial", "Status": "6"}),
        ("Reload", {"Module": "res_pjsip.so", "Status": "0"}),
    ]


# -- n: GetVar / SetVar --------------------------------------------------------------------


def test_getvar_setvar_match_recording(pbx: PBX, clock: ManualClock) -> None:
    originate_and_wait(
        pbx, clock, ("Channel", "Local/8000@internal"), ("Application", "Wait"), ("Data", "30")
    )
    one = next(c.name for c in pbx.channels() if c.name.endswith(";1"))
    steps = [
        ("SetVar", (("Channel", one), ("Variable", "LABVAR"), ("Value", "some value")), "n1"),
        ("GetVar", (("Channel", one), ("Variable", "LABVAR")), "n2"),
        ("GetVar", (("Channel", one), ("Variable", "NOSUCHVAR")), "n3"),
        ("GetVar", (("Channel", one), ("Variable", "CHANNEL(state)")), "n4"),
        ("GetVar", (("Channel", "Local/nosuch@internal-0000;1"), ("Variable", "LABVAR")), "n5"),
        ("SetVar", (("Variable", "LABGLOBALVAR"), ("Value", "42")), "n6"),
        ("GetVar", (("Variable", "LABGLOBALVAR"),), "n7"),
        ("GetVar", (("Variable", "LABGLOBAL"),), "n8"),
        ("GetVar", (("Variable", "NOSUCHGLOBAL"),), "n9"),
        ("SetVar", (("Value", "x"),), "n10"),
        ("GetVar", (), "n11"),
        ("SetVar", (("Variable", "EMPTYVAL"),), "n12"),
        ("GetVar", (("Variable", "EMPTYVAL"),), "n13"),
        ("Hangup", (("Channel", one),), "n-hangup"),
    ]
    for action, headers, action_id in steps:
        answer = run(pbx, action, *headers, ("ActionID", action_id))
        assert answer.wire == recorded("n_getvar_setvar", action_id), action_id


def test_getvar_of_shell_or_eval_needs_the_system_class(pbx: PBX) -> None:
    call_only = classes.CALL | classes.REPORTING
    for variable in ("SHELL(id)", "EVAL(${X})"):
        answer = run(pbx, "GetVar", ("Variable", variable), write=call_only)
        assert answer.first == {"Response": "Error", "Message": "GetVar Access Forbidden: Variable"}
    assert (
        run(pbx, "GetVar", ("Variable", "shell_lowercase"), write=call_only).first["Response"]
        == "Success"
    )


def test_setvar_of_a_read_only_function_is_not_set(pbx: PBX) -> None:
    answer = run(pbx, "SetVar", ("Variable", "CHANNEL(state)"), ("Value", "Up"))
    assert answer.first == {"Response": "Error", "Message": "Variable not set"}


def test_setvar_on_a_missing_channel(pbx: PBX) -> None:
    answer = run(
        pbx, "SetVar", ("Channel", "PJSIP/1001-00000099"), ("Variable", "X"), ("Value", "1")
    )
    assert answer.first == {"Response": "Error", "Message": "No such channel"}


# -- o: Originate --------------------------------------------------------------------------


def recorded_event(name: str, event: str) -> list[tuple[str, str]]:
    """The body of the first ``event`` in a recording (after Event and Privilege)."""
    for message in Parser(role="client").feed(transcripts.connection(name).received()):
        if message.name == event:
            return message.headers[2:]
    raise AssertionError(f"no {event} in {name}")


def normalised_body(body: Sequence[tuple[str, str]]) -> bytes:
    return normalise(frame(list(body)))


def test_async_originate_replies_at_once_then_sends_originate_response(
    pbx: PBX, clock: ManualClock
) -> None:
    answer, response = originate_and_wait(
        pbx,
        clock,
        ("Channel", "Local/9999@internal"),
        ("Context", "internal"),
        ("Exten", "1000"),
        ("Priority", "1"),
        ("CallerID", "Lab <5551234>"),
        ("Timeout", "10000"),
        ("Variable", "ORIGVAR=abc"),
        ("ActionID", "o1"),
    )
    assert answer.wire == recorded("o_originate_events", "o1")
    assert normalised_body(response.items()) == normalised_body(
        recorded_event("o_originate_events", "OriginateResponse")
    )


def test_async_originate_of_an_application_reports_application_and_data(
    pbx: PBX, clock: ManualClock
) -> None:
    _, response = originate_and_wait(
        pbx,
        clock,
        ("Channel", "Local/1000@internal"),
        ("Application", "Wait"),
        ("Data", "5"),
        ("ActionID", "g2"),
    )
    assert normalised_body(response.items()) == normalised_body(
        recorded_event("g_coreshowchannels", "OriginateResponse")
    )


def test_async_originate_to_an_unregistered_phone_fails_with_reason_0(
    pbx: PBX, clock: ManualClock
) -> None:
    answer, response = originate_and_wait(
        pbx, clock, ("Channel", "PJSIP/1002"), ("Application", "Echo")
    )
    assert answer.first["Message"] == "Originate successfully queued"
    assert response == {
        "Response": "Failure",
        "Channel": "PJSIP/1002",
        "Application": "Echo",
        "Data": "",
        "Reason": "0",
        "Uniqueid": "<unknown>",
        "CallerIDNum": "<unknown>",
        "CallerIDName": "<unknown>",
    }


def test_sync_originate_answers_only_when_the_phone_answers(pbx: PBX, clock: ManualClock) -> None:
    pbx.register("1001")
    answer = run(
        pbx, "Originate", ("Channel", "PJSIP/1001"), ("Application", "Echo"), ("ActionID", "s1")
    )
    assert answer.messages is None
    clock.advance(pbx.auto_answer_after + 0.1)
    assert answer.messages == [
        [("Response", "Success"), ("ActionID", "s1"), ("Message", "Originate successfully queued")]
    ]


def test_sync_originate_that_nobody_answers_fails(pbx: PBX, clock: ManualClock) -> None:
    pbx.register("1001")
    pbx.auto_answer_after = None
    answer = run(
        pbx, "Originate", ("Channel", "PJSIP/1001"), ("Application", "Echo"), ("Timeout", "5000")
    )
    clock.advance(6)
    assert answer.first == {"Response": "Error", "Message": "Originate failed"}


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ((), "Channel not specified"),
        (
            (("Channel", "Local/1000@internal"), ("ChannelId", "x" * 150)),
            "Uniqueid length exceeds maximum of 149\n",
        ),
        (
            (
                ("Channel", "Local/1000@internal"),
                ("Exten", "1000"),
                ("Context", "internal"),
                ("Priority", "first"),
            ),
            "Invalid priority",
        ),
        (
            (("Channel", "Local/1000@internal"), ("Application", "Wait"), ("Timeout", "soon")),
            "Invalid timeout",
        ),
        ((("Channel", "1000"), ("Application", "Wait")), "Invalid channel"),
        (
            (
                ("Channel", "Local/1000@internal"),
                ("Exten", "4444"),
                ("Context", "internal"),
                ("Priority", "1"),
            ),
            "Extension does not exist.",
        ),
        (
            (("Channel", "Local/1000@internal"), ("Exten", "1000"), ("Context", "internal")),
            "Originate with 'Exten' requires 'Context' and 'Priority'",
        ),
        (
            (("Channel", "Local/1000@internal"), ("Application", "System"), ("Data", "id")),
            "Originate Access Forbidden: app or data blacklisted",
        ),
        (
            (("Channel", "Local/1000@internal"), ("Application", "NoOp"), ("Data", "${SHELL(id)}")),
            "Originate Access Forbidden: app or data blacklisted",
        ),
    ],
)
def test_originate_errors(pbx: PBX, headers: tuple[tuple[str, str], ...], message: str) -> None:
    write = classes.ORIGINATE | classes.CALL  # no system class
    assert run(pbx, "Originate", *headers, write=write).first == {
        "Response": "Error",
        "Message": message,
    }


def test_originate_blacklist_lets_the_system_class_through(pbx: PBX, clock: ManualClock) -> None:
    headers = (
        ("Channel", "Local/1000@internal"),
        ("Application", "NoOp"),
        ("Data", "${SHELL(id)}"),
    )
    assert run(pbx, "Originate", *headers, ("Async", "yes")).first["Response"] == "Success"
    queue_agi = (
        ("Channel", "Local/1000@internal"),
        ("Application", "Queue"),
        ("Data", "support,,,,,agi.sh"),
    )
    assert (
        run(pbx, "Originate", *queue_agi, write=classes.ORIGINATE)
        .first["Message"]
        .startswith("Originate Access")
    )
    assert (
        run(
            pbx, "Originate", *queue_agi, ("Async", "1"), write=classes.ORIGINATE | classes.AGI
        ).first["Response"]
        == "Success"
    )


def test_callerid_parsing_follows_asterisk() -> None:
    assert parse_callerid('"Lab" <5551234>') == ("Lab", "5551234")
    assert parse_callerid("5551234") == ("", "5551234")
    assert parse_callerid("Reception") == ("Reception", "")


# -- p: Hangup -----------------------------------------------------------------------------


def test_hangup_by_name_regex_and_errors_match_recording(pbx: PBX, clock: ManualClock) -> None:
    originate_and_wait(
        pbx, clock, ("Channel", "Local/8000@internal"), ("Application", "Wait"), ("Data", "30")
    )
    one = next(c.name for c in pbx.channels() if c.name.endswith(";1"))
    events = events_of(pbx)
    by_name = run(pbx, "Hangup", ("Channel", one), ("Cause", "16"), ("ActionID", "p1"))
    assert by_name.wire == recorded("p_hangup", "p1")
    assert [dict(e.body)["Cause"] for e in events if e.name == "Hangup"] == ["16", "16"]
    clock.advance(1)
    missing = run(pbx, "Hangup", ("Channel", "PJSIP/nosuch-00000000"), ("ActionID", "p2"))
    assert missing.wire == recorded("p_hangup", "p2")
    originate_and_wait(
        pbx, clock, ("Channel", "Local/8000@internal"), ("Application", "Wait"), ("Data", "30")
    )
    by_regex = run(pbx, "Hangup", ("Channel", "/^Local/8000@internal-.*$/"), ("ActionID", "p3"))
    assert normalise(by_regex.wire) == normalise(recorded("p_hangup", "p3"))
    assert pbx.channels() == []
    assert run(pbx, "Hangup", ("ActionID", "p4")).wire == recorded("p_hangup", "p4")


def test_hangup_without_cause_leaves_cause_unknown(pbx: PBX, clock: ManualClock) -> None:
    originate_and_wait(pbx, clock, ("Channel", "Local/9999@internal"), ("Application", "Echo"))
    events = events_of(pbx)
    run(pbx, "Hangup", ("Channel", "/Local/"), ("Cause", "999"))
    assert {dict(e.body)["Cause-txt"] for e in events if e.name == "Hangup"} == {"Unknown"}


@pytest.mark.parametrize(
    ("channel", "message"),
    [
        ("/Local", "Regex format invalid, Channel param should be /regex/"),
        ("/", "Regex format invalid, Channel param should be /regex/"),
        ("/Local(/", "Regex compile failed on: /Local(/"),
    ],
)
def test_hangup_regex_errors(pbx: PBX, channel: str, message: str) -> None:
    assert run(pbx, "Hangup", ("Channel", channel)).first == {
        "Response": "Error",
        "Message": message,
    }


def test_hangup_regex_matching_nothing_is_an_empty_list(pbx: PBX) -> None:
    answer = run(pbx, "Hangup", ("Channel", "/PJSIP/"), ("ActionID", "x"))
    assert answer.messages == [
        [
            ("Response", "Success"),
            ("ActionID", "x"),
            ("EventList", "start"),
            ("Message", "Channels hung up will follow"),
        ],
        [
            ("Event", "ChannelsHungupListComplete"),
            ("ActionID", "x"),
            ("EventList", "Complete"),
            ("ListItems", "0"),
        ],
    ]


# -- Redirect ------------------------------------------------------------------------------


def test_redirect_sends_a_channel_elsewhere_in_the_dialplan(pbx: PBX, clock: ManualClock) -> None:
    originate_and_wait(
        pbx, clock, ("Channel", "Local/8000@internal"), ("Application", "Wait"), ("Data", "30")
    )
    two = next(c for c in pbx.channels() if c.name.endswith(";2"))
    headers = (("Channel", two.name), ("Context", "internal"), ("Exten", "9999"), ("Priority", "1"))
    assert run(pbx, "Redirect", *headers).first == {
        "Response": "Success",
        "Message": "Redirect successful",
    }
    clock.advance(1)
    assert (two.exten, two.application) == ("9999", "Echo")


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ((), "Channel not specified"),
        ((("Channel", "X/1"),), "Context not specified"),
        ((("Channel", "X/1"), ("Context", "internal")), "Exten not specified"),
        (
            (("Channel", "X/1"), ("Context", "internal"), ("Exten", "9999")),
            "Priority not specified",
        ),
        (
            (("Channel", "X/1"), ("Context", "internal"), ("Exten", "9999"), ("Priority", "label")),
            "Priority is invalid",
        ),
        (
            (("Channel", "X/1"), ("Context", "internal"), ("Exten", "9999"), ("Priority", "1")),
            "Channel does not exist: X/1",
        ),
        (
            (
                ("Channel", "X/1"),
                ("Context", "internal"),
                ("Exten", "9999"),
                ("Priority", "1"),
                ("ExtraChannel", "Y/2"),
                ("ExtraContext", "internal"),
            ),
            "ExtraExten not specified",
        ),
    ],
)
def test_redirect_errors(pbx: PBX, headers: tuple[tuple[str, str], ...], message: str) -> None:
    assert run(pbx, "Redirect", *headers).first == {"Response": "Error", "Message": message}


def test_dual_redirect_moves_both_channels(pbx: PBX, clock: ManualClock) -> None:
    for _ in range(2):
        originate_and_wait(
            pbx, clock, ("Channel", "Local/8000@internal"), ("Application", "Wait"), ("Data", "30")
        )
    first, second = [c for c in pbx.channels() if c.name.endswith(";2")]
    headers = (
        ("Channel", first.name),
        ("ExtraChannel", second.name),
        ("Context", "internal"),
        ("Exten", "9999"),
        ("Priority", "1"),
    )
    assert run(pbx, "Redirect", *headers).first == {
        "Response": "Success",
        "Message": "Dual Redirect successful",
    }
    assert (first.exten, second.exten) == ("9999", "9999")
    gone = (
        ("Channel", first.name),
        ("ExtraChannel", "Local/none-1;2"),
        ("Context", "internal"),
        ("Exten", "9999"),
        ("Priority", "1"),
    )
    assert (
        run(pbx, "Redirect", *gone).first["Message"]
        == "ExtraChannel does not exist: Local/none-1;2"
    )


# -- q: Reload -----------------------------------------------------------------------------


def test_reload_matches_recording_and_publishes_reload_events(pbx: PBX) -> None:
    manager = FakeManager()
    events = events_of(pbx)
    for headers, action_id in (
        ((), "q1"),
        ((("Module", "manager"),), "q2"),
        ((("Module", "nosuchmodule"),), "q3"),
    ):
        answer = run(pbx, "Reload", *headers, ("ActionID", action_id), manager=manager)
        assert answer.wire == recorded("q_reload", action_id)
    assert manager.reloads == 2  # everything, then manager
    recorded_events = [
        m
        for m in Parser(role="client").feed(transcripts.connection("q_reload").received())
        if m.kind == "event"
    ][1:]  # after FullyBooted
    assert [(e.name, list(e.body)) for e in events] == [
        (m.name, m.headers[2:]) for m in recorded_events
    ]


def test_reload_of_a_broken_manager_conf_is_an_unknown_error(pbx: PBX) -> None:
    events = events_of(pbx)
    answer = run(pbx, "Reload", ("Module", "manager"), manager=FakeManager("line 3: no section"))
    assert answer.first == {"Response": "Error", "Message": "An unknown error occurred"}
    assert dict(events[-1].body) == {"Module": "manager", "Status": "3"}
    assert (
        run(pbx, "Reload", ("Module", "app_echo")).first["Message"]
        == "Module does not support reload"
    )


def test_ping_after_reload_matches_recording(pbx: PBX) -> None:
    assert normalise(run(pbx, "Ping", ("ActionID", "q4")).wire) == normalise(
        recorded("q_reload", "q4")
    )


# -- r: queues -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "headers", "action_id"),
    [
        ("QueueStatus", (), "r1"),
        ("QueueStatus", (("Queue", "support"),), "r2"),
        ("QueueStatus", (("Queue", "nosuchqueue"),), "r3"),
        ("QueueSummary", (), "r4"),
    ],
)
def test_queue_actions_match_recording(
    pbx: PBX, action: str, headers: tuple[tuple[str, str], ...], action_id: str
) -> None:
    answer = run(pbx, action, *headers, ("ActionID", action_id), write=0)
    assert normalise(answer.wire) == normalise(recorded("r_queuestatus", action_id))


def test_queuestatus_puts_actionid_last_and_filters_members(pbx: PBX) -> None:
    answer = run(
        pbx,
        "QueueStatus",
        ("Queue", "SUPPORT"),
        ("Member", "Local/1000@internal"),
        ("ActionID", "m"),
    )
    assert answer.messages is not None
    items = answer.messages[1:-1]
    assert [item[0] for item in items] == [("Event", "QueueMember")]
    assert items[0][-1] == ("ActionID", "m")
    nobody = run(pbx, "QueueStatus", ("Member", "PJSIP/1001"))
    assert nobody.messages is not None and len(nobody.messages) == 2


def test_originate_takes_a_numeric_priority_as_it_is(pbx: PBX) -> None:
    headers = (("Channel", "Local/1000@internal"), ("Exten", "1000"), ("Context", "internal"))
    assert run(pbx, "Originate", *headers, ("Priority", "-1")).first["Message"] == (
        "Extension does not exist."
    )
    assert run(pbx, "Originate", *headers, ("Priority", "0")).first["Message"] == (
        "Originate with 'Exten' requires 'Context' and 'Priority'"
    )


def test_channels_are_found_in_any_case_or_by_uniqueid(pbx: PBX, clock: ManualClock) -> None:
    originate_and_wait(pbx, clock, ("Channel", "Local/9999@internal"), ("Application", "Echo"))
    two = next(c for c in pbx.channels() if c.name.endswith(";2"))
    assert run(pbx, "GetVar", ("Channel", two.name.upper()), ("Variable", "CHANNEL(name)")).first[
        "Value"
    ] == (two.name)
    assert run(pbx, "Hangup", ("Channel", two.uniqueid)).first["Message"] == "Channel Hungup"
