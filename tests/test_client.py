"""AMIClient against real Asterisk 22 bytes, replayed by tests/scripted_server.py."""

from __future__ import annotations

import contextlib
import io
import logging
import socket
import threading
import time
from pathlib import Path

import pytest

from amilab import (
    ActionTimeout,
    AMIClient,
    AMIError,
    AuthenticationError,
    ConnectionLost,
    PermissionDenied,
    ProtocolError,
)
from amilab import client as client_module
from amilab.protocol import MASK, Message, Parser
from tests import transcripts
from tests.scripted_server import Script, ScriptedServer, Turn, recording

SECRET = "mysecretpassword"  # the course's admin secret, as recorded


@pytest.fixture
def serve():
    """Start scripted servers; at the end close them and check they saw no surprise."""
    servers: list[ScriptedServer] = []

    def start(script: Script, **options) -> ScriptedServer:
        server = ScriptedServer(script, **options)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()
        assert server.errors == []


@pytest.fixture
def connect():
    """Connect clients to scripted servers; close them at the end."""
    clients: list[AMIClient] = []

    def open_client(server: ScriptedServer, **options) -> AMIClient:
        options.setdefault("timeout", 5.0)
        ami = AMIClient(server.host, server.port, **options)
        clients.append(ami)
        return ami.connect()

    yield open_client
    for ami in clients:
        ami.close()


def with_ping(script: Script) -> Script:
    """Append a recorded Ping: once it is answered, everything before it was routed."""
    script.turns.append(recording("j_ping").turns[1])
    return script


def recorded_events(name: str) -> list[Message]:
    received = transcripts.load(name)[0].received()
    return [m for m in Parser(role="client").feed(received) if m.kind == "event"]


# -- connecting -----------------------------------------------------------------------


def test_connect_reads_the_banner(serve, connect):
    ami = connect(serve(recording("a_banner_login_fullybooted")))
    assert ami.banner == "Asterisk Call Manager/11.0.0"
    assert ami.ami_version == "11.0.0"
    assert repr(ami) == f"<AMIClient 127.0.0.1:{ami.port} connected>"


