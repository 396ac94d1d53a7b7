"""One simulated AMI session, byte for byte against real Asterisk 22.

The session runs here without sockets: a FakeHost collects what it writes and
runs its timers on a manual clock, so the 1 s failed-login pause and the 30 s
authtimeout cost nothing. Where a recording exists, the session gets the
recorded client bytes and must answer with the recorded server bytes (times,
uptimes and challenges normalised).
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from amilab.protocol import Message, Parser
from amilab.sim import classes
from amilab.sim.actions import ActionCall, ActionSpec
from amilab.sim.clock import ManualClock
from amilab.sim.config import DEFAULT_MANAGER_CONF, parse_manager_conf
from amilab.sim.session import BANNER, Session, event_mask_from_text, render_event
from tests import transcripts

# -- fakes --------------------------------------------------------------------------


@dataclass(frozen=True)
class FakeEvent:
    name: str
    privilege: int
    body: tuple[tuple[str, str], ...]


class FakePBX:
    """The few things the manager half asks of a PBX."""

    def __init__(self) -> None:
        self.clock = ManualClock()
        self.listeners: list[Callable[[FakeEvent], None]] = []

    def subscribe(self, listener):
        self.listeners.append(listener)
        return lambda: self.listeners.remove(listener)

    def emit(self, name: str, privilege: int, *body: tuple[str, str]) -> None:
        for listener in list(self.listeners):
            listener(FakeEvent(name, privilege, body))

    def uptime_seconds(self) -> int:
        return 4

    def last_reload_seconds(self) -> int:
        return 4

    def close(self) -> None:
        self.listeners.clear()


def _with_id(call: ActionCall, *pairs: tuple[str, str], response: str = "Success"):
    head = [("Response", response)]
    if call.request.get("ActionID"):
        head.append(("ActionID", call.request["ActionID"]))
    return [*head, *pairs]


def _ping(call: ActionCall) -> None:
    call.reply([_with_id(call, ("Ping", "Pong"), ("Timestamp", "1795749616.761346"))])


def _corestatus(call: ActionCall) -> None:
    call.reply([_with_id(call, ("CoreCurrentCalls", "0"))])


def _emit_then_reply(call: ActionCall) -> None:
    """Like Reload: events raised while the action runs come after its reply."""
    call.pbx.emit("Reload", classes.SYSTEM, ("Module", "All"), ("Status", "0"))
    call.reply([_with_id(call, ("Message", "Module Reloaded"))])


PARKED: list[ActionCall] = []


def _park(call: ActionCall) -> None:
    """Like a synchronous Originate: the answer comes later, from elsewhere."""
    PARKED.append(call)


@pytest.fixture
def parked() -> Iterator[list[ActionCall]]:
    """The calls ``_park`` holds, emptied after the test: each holds its session."""
    PARKED.clear()
    yield PARKED
    PARKED.clear()


def _explode(call: ActionCall) -> None:
    raise RuntimeError("bug in a handler")


FAKE_ACTIONS = {
    spec.name.lower(): spec
    for spec in (
        ActionSpec("Ping", 0, "Keepalive command.", _ping),
        ActionSpec(
            "CoreStatus",
            classes.SYSTEM | classes.REPORTING,
            "Show PBX core status variables.",
            _corestatus,
        ),
        ActionSpec("Originate", classes.ORIGINATE, "Originate a call.", _park),
        ActionSpec("Command", classes.COMMAND, "Execute Asterisk CLI Command.", _ping),
        ActionSpec(
            "Reload", classes.CONFIG | classes.SYSTEM, "Send a reload event.", _emit_then_reply
        ),
        ActionSpec("Explode", 0, "Fails.", _explode),
    )
}


class FakeManagerView:
    def run_cli(self, line: str) -> str | None:
        return None

    def reload(self) -> str:
        return ""


class FakeHost:
    """A SessionHost with a manual clock; delivers PBX events straight away."""

    def __init__(self, config: str = DEFAULT_MANAGER_CONF, *, others: tuple[str, ...] = ()) -> None:
        self.config = parse_manager_conf(config)
        self.pbx = FakePBX()
        self.actions = FAKE_ACTIONS
        self.manager = FakeManagerView()
        self.failed_login_delay = 1.0
        self.out = bytearray()
        self.closed = False
        self.now = 0.0
        self.timers: list[tuple[float, Callable[[], None]]] = []
        self.soon: list[Callable[[], None]] = []
        self.others = {name.lower() for name in others}
        self.session: Session | None = None
        self.pbx.subscribe(self._deliver)

    def _deliver(self, event: FakeEvent) -> None:
        if self.session is not None:
            self.session.deliver(render_event(event.name, event.privilege, event.body, None))

    def send(self, session, data: bytes) -> None:
        assert not self.closed, "wrote after close"
        self.out += data

    def close(self, session) -> None:
        self.closed = True

    def call_later(self, delay, callback):
        self.timers.append((self.now + delay, callback))
        return lambda: None

    def call_soon_threadsafe(self, callback) -> None:
        self.soon.append(callback)

    def logged_in(self, username: str) -> bool:
        return username.lower() in self.others

    def authenticated(self, session) -> None:
        self.others.add(session.username.lower())

    def advance(self, seconds: float) -> None:
        self.run_soon()
        self.now += seconds
        due = [t for t in self.timers if t[0] <= self.now]
        self.timers = [t for t in self.timers if t[0] > self.now]
        for _, callback in sorted(due, key=lambda t: t[0]):
            callback()

    def run_soon(self) -> None:
        """Run what was handed to the loop, as the server's loop would."""
        while self.soon:
            self.soon.pop(0)()

    def take(self, *, run_soon: bool = True) -> bytes:
        """What the session wrote, after letting the loop catch up."""
        if run_soon:
            self.run_soon()
        data, self.out = bytes(self.out), bytearray()
        return data


