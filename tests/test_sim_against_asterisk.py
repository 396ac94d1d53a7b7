"""The simulated Asterisk against the real one, over TCP, message by message.

Every test replays what a client wrote to a real Asterisk 22.10.1
(``tests/data/transcripts``) over a raw socket to a :class:`SimulatedAsterisk`
and compares what comes back with what Asterisk sent: the same messages in the
same order, each with the same header names, order and texts, byte for byte,
after one normalisation (:class:`Normaliser`) of what differs between any two
runs of a real Asterisk too:

* ids and counters, replaced by their order of first appearance: channel name
  counters (``PJSIP/1001-00000008`` → ``PJSIP/1001-<chan0>``), Uniqueid and
  Linkedid values (``1795750432.18``), bridge UUIDs (BridgeUniqueid, BridgeId,
  BRIDGEPVTCALLID), so "the callee links to the caller" still has to hold;
* clock readings: Uptime, LastReload, Ping's Timestamp, CoreStatus dates and
  times, a contact's ExpirationTime, the MD5 Challenge;
* what the softphones chose: their SIP port (``sip:1001@127.0.0.1:51005``,
  ViaPort), their Call-ID, the contact hash made from the URI, a qualify
  round-trip time;
* values that are media statistics (RTPAUDIOQOS*), the SIP Call-ID in
  BRIDGEPVTCALLID, and millisecond durations (``*_MS``), which depend on RTP
  and scheduling.

Anything else normalised is said in the test that does it.

Time: the PBX runs on a :class:`ManualClock` that the replay moves to each
recorded step's time (``+1.503s`` in the file) before the step, so call
timings, ``Duration: 00:00:01`` and event order come from the simulator's own
model. The demos have no AMI requests: at the moment the recording shows a
softphone acting (a NOTE line), the replay calls the PBX's demo API instead.
"""

from __future__ import annotations

import hashlib
import re
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pytest

from amilab.protocol import Message, Parser
from amilab.sim.clock import ManualClock
from amilab.sim.pbx import PBX
from amilab.sim.server import SimulatedAsterisk
from amilab.sim.session import FAILED_LOGIN_DELAY
from tests import transcripts

BANNER = b"Asterisk Call Manager/11.0.0\r\n"
ADMIN_SECRET = "mysecretpassword"  #: the recordings' admin (the course's, Step 2)
#: The failed-login pause in the replays (Asterisk's 1 s is checked on its own below).
SHORT_PAUSE = 0.05
#: How long a replay waits for a message the recording says comes next.
PATIENCE = 3.0

# -- normalising ------------------------------------------------------------------------------

_CHANNEL = re.compile(r"^((?:PJSIP|Local)/\S+?)-([0-9a-f]{8})(;[12])?$")
_UNIQUEID = re.compile(r"^\d{9,}\.\d+$")
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_SIP_PORT = re.compile(r"(sip:\w+@127\.0\.0\.1):\d+")
_CLOCK_HEADERS = {
    "Uptime": "<seconds>",
    "LastReload": "<seconds>",
    "Timestamp": "<timestamp>",
    "Challenge": "<challenge>",
    "CoreStartupDate": "<date>",
    "CoreReloadDate": "<date>",
    "CoreStartupTime": "<time>",
    "CoreReloadTime": "<time>",
    "ExpirationTime": "<unix time>",
}
#: What the softphone chose: its port, its Call-ID, the contact hash made from its URI.
_PHONE_HEADERS = {"ViaPort": "<port>", "CallId": "<call-id>"}
_CONTACT_HASH = re.compile(r"^(\w+;@)[0-9a-f]{32}$")
_FREE_VARIABLES = re.compile(r"^(RTPAUDIOQOS.*|BRIDGEPVTCALLID|.*_MS)$")