def test_a_peer_that_is_not_ami_is_a_protocol_error(serve, connect):
    server = serve(Script(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n"))
    with pytest.raises(ProtocolError, match="not an AMI server.*SSH-2.0"):
        connect(server)


def test_refused_connection_names_host_port_and_hints_at_bindaddr():
    with socket.socket() as probe:  # a port where nothing listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ConnectionLost, match=rf"127\.0\.0\.1:{port} refused.*bindaddr"):
        AMIClient("127.0.0.1", port, timeout=2).connect()


# -- login ----------------------------------------------------------------------------


def test_login_succeeds_and_fully_booted_arrives_as_an_event(serve, connect):
    server = serve(recording("a_banner_login_fullybooted"))
    ami = connect(server)
    response = ami.login("admin", SECRET)
    assert response["Message"] == "Authentication accepted"
    assert ami.next_event(timeout=2).name == "FullyBooted"
    assert repr(ami) == f"<AMIClient 127.0.0.1:{ami.port} logged in as admin>"
    login = server.requests[0]
    assert (login["Action"], login["Username"], login["Secret"]) == ("Login", "admin", SECRET)
    assert login.action_id and "Events" not in login


def test_login_with_events_off_sends_events_off(serve, connect):
    script = recording("a_banner_login_fullybooted")
    script.turns[0].reply = [b"Response: Success\r\nMessage: Authentication accepted\r\n\r\n"]
    server = serve(script)
    connect(server).login("admin", SECRET, events=False)
    assert server.requests[0]["Events"] == "off"


def test_failed_login_waits_then_raises_authentication_error_and_closes(serve, connect):
    script = recording("b_login_wrong_secret")
    script.turns[0].delay = 0.05  # Asterisk waits 1 s; the test keeps the pause short
    ami = connect(serve(script))
    with pytest.raises(AuthenticationError, match="Authentication failed") as failure:
        ami.login("admin", "wrong-secret")
    assert failure.value.response["Message"] == "Authentication failed"
    assert ami.closed
    assert "wrong-secret" not in str(failure.value) + repr(ami)
    with pytest.raises(ConnectionLost):
        ami.ping()


def test_md5_login_sends_the_key_from_the_challenge_never_the_secret(serve, connect):
    server = serve(recording("t_challenge_md5", 0))
    ami = connect(server)
    ami.login("admin", SECRET, auth="md5")
    challenge, login = server.requests
    assert (challenge["Action"], challenge["AuthType"]) == ("Challenge", "MD5")
    # the key Asterisk accepted: md5("414717211" + "mysecretpassword")
    assert login["Key"] == "ddf7b8a00423a5cffe1e5bdb30ef7d39"
    assert login["AuthType"] == "MD5" and "Secret" not in login
    assert ami.next_event(timeout=2).name == "FullyBooted"


def test_md5_login_with_a_wrong_secret_raises_authentication_error(serve, connect):
    ami = connect(serve(recording("t_challenge_md5", 1)))
    with pytest.raises(AuthenticationError):
        ami.login("admin", "not-the-secret", auth="md5")
    assert ami.closed


# -- actions --------------------------------------------------------------------------


def test_command_returns_every_output_line(serve, connect):
    script = recording("i_command")
    script.turns = script.turns[:4]  # Login and three commands
    ami = connect(serve(script))
    ami.login("admin", SECRET)
    assert ami.command("core show version").startswith("Asterisk 22.10.1 built by root")
    lines = ami.command("dialplan show internal").split("\n")
    assert lines[0] == "[ Context 'internal' created by 'pbx_config' ]"
    assert lines[-2:] == ["", "-= 5 extensions (15 priorities) in 1 context. =-"]
    assert len(lines) == 18
    with pytest.raises(AMIError, match="No such command 'no such cli command'") as failure:
        ami.command("no such cli command")
    assert failure.value.response["Response"] == "Error"


def test_command_understands_legacy_response_follows(serve, connect):
    """Asterisk 13 and older: raw CLI text up to --END COMMAND-- (main/manager.c, branch 13)."""
    script = recording("a_banner_login_fullybooted")
    legacy = (
        b"Response: Follows\r\nPrivilege: Command\r\nActionID: legacy\r\n"
        b"Asterisk 13.38.3 built by root @ lab on a x86_64 running Linux\n"
        b"second line\n--END COMMAND--\r\n\r\n"
    )
    request = Message([("Action", "Command"), ("ActionID", "legacy")])
    script.turns.append(Turn([request], [legacy]))
    ami = connect(serve(script))
    ami.login("admin", SECRET)
    output = ami.command("core show version")
    assert output == "Asterisk 13.38.3 built by root @ lab on a x86_64 running Linux\nsecond line"


def test_permission_denied_carries_the_servers_reply(serve, connect):
    ami = connect(serve(recording("c_monitor_permissions")))
    ami.login("monitor", "monitor-password")
    with pytest.raises(PermissionDenied, match="Permission denied") as denied:
        ami.send_action("Originate", Channel="Local/1000@internal", Application="Wait",
                        Data=1, Async=True)
    assert denied.value.response["Response"] == "Error"
    unchecked = ami.send_action("CoreStatus", check=False)
    assert unchecked["Message"] == "Permission denied"
    assert ami.ping()["Ping"] == "Pong"


def test_core_show_channels_lists_each_channel_of_a_call(serve, connect):
    script = recording("g_coreshowchannels")
    ami = connect(serve(script))
    ami.login("admin", SECRET)
    idle = ami.send_list_action("CoreShowChannels")
    assert idle.events == [] and idle.complete["ListItems"] == "0"
    ami.send_action("Originate", Channel="Local/1000@internal", Application="Wait",
                    Data=5, Async="true")
    busy = ami.send_list_action("CoreShowChannels")
    assert busy.response["EventList"] == "start"
    assert [ch["Channel"] for ch in busy.events] == [
        "Local/1000@internal-00000000;2",
        "Local/1000@internal-00000000;1",
    ]
    assert busy.complete["EventList"] == "Complete" and busy.complete["ListItems"] == "2"
    queued = list(ami.events(timeout=0.2))
    assert "OriginateResponse" in [e.name for e in queued]
    assert not any(e.name.startswith("CoreShowChannel") for e in queued)


def test_originate_events_arrive_in_order_ending_with_originate_response(serve, connect):
    server = serve(recording("o_originate_events"))
    ami = connect(server)
    ami.login("admin", SECRET)
    response = ami.send_action(
        "Originate", Channel="Local/9999@internal", Context="internal", Exten=1000,
        Priority=1, CallerID="Lab <5551234>", Timeout=10000, Variable=["ORIGVAR=abc"],
        Async="true",
    )
    assert response["Message"] == "Originate successfully queued"
    assert server.requests[1].getall("Variable") == ["ORIGVAR=abc"]
    names = []
    for event in ami.events(timeout=2):
        names.append(event.name)
        if event.name == "OriginateResponse":
            assert event.action_id == response.action_id
            assert event["Response"] == "Success"
            break
    recorded = [e.name for e in recorded_events("o_originate_events")]
    assert names == recorded[: recorded.index("OriginateResponse") + 1]


def test_replies_delivered_one_byte_at_a_time_parse_the_same(serve, connect):
    script = recording("i_command")
    script.turns = script.turns[:3]
    ami = connect(serve(script, chunk_size=1))
    assert ami.ami_version == "11.0.0"
    ami.login("admin", SECRET)
    assert ami.command("core show version").startswith("Asterisk 22.10.1")
    assert len(ami.command("dialplan show internal").split("\n")) == 18
    assert ami.next_event(timeout=2).name == "FullyBooted"


# -- when things go wrong -------------------------------------------------------------


def test_disconnect_mid_response_raises_connection_lost_and_ends_events(serve, connect):
    script = recording("i_command")
    dialplan = script.turns[2]
    dialplan.reply = [b"".join(dialplan.reply)[:300]]
    dialplan.close = True
    script.turns = [script.turns[0], dialplan]
    ami = connect(serve(script))
    ami.login("admin", SECRET)
    seen: list[str] = []
    listener = threading.Thread(target=lambda: seen.extend(e.name for e in ami.events()))
    listener.start()
    with pytest.raises(ConnectionLost, match="in the middle of a message"):
        ami.command("dialplan show internal")
    listener.join(timeout=5)
    assert not listener.is_alive() and seen == ["FullyBooted"]
    assert ami.closed


def test_every_waiting_caller_gets_connection_lost(serve, connect):
    script = recording("e_corestatus_actionid")
    ping = recording("j_ping").turns[1]
    script.turns[1:] = [Turn(script.turns[1].expect + ping.expect, [], close=True)]
    ami = connect(serve(script))
    ami.login("admin", SECRET)
    failures: list[Exception] = []

    def call(action: str) -> None:
        try:
            ami.send_action(action)
        except ConnectionLost as err:
            failures.append(err)

    callers = [threading.Thread(target=call, args=(a,)) for a in ("CoreStatus", "Ping")]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join(timeout=5)
    assert len(failures) == 2 and all("closed the connection" in str(f) for f in failures)


def test_an_actionid_given_by_the_caller_is_used(serve, connect):
    server = serve(recording("e_corestatus_actionid"))
    ami = connect(server)
    ami.login("admin", SECRET)
    response = ami.send_action("CoreStatus", ActionID="my-request-123")
    assert server.requests[1].getall("ActionID") == ["my-request-123"]
    assert response.action_id == "my-request-123"


def test_oversized_message_is_a_protocol_error_that_closes(serve, connect):
    script = recording("i_command")
    huge = b"Response: Success\r\nActionID: i1\r\n" + b"Output: " + b"x" * 9_000_000 + b"\r\n"
    script.turns[1].reply = [huge]
    script.turns = script.turns[:2]
    ami = connect(serve(script))
    ami.login("admin", SECRET)
    with pytest.raises(ProtocolError, match="exceeds"):
        ami.command("core show version")
    assert ami.closed
    assert [e.name for e in ami.events()] == ["FullyBooted"]


def test_slow_response_raises_action_timeout_and_the_late_reply_is_logged(
    serve, connect, caplog
):
    script = recording("j_ping")
    script.turns[1].delay = 0.3
    ami = connect(serve(script))
    ami.login("admin", SECRET)
    ami.timeout = 0.1
    with pytest.raises(ActionTimeout, match=r"no response to Ping .* within 0\.1 s"):
        ami.ping()
    ami.timeout = 2.0
    assert ami.ping()["Ping"] == "Pong"  # the client stays usable
    assert "nobody waits for it" in caplog.text


def test_two_threads_each_get_their_own_response_out_of_order(serve, connect):
    script = recording("e_corestatus_actionid")
    status_turn, ping_turn = script.turns[1], recording("j_ping").turns[1]
    # both requests first; then the Ping reply, then the CoreStatus reply
    script.turns[1:] = [Turn(status_turn.expect + ping_turn.expect,
                             ping_turn.reply + status_turn.reply)]
    server = serve(script)
    ami = connect(server)
    ami.login("admin", SECRET)
    results: dict[str, Message] = {}
    status = threading.Thread(target=lambda: results.update(status=ami.send_action("CoreStatus")))
    status.start()
    assert server.wait_for_requests(2)  # CoreStatus is on the wire before Ping
    results["ping"] = ami.ping()
    status.join(timeout=5)
    assert results["ping"]["Ping"] == "Pong" and "CoreCurrentCalls" not in results["ping"]
    assert results["status"]["CoreCurrentCalls"] == "0"


def test_many_threads_get_their_own_replies_served_in_reverse(serve, connect):
    script = recording("a_banner_login_fullybooted")
    pong = b"".join(recording("j_ping").turns[1].reply)
    requests = [Message([("Action", "Ping"), ("ActionID", f"p{i}")]) for i in range(8)]
    replies = [pong.replace(b"ActionID: j1", f"ActionID: p{i}".encode()) for i in range(8)]
    script.turns.append(Turn(requests, replies[::-1]))
    ami = connect(serve(script))
    ami.login("admin", SECRET)
    answers: list[tuple[str, str]] = []
    lock = threading.Lock()

    def ping() -> None:
        response = ami.ping()
        with lock:
            answers.append((response.action_id, response["Ping"]))

    threads = [threading.Thread(target=ping) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=5)
    assert len(answers) == 8 and len({action_id for action_id, _ in answers}) == 8


def test_full_event_queue_drops_the_oldest_counts_and_warns_once(serve, connect, caplog):
    ami = connect(serve(with_ping(recording("o_originate_events"))), max_queued_events=3)
    ami.login("admin", SECRET)
    ami.send_action("Originate", Channel="Local/9999@internal", Context="internal",
                    Exten=1000, Priority=1, Async="true")
    ami.ping()
    recorded = recorded_events("o_originate_events")
    assert ami.events_dropped == len(recorded) - 3
    assert [e.name for e in ami.events(timeout=0.1)] == [e.name for e in recorded[-3:]]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "dropping the oldest" in warnings[0].getMessage()


def test_callback_that_raises_is_logged_counted_and_the_reader_goes_on(serve, connect, caplog):
    ami = connect(serve(with_ping(recording("a_banner_login_fullybooted"))))
    seen: list[str] = []

    def broken(event: Message) -> None:
        raise RuntimeError("bug in a student's callback")

    ami.on_event("FullyBooted", broken)
    ami.on_event("*", lambda event: seen.append(event.name))
    ami.login("admin", SECRET)
    assert ami.ping()["Ping"] == "Pong"
    assert ami.callback_errors == 1 and seen == ["FullyBooted"]
    assert "bug in a student's callback" in caplog.text


def test_on_event_matches_globs_and_can_be_removed(serve, connect):
    login, originate = recording("o_originate_events").turns
    ping = recording("j_ping").turns[1]
    script = recording("o_originate_events")
    script.turns = [login, ping, originate, ping]
    ami = connect(serve(script))
    dials: list[str] = []
    everything: list[str] = []
    ami.on_event("dial*", lambda event: dials.append(event.name))  # any case
    remove = ami.on_event("*", lambda event: everything.append(event.name))
    ami.login("admin", SECRET)
    ami.ping()
    remove()
    ami.send_action("Originate", Channel="Local/9999@internal", Context="internal",
                    Exten=1000, Priority=1, Async="true")
    ami.ping()
    assert dials == ["DialBegin", "DialEnd"] and everything == ["FullyBooted"]


def test_callback_cannot_wait_for_a_response(serve, connect):
    ami = connect(serve(with_ping(recording("a_banner_login_fullybooted"))))
    errors: list[Exception] = []

    def impatient(event: Message) -> None:
        try:
            ami.ping()
        except RuntimeError as err:
            errors.append(err)

    ami.on_event("FullyBooted", impatient)
    ami.login("admin", SECRET)
    ami.ping()
    assert len(errors) == 1 and "reader thread" in str(errors[0])


def test_header_injection_is_refused_before_anything_is_sent(serve, connect):
    server = serve(with_ping(recording("a_banner_login_fullybooted")))
    ami = connect(server)
    ami.login("admin", SECRET)
    with pytest.raises(ValueError, match="CR or LF"):
        ami.send_action("Originate", Channel="PJSIP/1001\r\nAction: Hangup")
    ami.ping()
    assert [r["Action"] for r in server.requests] == ["Login", "Ping"]


def test_secret_with_a_line_break_is_refused_without_showing_it(serve, connect):
    server = serve(recording("a_banner_login_fullybooted"))
    ami = connect(server)
    secret = "s3cr3t-value\r\nAction: Originate"
    with pytest.raises(ValueError, match="CR or LF") as refused:
        ami.login("admin", secret)
    assert "s3cr3t" not in str(refused.value)
    assert server.requests == []


# -- the transcript and secrets -------------------------------------------------------


def test_secret_never_appears_in_transcript_repr_or_logs(serve, connect, caplog):
    caplog.set_level(logging.DEBUG)
    ami = connect(serve(recording("a_banner_login_fullybooted")))
    ami.login("admin", SECRET)
    ami.next_event(timeout=2)
    text = "".join(entry.text for entry in ami.transcript)
    assert f"Secret: {MASK}" in text and "Username: admin" in text
    assert SECRET not in text + repr(ami) + caplog.text
    directions = [entry.direction for entry in ami.transcript]
    assert directions[:2] == ["recv", "send"] and ami.transcript[0].text.startswith("Asterisk")


def test_md5_key_is_masked_in_the_transcript(serve, connect, caplog):
    caplog.set_level(logging.DEBUG)
    ami = connect(serve(recording("t_challenge_md5", 0)))
    ami.login("admin", SECRET, auth="md5")
    text = "".join(entry.text for entry in ami.transcript)
    assert f"Key: {MASK}" in text
    assert "ddf7b8a00423a5cffe1e5bdb30ef7d39" not in text + caplog.text
    assert SECRET not in text + caplog.text


def test_transcript_keeps_only_the_newest_entries(serve, connect, monkeypatch):
    monkeypatch.setattr(client_module, "TRANSCRIPT_LIMIT", 5)
    ami = connect(serve(with_ping(recording("a_banner_login_fullybooted"))))
    ami.login("admin", SECRET)
    ami.ping()
    transcript = ami.transcript
    assert len(transcript) == 5
    assert transcript[-1].direction == "recv" and "Ping: Pong" in transcript[-1].text


# -- the with block -------------------------------------------------------------------


def test_with_block_logs_off_and_close_is_idempotent(serve):
    server = serve(recording("u_logoff"))
    with AMIClient(server.host, server.port, timeout=5) as ami:
        ami.login("admin", SECRET)
    assert [r["Action"] for r in server.requests] == ["Login", "Logoff"]
    assert ami.closed and repr(ami).endswith("closed>")
    ami.close()
    assert [e.name for e in ami.events()] == ["FullyBooted"]  # queued events are not lost


def test_readme_example_runs_against_recorded_asterisk(serve):
    """The README's first example, with the port changed, against Demo 2's call 1001 -> 1002."""
    script = recording("demo2_call_1001_to_1002")
    script.turns = [
        script.turns[0],
        recording("e_corestatus_actionid").turns[1],
        script.turns[1],
        recording("u_logoff").turns[1],
    ]
    server = serve(script)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(readme_example().replace("5038", str(server.port)), {})
    assert out.getvalue() == (
        "0\nPJSIP/1002-00000009 Up\nPJSIP/1001-00000008 Up\n"
    )
    assert [r["Action"] for r in server.requests] == [
        "Login", "CoreStatus", "CoreShowChannels", "Logoff",
    ]


def readme_example() -> str:
    """The first Python block of README.md, exactly as a reader copies it."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    return readme.split("```python\n", 1)[1].split("```", 1)[0]


def test_readme_example_runs_verbatim_against_the_simulated_asterisk_during_a_call() -> None:
    from amilab.sim import SimulatedAsterisk

    try:
        sim = SimulatedAsterisk(port=5038)  # verbatim: the README's own port
        code = readme_example()
    except OSError:  # something else holds 5038 here: same code, another port
        sim = SimulatedAsterisk()
        code = readme_example().replace("5038", str(sim.port))
    with sim:
        sim.pbx.register("1001")
        sim.pbx.register("1002")
        call = sim.pbx.call("1001", "1002", answer_after=None, talk_for=None)
        deadline = time.monotonic() + 5
        while call.state != "ringing" and time.monotonic() < deadline:
            time.sleep(0.01)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(code, {})
        call.hangup()
    lines = out.getvalue().splitlines()
    assert lines[0] == "2"  # CoreCurrentCalls counts channels: both legs of the call
    assert sorted(line.split("-")[0] for line in lines[1:]) == ["PJSIP/1001", "PJSIP/1002"]
    assert sorted(line.split()[-1] for line in lines[1:]) == ["Ring", "Ringing"]


def test_using_a_client_after_logoff_always_says_it_logged_off() -> None:
    # The reader (server closed) and close() (client closed) race after Logoff:
    # whichever wins, the student reads the same explanation.
    from amilab.sim import SimulatedAsterisk

    with SimulatedAsterisk() as sim:
        for _ in range(5):
            client = AMIClient(sim.host, sim.port, timeout=5).connect()
            client.login("admin", "mysecretpassword")
            client.logoff()
            with pytest.raises(ConnectionLost, match="after Logoff"):
                client.ping()