def new_session(
    config: str = DEFAULT_MANAGER_CONF, address: str = "127.0.0.1", **kw
) -> tuple[FakeHost, Session]:
    host = FakeHost(config, **kw)
    session = Session(host, address)
    host.session = session
    session.start()
    assert host.take() == BANNER
    return host, session


def login(
    host: FakeHost, session: Session, user="admin", secret="mysecretpassword", extra=""
) -> bytes:
    session.feed(f"Action: Login\r\nUsername: {user}\r\nSecret: {secret}\r\n{extra}\r\n".encode())
    host.advance(1.0)
    return host.take()


def messages(data: bytes) -> list[Message]:
    parser = Parser(role="client")
    parser.feed(BANNER)
    return parser.feed(data)


_VOLATILE = re.compile(rb"^(Uptime|LastReload|Timestamp|Challenge): [0-9.]+\r$", re.M)


def normalise(data: bytes) -> bytes:
    return _VOLATILE.sub(rb"\1: N\r", data)


def replay(
    name: str, index: int = 0, host: FakeHost | None = None
) -> tuple[bytes, bytes, FakeHost]:
    """Feed a recording's client bytes; return (what we sent, what Asterisk sent)."""
    conn = transcripts.connection(name, index)
    if host is None:
        host = FakeHost()
    session = Session(host, "127.0.0.1")
    host.session = session
    session.start()
    for step in conn.steps:
        if step.direction == "send":
            session.feed(step.data)
            host.advance(1.0)
    if conn.server_closed:
        host.advance(60.0)
    return normalise(host.take()), normalise(conn.received()), host