class Normaliser:
    """One per side (recorded, simulated): replaces the values listed in the
    module docstring. Tokens number values in order of first appearance, so two
    streams normalise alike only if they use their ids the same way."""

    def __init__(self) -> None:
        self._tokens: dict[tuple[str, str], str] = {}
        self._counts: dict[str, int] = {}
        #: normalised channel name -> this side's real name (to translate requests).
        self.channels: dict[str, str] = {}

    def _token(self, kind: str, value: str) -> str:
        key = (kind, value)
        if key not in self._tokens:
            self._tokens[key] = f"<{kind}{self._counts.get(kind, 0)}>"
            self._counts[kind] = self._counts.get(kind, 0) + 1
        return self._tokens[key]

    def channel(self, value: str) -> str | None:
        m = _CHANNEL.match(value)
        if m is None:
            return None
        normalised = f"{m[1]}-{self._token('chan', m[2])}{m[3] or ''}"
        self.channels[normalised] = value
        return normalised

    def value(self, name: str, value: str, variable: str) -> str:
        if name in _CLOCK_HEADERS:
            return _CLOCK_HEADERS[name]
        if name in _PHONE_HEADERS:
            return _PHONE_HEADERS[name]
        if name == "Value" and _FREE_VARIABLES.match(variable):
            return "<free>"
        if name == "RoundtripUsec" and value != "0":
            return "<rtt>"
        channel = self.channel(value)
        if channel is not None:
            return channel
        if _UNIQUEID.match(value):
            return self._token("uid", value)
        if _UUID.match(value):
            return self._token("uuid", value)
        if _CONTACT_HASH.match(value):
            return _CONTACT_HASH.sub(r"\1<hash>", value)
        return _SIP_PORT.sub(r"\1:<port>", value)

    def lines(self, message: Message) -> list[bytes]:
        """The message's raw lines with their values normalised; everything else
        (names, separators, line ends) byte for byte as received."""
        variable = message.get("Variable") or ""
        out = []
        for line in message.raw.splitlines(keepends=True):
            body = line.rstrip(b"\r\n")
            end = line[len(body):]
            name, sep, value = body.decode("utf-8", "replace").partition(": ")
            if sep:
                value = self.value(name, value, variable)
            out.append(f"{name}{sep}{value}".encode() + end)
        return out


# -- the recorded side ------------------------------------------------------------------------


@dataclass
class RecordedMessage:
    step: int  # index of the RECV step that completed it
    message: Message


def recorded_messages(conn: transcripts.Connection) -> list[RecordedMessage]:
    parser = Parser(role="client")
    out = []
    for index, step in enumerate(conn.steps):
        if step.direction == "recv":
            out.extend(RecordedMessage(index, m) for m in parser.feed(step.data))
    assert parser.banner == "Asterisk Call Manager/11.0.0"
    return out


# -- the replay -------------------------------------------------------------------------------

Trigger = Callable[[PBX], object]


