"""The simulated Asterisk's PBX actions, byte for byte against real Asterisk 22.

Each handler runs directly: an ActionCall whose reply collects the messages, a
real PBX on a manual clock, and a fake manager half. Where a recording exists,
the reply is framed as the session frames it and compared with what Asterisk
22.10.1 sent for the same ActionID, after normalising values that differ
between any two runs (times, dates, unique ids, channel sequence numbers).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import pytest

from amilab.protocol import Message, Parser, encode_action
from amilab.sim import classes, clicommands
from amilab.sim.actions import ACTIONS, ActionCall, Caller
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
    rb"|ExpirationTime|CallId|ViaPort|BridgeId|Uniqueid|Linkedid|DestUniqueid|DestLinkedid): [^\r\n]+\r"
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


def recorded(name: str, action_id: str, index: int = 0) -> bytes:
    """What Asterisk answered to the request with ``action_id``: the response and
    its list items (events with that ActionID and no Privilege header)."""
    received = transcripts.connection(name, index).received()
    messages = Parser(role="client").feed(received)
    return b"".join(
        m.raw for m in messages if m.get("ActionID") == action_id and m.get("Privilege") is None
    )


def recorded_without_action_id(name: str, action: str) -> bytes:
    """Asterisk's answer to the one request that had no ActionID, located by
    pairing requests and responses in order."""
    conn = transcripts.connection(name)
    sent = Parser(role="server").feed(conn.sent())
    responses = [m for m in Parser(role="client").feed(conn.received()) if m.kind == "response"]
    for req, resp in zip(sent, responses, strict=False):
        if req.get("Action") == action and not req.get("ActionID"):
            return resp.raw
    raise AssertionError(f"no {action} without ActionID in {name}")


def test_normaliser_keeps_what_a_user_reads() -> None:
    raw = b"Response: Success\r\nActionID: e1\r\nCoreStartupTime: 03:19:39\r\nCoreCurrentCalls: 0\r\n\r\n"
    assert normalise(raw) == (
        b"Response: Success\r\nActionID: e1\r\nCoreStartupTime: N\r\nCoreCurrentCalls: 0\r\n\r\n"
    )
    assert normalise(b"Channel: Local/8000@internal-00000003;1\r\n") == b"Channel: Local/8000@internal-SEQ;1\r\n"
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
    recorded_lines = dict(line.split(": ", 1) for line in received.split("\r\n") if "(Priv: " in line)
    shown = [name for name in ("Command", "CoreSettings") if name in recorded_lines]
    assert shown == ["Command", "CoreSettings"]
    for name in shown:
        spec = ACTIONS[name.lower()]
        line = f"{spec.synopsis}  (Priv: {classes.perms_to_str(spec.privilege) if spec.privilege else '<none>'})"
        assert line == recorded_lines[name]


# -- e, f, j: core status, settings, ping -------------------------------------------------


def test_corestatus_matches_recording_with_and_without_actionid(pbx: PBX) -> None:
    with_id = run(pbx, "CoreStatus", ("ActionID", "e-12345"))
    without = run(pbx, "CoreStatus")
    assert normalise(with_id.wire) == normalise(recorded("e_corestatus_actionid", "e-12345"))
    assert normalise(without.wire) == normalise(recorded_without_action_id("e_corestatus_actionid", "CoreStatus"))


def test_corestatus_dates_are_the_pbx_start_in_local_time(pbx: PBX, clock: ManualClock) -> None:
    import time

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


def originate_and_wait(pbx: PBX, clock: ManualClock, *headers: tuple[str, str]) -> tuple[Answer, dict[str, str]]:
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
    assert run(pbx, "CoreShowChannels", ("ActionID", "g1")).wire == recorded("g_coreshowchannels", "g1")


def test_coreshowchannels_during_a_call_matches_recording(pbx: PBX, clock: ManualClock) -> None:
    originate_and_wait(
        pbx, clock, ("Channel", "Local/1000@internal"), ("Application", "Wait"), ("Data", "5"), ("ActionID", "g2")
    )
    answer = run(pbx, "CoreShowChannels", ("ActionID", "g3"))
    assert normalise(answer.wire) == normalise(recorded("g_coreshowchannels", "g3"))


def test_coreshowchannels_duration_counts_from_channel_creation(pbx: PBX, clock: ManualClock) -> None:
    originate_and_wait(pbx, clock, ("Channel", "Local/9999@internal"), ("Application", "Wait"), ("Data", "3700"))
    clock.advance(3665)
    durations = [dict(item)["Duration"] for item in run(pbx, "CoreShowChannels").messages[1:-1]]
    assert durations == ["01:01:05", "01:01:05"]


def test_coreshowchannels_shows_the_bridge_of_a_call(pbx: PBX, clock: ManualClock) -> None:
    pbx.register("1001")
    pbx.register("1002")
    pbx.call("1001", "1002", answer_after=1.0, talk_for=30.0)
    clock.advance(2.0)
    items = [dict(item) for item in run(pbx, "CoreShowChannels", ("ActionID", "d2-csc")).messages[1:-1]]
    assert [item["Channel"][:11] for item in items] == ["PJSIP/1002-", "PJSIP/1001-"]
    assert items[0]["BridgeId"] and items[0]["BridgeId"] == items[1]["BridgeId"]
    assert [item["Application"] for item in items] == ["AppDial", "Dial"]