# -- the recordings ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "index"),
    [
        ("a_banner_login_fullybooted", 0),
        ("b_login_wrong_secret", 0),
        ("b_login_wrong_secret", 1),
        ("b_login_wrong_secret", 2),
        ("c_monitor_permissions", 0),
        ("d_action_before_login", 0),
        ("j_ping", 0),
        ("k_events", 0),
        ("l_unknown_action", 0),
        ("m_no_action_header", 0),
        ("u_logoff", 0),
        ("u_logoff", 1),
        ("v_lf_only", 0),
        ("z_auth_timeout", 0),
    ],
)
def test_session_answers_byte_for_byte_like_asterisk_22(name, index):
    ours, theirs, host = replay(name, index)
    assert ours == theirs
    assert host.closed == transcripts.connection(name, index).server_closed


def test_banner_is_one_line_and_nothing_follows_until_the_client_speaks():
    host = FakeHost()
    session = Session(host, "127.0.0.1")
    session.start()
    host.advance(5.0)
    assert host.take() == b"Asterisk Call Manager/11.0.0\r\n"


# -- login -----------------------------------------------------------------------------


def test_failed_login_waits_one_second_then_answers_and_closes():
    host, session = new_session()
    session.feed(b"Action: Login\r\nUsername: admin\r\nSecret: wrong\r\nActionID: x\r\n\r\n")
    host.advance(0.99)
    assert host.take() == b"" and not host.closed
    host.advance(0.01)
    assert (
        host.take() == b"Response: Error\r\nActionID: x\r\nMessage: Authentication failed\r\n\r\n"
    )
    assert host.closed


@pytest.mark.parametrize(
    ("login_lines", "address"),
    [
        ("Username: admin\r\nSecret: wrong", "127.0.0.1"),
        ("Username: nosuchuser\r\nSecret: x", "127.0.0.1"),
        ("Secret: mysecretpassword", "127.0.0.1"),
        (
            "Username: admin\r\nSecret: mysecretpassword",
            "8.8.8.8",
        ),  # ACL: deny all but private nets
        ("Username: admin\r\nAuthType: MD5\r\nKey: 0123", "127.0.0.1"),  # MD5 without Challenge
        ("Username: admin\r\nSecret: mysecretpassword ", "127.0.0.1"),  # trailing space is kept
        ("Username: admin\r\nSecret: MySecretPassword", "127.0.0.1"),  # case-sensitive
    ],
)
def test_every_login_failure_gets_the_same_answer(login_lines, address):
    host, session = new_session(address=address)
    session.feed(f"Action: Login\r\n{login_lines}\r\n\r\n".encode())
    host.advance(1.0)
    assert host.take() == b"Response: Error\r\nMessage: Authentication failed\r\n\r\n"
    assert host.closed


def test_username_is_case_insensitive_and_acl_allows_loopback():
    host, session = new_session()
    assert b"Authentication accepted" in login(host, session, user="ADMIN")


def test_requests_after_a_failed_login_are_not_answered():
    host, session = new_session()
    session.feed(b"Action: Login\r\nUsername: admin\r\nSecret: no\r\n\r\nAction: Logoff\r\n\r\n")
    host.advance(1.0)
    assert host.take() == b"Response: Error\r\nMessage: Authentication failed\r\n\r\n"


def test_login_twice_is_already_authenticated():
    host, session = new_session()
    login(host, session)
    session.feed(b"Action: Login\r\nUsername: admin\r\nSecret: x\r\nActionID: 2\r\n\r\n")
    assert (
        host.take() == b"Response: Success\r\nActionID: 2\r\nMessage: Already authenticated\r\n\r\n"
    )


def test_fullybooted_needs_system_in_the_read_classes():
    host, session = new_session("[general]\nenabled=yes\n[u]\nsecret = s\nread = call\n")
    assert (
        login(host, session, "u", "s")
        == b"Response: Success\r\nMessage: Authentication accepted\r\n\r\n"
    )


def test_login_with_events_off_gets_no_fullybooted():
    host, session = new_session()
    reply = login(host, session, extra="Events: off\r\n")
    assert reply == b"Response: Success\r\nMessage: Authentication accepted\r\n\r\n"
    assert session.event_mask == 0