class Replay:
    """Replays one recorded connection against ``sim`` and keeps both sides:
    ``theirs`` (what Asterisk 22 sent) and ``ours`` (what the simulator sent).

    ``triggers`` maps a fragment of a recorded NOTE line to what the softphone
    did then, done on the simulated PBX at that moment instead."""

    def __init__(
        self,
        sim: SimulatedAsterisk,
        conn: transcripts.Connection,
        *,
        triggers: dict[str, Trigger] | None = None,
    ) -> None:
        self.sim = sim
        self.conn = conn
        self.triggers = triggers or {}
        self.recorded = recorded_messages(conn)
        self.theirs = [r.message for r in self.recorded]
        self.ours: list[Message] = []
        self.closed_by_server = False
        self.clock = sim.pbx.clock
        assert isinstance(self.clock, ManualClock)
        self.start = self.clock.monotonic()
        self._parser = Parser(role="client")
        self._their_names = Normaliser()  # learn each side's channel names as they come
        self._our_names = Normaliser()
        self._learned = 0

    def run(self) -> Replay:
        """Each SEND and each triggering NOTE, in recorded order: move the clock to
        its time, wait for what Asterisk had sent by then, do it, and after a
        SEND wait for the replies to it. Then the clock to the recording's end,
        and the rest (up to the server's close, if Asterisk closed)."""
        fired = set()
        with socket.create_connection((self.sim.host, self.sim.port), timeout=PATIENCE) as sock:
            self.sock = sock
            assert self._recv_exactly(len(BANNER)) == BANNER
            for index, step in enumerate(self.conn.steps):
                fragment = next((f for f in self.triggers if f in step.note), None)
                if step.direction == "recv" or (step.direction == "note" and fragment is None):
                    continue
                self._advance_to(step.time)
                self._wait_for(self._recorded_before(index))
                if fragment is not None:
                    fired.add(fragment)
                    self.triggers[fragment](self.sim.pbx)
                else:
                    sock.sendall(self._translate(step.data, index))
                    self._wait_for(self._answers_after(index))
            assert fired == set(self.triggers), f"never fired: {set(self.triggers) - fired}"
            self._advance_to(self.conn.steps[-1].time)
            self._wait_for(len(self.theirs), until_closed=self.conn.server_closed)
            if not self.conn.server_closed:
                self._check_still_open()
        return self

    # -- time and sync points

    def _advance_to(self, seconds: float) -> None:
        due = self.start + seconds - self.clock.monotonic()
        if due > 0:
            self.clock.advance(due)

    def _recorded_before(self, step: int) -> int:
        return sum(1 for r in self.recorded if r.step < step)

    def _answers_after(self, step: int) -> int:
        """How many messages there are up to the last reply (or list item) to the
        requests sent at ``step``: what must be in before the clock may move on.
        Events after it come from the PBX's clock, which the replay moves next."""
        steps = self.conn.steps
        limit = next((s for s in range(step + 1, len(steps)) if steps[s].direction == "send"),
                     len(steps))
        count = self._recorded_before(step)
        for n, r in enumerate(self.recorded):
            if step < r.step < limit and (r.message.kind == "response" or r.message.action_id):
                count = n + 1
        return count

    def _wait_for(self, count: int, *, until_closed: bool = False) -> None:
        """Read until ``count`` messages are in (or the server closed); give up
        after PATIENCE: the comparison then shows what is missing."""
        deadline = time.monotonic() + PATIENCE
        while (len(self.ours) < count or until_closed) and not self.closed_by_server:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                return
            if not data:
                self.closed_by_server = True
                return
            self._take(data)

    def _take(self, data: bytes) -> None:
        for message in self._parser.feed(data):
            self.ours.append(message)
            self._our_names.lines(message)

    def _recv_exactly(self, size: int) -> bytes:
        data = b""
        while len(data) < size and (chunk := self.sock.recv(size - len(data))):
            data += chunk
        self._parser.feed(data)
        return data

    def _check_still_open(self) -> None:
        """Asterisk kept this session open: so must we (a 50 ms look)."""
        self.sock.settimeout(0.05)
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            return
        if data:
            self._take(data)
        else:
            self.closed_by_server = True

    # -- what the client sends

    def _translate(self, data: bytes, step: int) -> bytes:
        """The recorded request, with what only made sense on the recording's
        Asterisk swapped for ours: a channel name the recording's client had
        learned (its counter differs here), and an MD5 Key made from the
        recorded challenge and the right secret (made from ours instead)."""
        for r in self.recorded[self._learned : self._recorded_before(step)]:
            self._their_names.lines(r.message)
        self._learned = self._recorded_before(step)
        out = []
        for line in data.splitlines(keepends=True):
            body = line.rstrip(b"\r\n")
            end = line[len(body):]
            name, sep, value = body.decode().partition(": ")
            if sep and name == "Channel":
                known = self._their_names.channel(value)
                value = self._our_names.channels.get(known, value) if known else value
            elif sep and name == "Key":
                value = self._key(value)
            out.append(f"{name}{sep}{value}".encode() + end)
        return b"".join(out)

    def _key(self, recorded_key: str) -> str:
        theirs = next(m["Challenge"] for m in self.theirs if "Challenge" in m)
        ours = next(m["Challenge"] for m in self.ours if "Challenge" in m)
        if recorded_key != _md5(theirs + ADMIN_SECRET):
            return recorded_key  # a wrong key stays wrong
        return _md5(ours + ADMIN_SECRET)

    # -- the comparison

    def assert_same(self) -> None:
        """Message by message: the same messages in the same order."""
        expected, actual = _normalised(self.theirs), _normalised(self.ours)
        for n, (want, got) in enumerate(zip(expected, actual, strict=False)):
            assert got == want, (
                f"message {n} differs\nAsterisk 22: {b''.join(want)!r}\n"
                f"simulated:   {b''.join(got)!r}"
            )
        assert len(actual) == len(expected), (
            f"Asterisk sent {len(expected)} messages, the simulator {len(actual)}; first extra: "
            f"{b''.join((expected + actual)[min(len(expected), len(actual))])!r}"
        )
        assert self.closed_by_server == self.conn.server_closed

    def assert_same_per_channel(self) -> None:
        """For sessions where Asterisk's own order between channels is a race (a
        Local channel's two halves run in two threads; device and queue states
        come from task processors): the replies and list items message by
        message in order, each channel's events (and each device's states)
        message by message in order, and nothing more or less overall."""
        expected, actual = _normalised(self.theirs), _normalised(self.ours)
        assert sorted(actual) == sorted(expected), (
            f"only from Asterisk 22: {_missing(expected, actual)}\n"
            f"only simulated: {_missing(actual, expected)}"
        )
        for key in {_source(m) for m in expected}:
            assert [m for m in actual if _source(m) == key] == [
                m for m in expected if _source(m) == key
            ], f"the order of {key} differs"
        assert self.closed_by_server == self.conn.server_closed