def test_challenge_and_md5_login():
    host, session = new_session()
    session.feed(b"Action: Challenge\r\nAuthType: md5\r\nActionID: t1\r\n\r\n")
    reply = host.take()
    challenge = re.search(rb"Challenge: (\d+)\r\n", reply)[1].decode()
    assert re.fullmatch(rb"Response: Success\r\nActionID: t1\r\nChallenge: \d{1,9}\r\n\r\n", reply)
    session.feed(b"Action: Challenge\r\nAuthType: MD5\r\n\r\n")
    assert f"Challenge: {challenge}\r\n".encode() in host.take()  # reused within the session
    key = hashlib.md5((challenge + "mysecretpassword").encode()).hexdigest()
    session.feed(
        f"Action: Login\r\nAuthType: MD5\r\nUsername: admin\r\nKey: {key}\r\n\r\n".encode()
    )
    assert host.take().startswith(b"Response: Success\r\nMessage: Authentication accepted\r\n\r\n")


def test_md5_key_in_uppercase_fails():
    host, session = new_session()
    session.feed(b"Action: Challenge\r\nAuthType: MD5\r\n\r\n")
    challenge = re.search(rb"Challenge: (\d+)", host.take())[1].decode()
    key = hashlib.md5((challenge + "mysecretpassword").encode()).hexdigest().upper()
    session.feed(
        f"Action: Login\r\nAuthType: MD5\r\nUsername: admin\r\nKey: {key}\r\n\r\n".encode()
    )
    host.advance(1.0)
    assert b"Authentication failed" in host.take() and host.closed


def test_challenge_without_md5_must_specify_authtype():
    ours, theirs, _ = replay("t_challenge_md5", 2)
    assert (
        ours
        == theirs
        == normalise(
            b"Asterisk Call Manager/11.0.0\r\nResponse: Error\r\nActionID: t3\r\nMessage: Must specify AuthType\r\n\r\n"
        )
    )


def test_second_login_of_a_single_login_user_is_login_already_in_use():
    config = "[general]\nenabled = yes\n[u]\nsecret = s\nallowmultiplelogin = no\n"
    host, session = new_session(config, others=("U",))
    session.feed(b"Action: Login\r\nUsername: u\r\nSecret: s\r\nActionID: 9\r\n\r\n")
    host.advance(0.5)
    assert host.take() == b""
    host.advance(0.5)
    assert host.take() == b"Response: Error\r\nActionID: 9\r\nMessage: Login Already In Use\r\n\r\n"
    assert host.closed


def test_users_may_log_in_many_times_by_default():
    host, session = new_session(others=("admin",))
    assert b"Authentication accepted" in login(host, session)


def test_authtimeout_closes_silently():
    host, session = new_session("[general]\nenabled = yes\nauthtimeout = 5\n[u]\nsecret = s\n")
    host.advance(4.9)
    assert not host.closed
    host.advance(0.2)
    assert host.closed and host.take() == b""


def test_authtimeout_spares_a_logged_in_session():
    host, session = new_session()
    login(host, session)
    host.advance(60)
    assert not host.closed


# -- framing and errors -------------------------------------------------------------------


def test_line_too_long_is_an_error_and_the_session_survives():
    host, session = new_session()
    login(host, session)
    session.feed(b"Action: Ping\r\nActionID: long\r\nX-Junk: " + b"x" * 2000 + b"\r\n\r\n")
    assert (
        host.take()
        == b"Response: Error\r\nActionID: long\r\nMessage: Failed to parse message: line too long\r\n\r\n"
    )
    session.feed(b"Action: Ping\r\n\r\n")
    assert host.take().startswith(b"Response: Success\r\nPing: Pong\r\n")


def test_too_many_lines_is_an_error():
    host, session = new_session()
    login(host, session)
    session.feed(b"Action: Ping\r\n" + b"X: y\r\n" * 200 + b"\r\n")
    assert (
        host.take()
        == b"Response: Error\r\nMessage: Too many lines in message or allocation failure\r\n\r\n"
    )


def test_action_is_the_first_non_empty_and_other_headers_the_first():
    host, session = new_session()
    login(host, session)
    session.feed(
        b"action:\r\nACTION: ping\r\nActionID: first\r\nActionID: second\r\nAction: Logoff\r\n\r\n"
    )
    assert host.take().startswith(b"Response: Success\r\nActionID: first\r\nPing: Pong\r\n")


def test_header_name_must_touch_its_colon():
    host, session = new_session()
    login(host, session)
    session.feed(b"Action : Ping\r\n\r\n")
    assert host.take() == b"Response: Error\r\nMessage: Missing action in request\r\n\r\n"


def test_unknown_action_before_login_is_permission_denied():
    host, session = new_session()
    session.feed(b"Action: NoSuchThing\r\n\r\n")
    assert host.take() == b"Response: Error\r\nMessage: Permission denied\r\n\r\n"


def test_unknown_action_text_is_cut_at_511_characters():
    host, session = new_session()
    login(host, session)
    session.feed(b"Action: " + b"F" * 1000 + b"\r\n\r\n")
    (reply,) = messages(host.take())
    assert len(reply["Message"]) == 511
    assert reply["Message"].startswith("Invalid/unknown command: FFF")


def test_logoff_before_login_says_goodbye_and_closes():
    host, session = new_session()
    session.feed(b"Action: Logoff\r\n\r\n")
    assert host.take() == b"Response: Goodbye\r\nMessage: Thanks for all the fish.\r\n\r\n"
    assert host.closed


def test_a_handler_that_fails_still_answers():
    host, session = new_session()
    login(host, session)
    session.feed(b"Action: Explode\r\nActionID: e\r\n\r\n")
    (reply,) = messages(host.take())
    assert reply["Response"] == "Error" and reply["ActionID"] == "e"
    assert "Explode" in reply["Message"]
    session.feed(b"Action: Ping\r\n\r\n")
    assert b"Pong" in host.take()


# -- permissions (transcript c) ----------------------------------------------------------------


def test_monitor_may_ping_but_not_corestatus_originate_or_command():
    host, session = new_session()
    login(host, session, "monitor", "monitor-password")
    for action in ("CoreStatus", "Originate", "Command", "Filter", "Reload"):
        session.feed(f"Action: {action}\r\n\r\n".encode())
        assert host.take() == b"Response: Error\r\nMessage: Permission denied\r\n\r\n", action
    session.feed(b"Action: Ping\r\n\r\n")
    assert b"Ping: Pong" in host.take()


def test_any_shared_write_class_is_enough():
    host, session = new_session("[general]\nenabled=yes\n[r]\nsecret = s\nwrite = reporting\n")
    login(host, session, "r", "s")
    session.feed(b"Action: CoreStatus\r\n\r\n")
    assert host.take().startswith(b"Response: Success")


# -- events ----------------------------------------------------------------------------------


def call_event(host: FakeHost, name="Newchannel") -> None:
    host.pbx.emit(name, classes.CALL, ("Channel", "PJSIP/1001-00000001"), ("Exten", "1002"))


def test_events_carry_privilege_and_follow_the_read_classes():
    host, session = new_session()
    login(host, session, "monitor", "monitor-password")
    call_event(host)
    assert host.take() == (
        b"Event: Newchannel\r\nPrivilege: call,all\r\nChannel: PJSIP/1001-00000001\r\nExten: 1002\r\n\r\n"
    )
    host.pbx.emit("DTMFBegin", classes.DTMF, ("Digit", "1"))
    host.pbx.emit("Newexten", classes.DIALPLAN, ("Exten", "1"))
    assert host.take() == b""  # monitor reads system, call, reporting only