def _normalised(messages: Sequence[Message]) -> list[list[bytes]]:
    names = Normaliser()
    return [names.lines(m) for m in messages]


def _source(lines: list[bytes]) -> str:
    """Whose sequence a normalised message belongs to (see assert_same_per_channel)."""
    fields = dict(line.rstrip(b"\r\n").decode().partition(": ")[::2] for line in lines)
    if fields.get("ActionID") or fields.get("Response"):
        return "the replies"
    for name in ("Channel", "DestChannel", "LocalOneChannel", "Device"):
        if fields.get(name):
            return fields[name]
    return fields.get("Event", "?")


def _missing(one: list[list[bytes]], other: list[list[bytes]]) -> list[bytes]:
    rest = [b"".join(m) for m in other]
    out = []
    for message in one:
        text = b"".join(message)
        if text in rest:
            rest.remove(text)
        else:
            out.append(text)
    return out


def _md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture
def pbx():
    """The recordings' lab: endpoints 1001 and 1002 only (h, i list them)."""
    pbx = PBX(clock=ManualClock(), endpoints=("1001", "1002"))
    yield pbx
    pbx.close()


@pytest.fixture
def sim(pbx):
    with SimulatedAsterisk(pbx=pbx, failed_login_delay=SHORT_PAUSE) as server:
        yield server


def replay(
    sim: SimulatedAsterisk, name: str, index: int = 0, *, per_channel: bool = False, **options
) -> Replay:
    result = Replay(sim, transcripts.connection(name, index), **options).run()
    if per_channel:
        result.assert_same_per_channel()
    else:
        result.assert_same()
    return result


# -- Steps 4-8 and the recordings of single actions -------------------------------------------

SESSIONS = [
    ("a_banner_login_fullybooted", 0),
    ("b_login_wrong_secret", 0),
    ("b_login_wrong_secret", 1),
    ("b_login_wrong_secret", 2),
    ("c_monitor_permissions", 0),
    ("d_action_before_login", 0),
    ("e_corestatus_actionid", 0),
    ("f_coresettings", 0),
    ("h_pjsip_show", 0),
    ("i_command", 0),
    ("j_ping", 0),
    ("k_events", 0),
    ("l_unknown_action", 0),
    ("m_no_action_header", 0),
    ("n_getvar_setvar", 0),
    ("q_reload", 0),
    ("r_queuestatus", 0),
    ("t_challenge_md5", 0),
    ("t_challenge_md5", 1),
    ("t_challenge_md5", 2),
    ("u_logoff", 0),
    ("u_logoff", 1),
    ("v_lf_only", 0),
]


@pytest.mark.parametrize(("name", "index"), SESSIONS)
def test_recorded_session_replays_like_asterisk_22(sim, name, index):
    replay(sim, name, index)


@pytest.mark.parametrize(
    "name",
    [
        "g_coreshowchannels",
        "o_originate_events",
        "p_hangup",
    ],
)
def test_originated_local_channels_replay_like_asterisk_22_channel_by_channel(sim, name):
    replay(sim, name, per_channel=True)


# -- Step 7's demos: the softphones' actions through the PBX's demo API ------------------------


def test_demo1_registration_events_match_asterisk_22(sim):
    replay(
        sim,
        "demo1_registration",
        triggers={
            "REGISTER (Expires: 300) final status 200": lambda pbx: pbx.register("1001"),
            "REGISTER (Expires: 0) final status 200": lambda pbx: pbx.unregister("1001"),
        },
    )


def test_demo1_registration_with_qualify_events_match_asterisk_22(sim):
    replay(
        sim,
        "demo1_registration_qualify",
        triggers={
            "REGISTER (Expires: 300) final status 200": lambda pbx: pbx.register(
                "1001", qualify=True
            ),
            "REGISTER (Expires: 0) final status 200": lambda pbx: pbx.unregister("1001"),
        },
    )


def test_demo2_call_events_and_coreshowchannels_match_asterisk_22(sim, pbx):
    """1001 calls 1002 at the recorded moment; 1002 answers when its phone sent
    200 OK and hangs up when it sent BYE; CoreShowChannels in between."""
    pbx.register("1001")  # both phones registered before the AMI session, as recorded
    pbx.register("1002")
    calls = []
    replay(
        sim,
        "demo2_call_1001_to_1002",
        triggers={
            "softphone 1001 now calls 1002": lambda pbx: calls.append(
                pbx.call("1001", "1002", answer_after=None, talk_for=None)
            ),
            "softphone 1002 sends to 127.0.0.1:5060: SIP/2.0 200 OK   [CSeq 31322": lambda pbx: (
                calls[0].answer()
            ),
            "softphone 1002 sends to 127.0.0.1:5060: BYE": lambda pbx: calls[0].hangup("callee"),
        },
    )
    assert calls[0].done


def test_demo3_echo_test_events_match_asterisk_22(sim, pbx):
    pbx.register("1001")
    calls = []
    replay(
        sim,
        "demo3_echo_test",
        triggers={
            "softphone 1001 now calls 9999": lambda pbx: calls.append(
                pbx.echo_test("1001", duration=None)
            ),
            "softphone 1001 sends to 127.0.0.1:5060: BYE": lambda pbx: calls[0].hangup(),
        },
    )
    assert calls[0].done


def test_dtmf_in_the_echo_test_matches_asterisk_22(sim, pbx):
    pbx.register("1001")
    pbx.register("1002")
    calls = []
    replay(
        sim,
        "demo2_dtmf",
        1,
        triggers={
            "softphone 1001 now calls 9999": lambda pbx: calls.append(
                pbx.echo_test("1001", duration=None)
            ),
            "sends DTMF '5'": lambda pbx: pbx.send_dtmf("1001", "5", duration_ms=160),
            "softphone 1001 sends to 127.0.0.1:5060: BYE": lambda pbx: calls[0].hangup(),
        },
    )


def test_listcommands_lines_are_asterisks_own_for_every_simulated_action(sim):
    """s keeps only the first 30 lines of the reply (Asterisk 22 has 129 actions;
    the simulator has fewer). So: everything before it message by message, and
    the reply's lines for actions in that range equal to the recorded ones, in
    the recorded order; none invented in between."""
    conn = transcripts.connection("s_listcommands")
    result = Replay(sim, conn).run()
    recorded_lines = conn.received().split(b"\r\n")[:-1]  # the last line ends in CRLF too
    theirs = recorded_lines[recorded_lines.index(b"ActionID: s1") - 1 :]
    assert len(theirs) == 30
    ours = result.ours[-1].raw.split(b"\r\n")
    assert ours[:2] == theirs[:2] == [b"Response: Success", b"ActionID: s1"]
    last = theirs[-1].split(b":")[0]
    in_range = [line for line in ours[2:] if line and line.split(b":")[0].lower() <= last.lower()]
    assert in_range == [line for line in theirs[2:] if line in in_range]
    assert {b"Challenge", b"Command", b"CoreSettings"} <= {line.split(b":")[0] for line in in_range}
    assert _normalised(result.ours[:-1]) == _normalised(result.theirs)


def test_failed_login_waits_one_second_then_answers_and_closes(pbx):
    """The real pause, as in b: nothing for a second, then the error, then EOF."""
    conn = transcripts.connection("b_login_wrong_secret")
    with SimulatedAsterisk(pbx=pbx) as sim:
        assert FAILED_LOGIN_DELAY == 1.0
        with socket.create_connection((sim.host, sim.port), timeout=5) as sock:
            assert sock.recv(100) == BANNER
            sock.sendall(conn.sent())
            started = time.monotonic()
            answer = sock.recv(4096)
            waited = time.monotonic() - started
            while chunk := sock.recv(4096):
                answer += chunk
        assert waited >= 0.9
        assert answer == conn.received()[len(BANNER):]


# -- Steps 4-8 typed with nc --------------------------------------------------------------------


class Nc:
    """A terminal running ``nc``: the course's text with LF line ends, messages back."""

    def __init__(self, sim: SimulatedAsterisk) -> None:
        self.sock = socket.create_connection((sim.host, sim.port), timeout=PATIENCE)
        self.parser = Parser(role="client")
        self.pending: list[Message] = []
        self.banner = self.sock.recv(len(BANNER))
        self.parser.feed(self.banner)

    def type(self, text: str) -> None:
        self.sock.sendall(text.encode())

    def read(self, count: int) -> list[Message]:
        while len(self.pending) < count:
            data = self.sock.recv(65536)
            assert data, f"the server closed the connection; got {self.pending!r}"
            self.pending.extend(self.parser.feed(data))
        out, self.pending = self.pending[:count], self.pending[count:]
        return out

    def read_to_end(self) -> bytes:
        data = b""
        while chunk := self.sock.recv(65536):
            data += chunk
        return data