def test_an_event_needs_all_of_its_classes():
    host, session = new_session("[general]\nenabled=yes\n[u]\nsecret=s\nread=call\n")
    login(host, session, "u", "s")
    host.pbx.emit("Both", classes.CALL | classes.SYSTEM, ("A", "b"))
    assert host.take() == b""
    host.pbx.emit("Call", classes.CALL, ("A", "b"))
    assert host.take().startswith(b"Event: Call\r\n")


def test_no_events_before_login():
    host, session = new_session()
    call_event(host)
    assert host.take() == b""


def test_timestamp_comes_after_privilege():
    event = render_event("Hangup", classes.CALL, (("Cause", "16"),), 1795749616.0615)
    assert (
        event.data
        == b"Event: Hangup\r\nPrivilege: call,all\r\nTimestamp: 1795749616.061500\r\nCause: 16\r\n\r\n"
    )


def test_events_off_then_on_then_classes():
    host, session = new_session()
    login(host, session)
    session.feed(b"Action: Events\r\nEventMask: off\r\n\r\n")
    assert host.take() == b"Response: Success\r\nEvents: Off\r\n\r\n"
    call_event(host)
    assert host.take() == b""
    session.feed(b"Action: Events\r\nEventMask: system\r\n\r\n")
    assert host.take() == b"Response: Success\r\nEvents: On\r\n\r\n"
    call_event(host)
    assert host.take() == b""
    session.feed(b"Action: Events\r\nEventMask: on\r\n\r\n")
    host.take()
    call_event(host)
    assert host.take().startswith(b"Event: Newchannel")


@pytest.mark.parametrize(
    ("mask", "expected"),
    [
        ("1", classes.SYSTEM),
        ("6", classes.CALL | classes.LOG),
        ("0", 0),
        ("OFF", 0),
        ("True", classes.ALL),
        ("system,call", classes.SYSTEM | classes.CALL),
        ("system, call", classes.SYSTEM),
        ("bogus", 0),
        ("", -1),
        ("4294967295", -1),  # C atoi wraps: Asterisk answers Invalid event mask
    ],
)
def test_event_mask_text_reads_like_strings_to_mask(mask, expected):
    assert event_mask_from_text(mask) == expected


def test_numeric_event_mask_1_means_system_only():
    host, session = new_session()
    login(host, session)
    session.feed(b"Action: Events\r\nEventMask: 1\r\n\r\n")
    assert host.take() == b"Response: Success\r\nEvents: On\r\n\r\n"
    call_event(host)
    assert host.take() == b""


def test_filter_action_include_and_exclude():
    host, session = new_session()
    login(host, session)
    session.feed(b"Action: Filter\r\nOperation: Add\r\nFilter: Event: New\r\nActionID: f\r\n\r\n")
    assert host.take() == b"Response: Success\r\nActionID: f\r\nMessage: Success\r\n\r\n"
    call_event(host, "Hangup")
    assert host.take() == b""
    session.feed(
        b"Action: Filter\r\nOperation: add\r\nMatchCriteria: name(Newchannel),header(Exten),method(exact)\r\n"
        b"Filter: !1002\r\n\r\n"
    )
    host.take()
    call_event(host, "Newchannel")
    call_event(host, "Newstate")
    assert [m.name for m in messages(host.take())] == ["Newstate"]


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ("Operation: Remove\r\nFilter: x", "Unknown operation"),
        (
            "Operation: Add\r\nFilter: Event: (",
            "Filter did not compile.  Check the syntax of the filter given.",
        ),
        (
            "Operation: Add\r\nFilter: x\r\nMatchCriteria: method(startsWith)",
            "Filter was formatted incorrectly.  Check the syntax of the filter given.",
        ),
        (
            "Operation: Add",
            "Filter was formatted incorrectly.  Check the syntax of the filter given.",
        ),
    ],
)
def test_filter_action_errors(headers, message):
    host, session = new_session()
    login(host, session)
    session.feed(f"Action: Filter\r\n{headers}\r\n\r\n".encode())
    assert host.take() == f"Response: Error\r\nMessage: {message}\r\n\r\n".encode()


def test_user_eventfilter_applies_from_login():
    config = "[general]\nenabled=yes\n[u]\nsecret=s\nread=call\neventfilter = !Exten: 1002\n"
    host, session = new_session(config)
    login(host, session, "u", "s")
    call_event(host)
    assert host.take() == b""


def test_events_raised_during_an_action_follow_its_reply():
    host, session = new_session()
    login(host, session)
    session.feed(b"Action: Reload\r\nActionID: q1\r\n\r\n")
    assert [m.name for m in messages(host.take())] == ["Success", "Reload"]


def test_a_late_reply_comes_through_the_loop_and_events_wait_for_it(parked):
    host, session = new_session()
    login(host, session)
    session.feed(b"Action: Originate\r\nActionID: o1\r\n\r\nAction: Ping\r\nActionID: p1\r\n\r\n")
    assert not session.accepting_input
    call_event(host)
    assert host.take() == b""  # held: the Originate has not answered yet
    (call,) = parked
    worker = threading.Thread(
        target=lambda: call.reply([_with_id(call, ("Message", "Originate successfully queued"))])
    )
    worker.start()
    worker.join()
    assert host.take(run_soon=False) == b""  # the answer waits for the loop thread
    host.run_soon()
    replies = messages(host.take())
    assert [(m.name, m.action_id) for m in replies] == [
        ("Success", "o1"),
        ("Newchannel", None),
        ("Success", "p1"),
    ]
    assert session.accepting_input


def test_a_second_reply_is_ignored(parked):
    host, session = new_session()
    login(host, session)
    session.feed(b"Action: Originate\r\n\r\n")
    (call,) = parked
    host.session = None
    call.reply([[("Response", "Success")]])
    call.reply([[("Response", "Error")]])
    host.run_soon()
    assert host.take() == b"Response: Success\r\n\r\n"


def test_end_of_input_finishes_pending_requests_then_closes():
    host, session = new_session()
    session.feed(
        b"Action: Login\r\nUsername: admin\r\nSecret: mysecretpassword\r\n\r\nAction: Ping\r\n\r\n"
    )
    session.end_of_input()
    data = host.take()
    assert b"Authentication accepted" in data and b"Ping: Pong" in data
    assert host.closed


# -- ListCommands ---------------------------------------------------------------------------


def test_listcommands_format_matches_asterisk():
    host, session = new_session()
    login(host, session)
    session.feed(b"Action: ListCommands\r\nActionID: s1\r\n\r\n")
    data = host.take()
    recorded = transcripts.connection("s_listcommands").received()
    challenge_line = b"Challenge: Generate Challenge for MD5 Auth.  (Priv: <none>)\r\n"
    assert challenge_line in recorded and challenge_line in data
    assert data.startswith(b"Response: Success\r\nActionID: s1\r\n")
    (reply,) = messages(data)
    names = [name for name, _ in reply.headers[2:]]
    assert names == sorted(names, key=str.lower)
    assert "Explode" in names and "Login" in names and "Filter" in names
    assert reply["Command"] == "Execute Asterisk CLI Command.  (Priv: command,all)"
    assert reply["CoreStatus"].endswith("(Priv: system,reporting,all)")


def test_listcommands_shows_only_what_the_user_may_run():
    host, session = new_session()
    login(host, session, "monitor", "monitor-password")
    session.feed(b"Action: ListCommands\r\n\r\n")
    (reply,) = messages(host.take())
    names = [name for name, _ in reply.headers[1:]]
    assert names == ["Challenge", "Events", "Explode", "ListCommands", "Login", "Logoff", "Ping"]