def recorded(name: str) -> list[Message]:
    """Every message Asterisk 22 sent in a recording's first connection."""
    return [r.message for r in recorded_messages(transcripts.connection(name))]


def recorded_reply(name: str, action_id: str) -> list[Message]:
    """What Asterisk 22 answered to the request with ``action_id`` in a recording,
    without the ActionID line (the course types its requests without one)."""
    return [
        Message([(k, v) for k, v in m.headers if k != "ActionID"], _without_action_id(m.raw))
        for m in recorded(name)
        if m.action_id == action_id
    ]


def _without_action_id(raw: bytes) -> bytes:
    lines = raw.splitlines(keepends=True)
    return b"".join(line for line in lines if not line.startswith(b"ActionID: "))


def assert_same_messages(ours: Sequence[Message], theirs: Sequence[Message]) -> None:
    assert _normalised(ours) == _normalised(theirs)


def test_course_steps_4_to_8_typed_with_nc_get_asterisk_22s_answers(sim, pbx):
    """The guide's text verbatim, with LF line ends, one nc session: every reply
    as the recordings show Asterisk 22 answering the same request (recorded with
    an ActionID, removed before comparing), events interleaved with replies."""
    nc = Nc(sim)
    assert nc.banner == b"Asterisk Call Manager/11.0.0\r\n"  # Step 4

    nc.type("Action: Login\nUsername: admin\nSecret: mysecretpassword\n\n")  # Step 5
    login = nc.read(2)
    assert [m.name for m in login] == ["Success", "FullyBooted"]
    assert_same_messages(login, recorded("a_banner_login_fullybooted"))

    nc.type("Action: CoreStatus\n\n")  # Step 6
    assert_same_messages(nc.read(1), recorded_reply("e_corestatus_actionid", "e-12345"))
    nc.type("Action: CoreSettings\n\n")
    assert_same_messages(nc.read(1), recorded_reply("f_coresettings", "f1"))
    nc.type("Action: CoreShowChannels\n\n")
    assert_same_messages(nc.read(2), recorded_reply("g_coreshowchannels", "g1"))
    nc.type("Action: PJSIPShowEndpoints\n\n")
    assert_same_messages(nc.read(4), recorded_reply("h_pjsip_show", "h1"))
    nc.type("Action: CoreStatus\nActionID: my-request-123\n\n")  # Using ActionID
    (status,) = nc.read(1)
    assert status.headers[:2] == [("Response", "Success"), ("ActionID", "my-request-123")]
    assert_same_messages(
        [Message(status.headers, _without_action_id(status.raw))],
        recorded_reply("e_corestatus_actionid", "e-12345"),
    )

    for mask, action_id in (("on", "k2"), ("off", "k1"), ("system,call", "k3")):  # Step 7
        nc.type(f"Action: Events\nEventMask: {mask}\n\n")
        assert_same_messages(nc.read(1), recorded_reply("k_events", action_id))
    pbx.register("1001")  # Demo 1: a softphone registers as 1001
    pbx.register("1002")
    registration = [m.name for m in nc.read(6)]
    assert registration == ["PeerStatus", "ContactStatus", "DeviceStateChange"] * 2
    pbx.call("1001", "1002", answer_after=1.05, talk_for=2.0, hangup_by="callee")  # Demo 2
    pbx.clock.advance(5)
    # EventMask system,call: demo2's events minus the dialplan class (Newexten, VarSet).
    demo2 = [
        m
        for m in recorded("demo2_call_1001_to_1002")
        if m.action_id is None
        and m.get("Privilege") in ("call,all", "system,all")
        and m.name != "FullyBooted"
    ]
    assert_same_messages(nc.read(len(demo2)), demo2)

    assert nc.pending == []
    nc.type("Action: Logoff\n\n")  # Step 8
    assert nc.read_to_end() == b"Response: Goodbye\r\nMessage: Thanks for all the fish.\r\n\r\n"


def test_pjsip_lists_with_a_registered_phone_match_asterisk_22(sim):
    """Per channel: DeviceStateChange comes before ContactStatus here and after
    it in demo1 (Asterisk's device-state task processor races the registrar)."""
    replay(
        sim,
        "h2_pjsip_with_registered_contact",
        per_channel=True,
        triggers={
            "starting sip_register.py register 1001 1001pass 300": lambda pbx: pbx.register(
                "1001"
            ),
            "starting sip_register.py register 1001 1001pass 0": lambda pbx: pbx.unregister(
                "1001"
            ),
        },
    )
