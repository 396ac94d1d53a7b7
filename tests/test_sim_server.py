"""The simulated Asterisk over real TCP: the course typed with nc, many
clients, clients that stop reading, garbage, reload, and a clean shutdown."""

from __future__ import annotations

import logging
import socket
import struct
import threading
import time

import pytest

from amilab.client import AMIClient
from amilab.errors import AuthenticationError
from amilab.protocol import Message
from amilab.sim import classes
from amilab.sim.clock import ManualClock
from amilab.sim.config import DEFAULT_MANAGER_CONF, ConfigError
from amilab.sim.pbx import PBX
from amilab.sim.server import DEFAULT_OUTPUT_LIMIT, SimulatedAsterisk
from tests import transcripts
from tests.raw_client import RawClient
from tests.test_sim_session import FAKE_ACTIONS, FakePBX, normalise, parked  # noqa: F401

FAST = 0.05  # failed-login pause in these tests (Asterisk: 1 s)


@pytest.fixture
def sim():
    """The server with a fake PBX and fake actions, for the manager's own edge cases."""
    with SimulatedAsterisk(pbx=FakePBX(), actions=FAKE_ACTIONS, failed_login_delay=FAST) as server:
        yield server


@pytest.fixture
def lab():
    """The whole simulator: the real PBX and actions, on a manual clock that starts
    at the recordings' date, so nothing happens until a test advances it."""
    with SimulatedAsterisk(pbx=PBX(clock=ManualClock()), failed_login_delay=FAST) as server:
        yield server


class Raw(RawClient):
    """A plain socket client, like nc: bytes out, messages in."""

    def read_until_closed(self) -> bytes:
        while True:
            data = self.sock.recv(65536)
            if not data:
                return bytes(self.received)
            self.received += data

    def login(
        self, user: str = "admin", secret: str = "mysecretpassword", *, booted: bool = True
    ) -> None:
        """Log in; ``booted``: the user reads system, so FullyBooted follows."""
        self.send(f"Action: Login\nUsername: {user}\nSecret: {secret}\n\n".encode())
        reply = self.read()[0]
        assert reply["Message"] == "Authentication accepted"
        if booted:
            assert self.read()[0].name == "FullyBooted"

    def close(self) -> None:
        self.sock.close()


def wait_for(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def connected(sim: SimulatedAsterisk) -> int:
    return int(sim.manager.run_cli("manager show connected").splitlines()[-1].split()[0])


# -- the course, typed with nc (LF line endings) -----------------------------------------------


def test_course_steps_4_to_8_typed_with_nc(lab):
    nc = Raw(lab)
    assert nc.sock.recv(100) == b"Asterisk Call Manager/11.0.0\r\n"  # Step 4
    nc.send(b"Action: Login\nUsername: admin\nSecret: mysecretpassword\n\n")  # Step 5
    expected = (
        b"Response: Success\r\nMessage: Authentication accepted\r\n\r\n"
        b"Event: FullyBooted\r\nPrivilege: system,all\r\nUptime: 0\r\nLastReload: 0\r\n"
        b"Status: Fully Booted\r\n\r\n"
    )
    nc.read(2)
    assert bytes(nc.received) == expected
    nc.send(b"Action: CoreStatus\nActionID: my-request-123\n\n")  # Step 6
    (status,) = nc.read()
    assert status.action_id == "my-request-123" and status["CoreCurrentCalls"] == "0"
    nc.send(b"Action: PJSIPShowEndpoints\n\n")
    listing = nc.read(5)  # the ack, 1001-1003, EndpointListComplete
    assert [m.name for m in listing] == [
        "Success",
        "EndpointList",
        "EndpointList",
        "EndpointList",
        "EndpointListComplete",
    ]
    assert "Privilege" not in listing[1]  # list items carry none
    nc.send(b"Action: Events\nEventMask: off\n\n")  # Step 7
    assert nc.read()[0]["Events"] == "Off"
    nc.send(b"Action: Events\nEventMask: system,call\n\n")
    assert nc.read()[0]["Events"] == "On"
    lab.pbx.register("1001")  # Demo 1: a softphone registers
    first = nc.read()[0]
    assert first["Privilege"] == "system,all" and first.name in ("PeerStatus", "ContactStatus")
    nc.received.clear()
    nc.pending.clear()
    nc.send(b"Action: Logoff\n\n")  # Step 8
    assert nc.read_until_closed().endswith(
        b"Response: Goodbye\r\nMessage: Thanks for all the fish.\r\n\r\n"
    )


@pytest.mark.parametrize(
    ("name", "index"),
    [
        ("a_banner_login_fullybooted", 0),
        ("b_login_wrong_secret", 0),
        ("b_login_wrong_secret", 1),
        ("b_login_wrong_secret", 2),
        ("c_monitor_permissions", 0),
        ("d_action_before_login", 0),
        ("e_corestatus_actionid", 0),
        ("f_coresettings", 0),
        ("j_ping", 0),
        ("k_events", 0),
        ("l_unknown_action", 0),
        ("m_no_action_header", 0),
        ("q_reload", 0),
        ("r_queuestatus", 0),
        ("u_logoff", 0),
        ("u_logoff", 1),
        ("v_lf_only", 0),
    ],
)
def test_recorded_sessions_over_tcp_match_asterisk_22(lab, name, index):
    recording = transcripts.connection(name, index)
    client = Raw(lab)
    expected = normalise(recording.received())
    for step in recording.steps:
        if step.direction == "send":
            client.send(step.data)
    if recording.server_closed:
        ours = client.read_until_closed()
    else:
        while len(normalise(bytes(client.received))) < len(expected):
            data = client.sock.recv(65536)
            assert data, "server closed early"
            client.received += data
        ours = bytes(client.received)
    assert normalise(ours) == expected


def test_listcommands_lines_match_the_recording(lab):
    recorded = {}
    for line in transcripts.connection("s_listcommands").received().split(b"\r\n"):
        name, _, text = line.decode().partition(": ")
        if "(Priv: " in text:
            recorded[name] = text
    client = Raw(lab)
    client.login()
    client.send(b"Action: ListCommands\n\n")
    (reply,) = client.read()
    ours = dict(reply.headers[1:])
    common = sorted(set(ours) & set(recorded))
    assert {"Challenge", "Command", "CoreSettings"} <= set(common)
    assert {name: ours[name] for name in common} == {name: recorded[name] for name in common}


def test_a_synchronous_originate_holds_the_events_until_it_answers(lab):
    client = Raw(lab)
    client.login()
    client.send(
        b"Action: Originate\nChannel: Local/1000@internal\nApplication: Wait\nData: 1\n"
        b"ActionID: sync\n\nAction: Ping\nActionID: after\n\n"
    )
    wait_for(lambda: lab.pbx.clock.pending() > 0)  # the Originate is running, unanswered
    lab.pbx.clock.advance(5)  # the PBX runs the call's steps from this thread
    names = [(m.name, m.action_id) for m in client.read(4)]
    assert names[0] == ("Success", "sync")  # the reply first: the events waited for it
    assert ("Newchannel", None) in names[1:]


def test_logins_and_logoffs_are_logged_and_secrets_never_are(sim, caplog):
    caplog.set_level(logging.INFO, logger="amilab.sim")
    client = Raw(sim)
    client.login()
    client.send(b"Action: Logoff\n\n")
    client.read_until_closed()
    bad = Raw(sim)
    bad.send(b"Action: Login\nUsername: admin\nSecret: hunter2\n\n")
    bad.read_until_closed()
    wait_for(lambda: "logged off" in caplog.text)
    assert "manager 'admin' logged on from 127.0.0.1" in caplog.text
    assert "failed to authenticate as 'admin'" in caplog.text
    assert "hunter2" not in caplog.text and "mysecretpassword" not in caplog.text


def test_failed_login_closes_the_connection(sim):
    client = Raw(sim)
    client.send(b"Action: Login\r\nUsername: admin\r\nSecret: nope\r\n\r\n")
    assert client.read_until_closed().endswith(
        b"Response: Error\r\nMessage: Authentication failed\r\n\r\n"
    )


def test_amiclient_logs_in_and_gets_events(lab):
    with AMIClient(lab.host, lab.port, timeout=5) as ami:
        ami.login("admin", "mysecretpassword")
        assert ami.ping()["Ping"] == "Pong"
        assert ami.next_event(timeout=5).name == "FullyBooted"
        lab.pbx.register("1002")
        assert ami.next_event(timeout=5)["Privilege"] == "system,all"


def test_manager_cli_commands_through_the_command_action(lab):
    with AMIClient(lab.host, lab.port, timeout=5) as ami:
        ami.login("admin", "mysecretpassword")
        text = ami.command("manager show user admin")
        assert "secret: <Set>" in text and "mysecretpassword" not in text
        assert "1 users connected." in ami.command("manager show connected")


def test_reload_module_manager_rereads_the_file(tmp_path):
    path = tmp_path / "manager.conf"
    path.write_text(DEFAULT_MANAGER_CONF)
    with SimulatedAsterisk(path, pbx=PBX(clock=ManualClock())) as lab:
        admin = Raw(lab)
        admin.login()
        path.write_text(DEFAULT_MANAGER_CONF + "\n[student]\nsecret = s\nread = call\n")
        admin.send(b"Action: Reload\nModule: manager\n\n")
        reply, event = admin.read(2)
        assert reply["Message"] == "Module Reloaded" and event["Module"] == "manager"
        Raw(lab).login("student", "s", booted=False)


def test_amiclient_login_failure_raises(sim):
    ami = AMIClient(sim.host, sim.port, timeout=5).connect()
    with pytest.raises(AuthenticationError):
        ami.login("admin", "wrong")
    assert ami.closed


# -- sessions and the loop ---------------------------------------------------------------------


def test_second_login_of_a_single_login_user_is_refused(sim):
    sim.reload(DEFAULT_MANAGER_CONF.replace("[monitor]", "[monitor]\nallowmultiplelogin = no"))
    first = Raw(sim)
    first.login("monitor", "monitor-password")
    second = Raw(sim)
    second.send(b"Action: Login\nUsername: Monitor\nSecret: monitor-password\n\n")
    assert second.read_until_closed().endswith(b"Message: Login Already In Use\r\n\r\n")


def test_a_late_reply_from_another_thread_arrives_before_the_held_events(sim, parked):
    client = Raw(sim)
    client.login()
    client.send(b"Action: Originate\nActionID: o1\n\nAction: Ping\nActionID: p1\n\n")
    wait_for(lambda: len(parked) == 1)
    sim.pbx.emit("Newchannel", classes.CALL, ("Channel", "Local/1000@internal-00000001;1"))
    call = parked[0]
    threading.Thread(
        target=call.reply, args=([[("Response", "Success"), ("ActionID", "o1")]],)
    ).start()
    got = [(m.name, m.action_id) for m in client.read(3)]
    assert got == [("Success", "o1"), ("Newchannel", None), ("Success", "p1")]


def test_events_from_several_threads_keep_each_threads_order(sim):
    client = Raw(sim)
    client.login()

    def produce(tag: str) -> None:
        for n in range(200):
            sim.pbx.emit("UserEvent", classes.CALL, ("Tag", tag), ("N", str(n)))

    threads = [threading.Thread(target=produce, args=(tag,)) for tag in "abc"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    events = client.read(600)
    for tag in "abc":
        assert [int(e["N"]) for e in events if e["Tag"] == tag] == list(range(200))


def test_many_concurrent_clients_all_get_every_event(sim):
    clients: list[Raw] = []
    for _ in range(11):  # in batches of 20: more than authlimit (50) must not wait unauthenticated
        batch = [Raw(sim) for _ in range(20)]
        for client in batch:
            client.send(b"Action: Login\nUsername: monitor\nSecret: monitor-password\n\n")
        for client in batch:
            assert client.read()[0]["Message"] == "Authentication accepted"
            assert client.read()[0].name == "FullyBooted"
        clients += batch
    for n in range(5):
        sim.pbx.emit("Newstate", classes.CALL, ("N", str(n)))
    for client in clients:
        assert [m["N"] for m in client.read(5)] == ["0", "1", "2", "3", "4"]
    assert connected(sim) == 220
    for client in clients:
        client.close()
    wait_for(lambda: connected(sim) == 0)


@pytest.mark.parametrize(
    ("output_limit", "reason"),
    [(256 * 1024, "bytes unsent"), (DEFAULT_OUTPUT_LIMIT, "not reading for 0.1 s")],
)
def test_a_client_that_stops_reading_is_dropped_and_the_others_keep_receiving(
    output_limit, reason, caplog
):
    with SimulatedAsterisk(pbx=FakePBX(), actions=FAKE_ACTIONS, output_limit=output_limit) as sim:
        stalled = Raw(sim, rcvbuf=4096)
        stalled.login()
        reader = Raw(sim)
        reader.login()
        payload = "x" * 1000
        got: list[Message] = []
        consumer = threading.Thread(target=lambda: got.extend(reader.read(3000)))
        consumer.start()
        for n in range(3000):
            sim.pbx.emit("Blob", classes.CALL, ("N", str(n)), ("Data", payload))
        consumer.join(timeout=30)
        assert [int(m["N"]) for m in got] == list(range(3000))
        wait_for(lambda: connected(sim) == 1)
        try:  # what the kernel still held, then the end: the stalled client was cut off
            stalled.read_until_closed()
        except ConnectionResetError:
            pass
        assert stalled.received.count(b"Event: Blob\r\n") < 3000
    assert reason in caplog.text


def test_garbage_huge_lines_and_abrupt_disconnects_never_stop_the_server(sim):
    garbage = Raw(sim)
    garbage.send(bytes(range(256)) * 64 + b"\r\n\r\n\n\n")
    huge = Raw(sim)
    huge.send(b"Action: Ping\r\nX: " + b"y" * 5_000_000 + b"\r\n\r\n")
    assert huge.read(1)[0]["Message"] == "Failed to parse message: line too long"
    for _ in range(20):
        Raw(sim).close()
    rst = Raw(sim)
    rst.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    rst.send(b"Action: Login\nUsername: admin\nSecret: mysecretpassword\n\n")
    rst.close()  # reset while the reply is on its way
    half = Raw(sim)
    half.send(b"Action: Login\nUsername: admin\nSecret: mysecretpassword\n\nAction: Ping\n\n")
    half.sock.shutdown(socket.SHUT_WR)
    assert b"Ping: Pong" in half.read_until_closed()
    healthy = Raw(sim)
    healthy.login()
    healthy.send(b"Action: Ping\n\n")
    assert healthy.read()[0]["Ping"] == "Pong"


def test_authlimit_closes_extra_unauthenticated_connections_without_a_banner():
    config = DEFAULT_MANAGER_CONF.replace("port = 5038", "port = 5038\nauthlimit = 2")
    with SimulatedAsterisk(config, pbx=FakePBX(), actions=FAKE_ACTIONS) as sim:
        first, second = Raw(sim), Raw(sim)
        assert first.sock.recv(100).startswith(b"Asterisk Call Manager")
        assert second.sock.recv(100).startswith(b"Asterisk Call Manager")
        assert Raw(sim).sock.recv(100) == b""
        first.login()  # a login frees its slot
        assert Raw(sim).sock.recv(100).startswith(b"Asterisk Call Manager")


# -- configuration, reload and the manager CLI --------------------------------------------------


def test_a_config_without_enabled_yes_is_refused_with_the_reason():
    with pytest.raises(ConfigError, match="enabled = yes"):
        SimulatedAsterisk("[admin]\nsecret = x\n", pbx=FakePBX(), actions=FAKE_ACTIONS)


def test_reload_adds_users_for_new_logins_and_keeps_sessions(sim):
    old = Raw(sim)
    old.login("monitor", "monitor-password")
    sim.reload(
        "[general]\nenabled = yes\n[student]\nsecret = s3cret\nread = call\nwrite = system\n"
    )
    newcomer = Raw(sim)
    newcomer.login("student", "s3cret", booted=False)
    gone = Raw(sim)
    gone.send(b"Action: Login\nUsername: admin\nSecret: mysecretpassword\n\n")
    assert b"Authentication failed" in gone.read_until_closed()
    old.send(b"Action: Ping\n\n")
    assert old.read()[0]["Ping"] == "Pong"


def test_reload_with_bad_text_keeps_the_old_config(sim):
    with pytest.raises(ConfigError, match="line 2"):
        sim.reload("[general]\nport = 1\n")
    assert sim.config.user("admin") is not None
    Raw(sim).login()


def test_manager_reload_rereads_the_file(tmp_path):
    path = tmp_path / "manager.conf"
    path.write_text(DEFAULT_MANAGER_CONF)
    with SimulatedAsterisk(path, pbx=FakePBX(), actions=FAKE_ACTIONS) as sim:
        path.write_text(DEFAULT_MANAGER_CONF + "\n[extra]\nsecret = e\n")
        assert sim.manager.run_cli("manager reload") == ""
        assert sim.config.user("extra") is not None
        path.write_text("[general]\nbogus line\n")
        assert "line 2" in sim.manager.run_cli("manager reload")
        assert sim.config.user("extra") is not None


def test_manager_show_user_never_prints_the_secret(sim):
    text = sim.manager.run_cli("manager show user admin")
    assert "mysecretpassword" not in text
    assert "            secret: <Set>\n" in text
    assert (
        "         read perm: system,call,log,verbose,command,agent,user,config,dtmf,reporting,cdr,dialplan,originate\n"
        in text
    )
    assert "  0:  deny - 0.0.0.0/0.0.0.0\n" in text
    assert "  1: allow - 127.0.0.0/255.255.255.0\n" in text
    assert sim.manager.run_cli("manager show user nobody") == "There is no manager called nobody\n"
    assert sim.manager.run_cli("manager show user").startswith("Usage: manager show user <user>")


def test_manager_show_settings_and_connected(sim):
    settings = sim.manager.run_cli("manager show settings")
    assert f"  TCP Bindaddress:           127.0.0.1:{sim.port}" in settings
    assert "  Manager (AMI):             Yes" in settings
    client = Raw(sim)
    client.login("monitor", "monitor-password")
    table = sim.manager.run_cli("Manager Show Connected")
    assert table.startswith("  Username         IP Address")
    assert "monitor" in table and "0000000515" in table  # read = system,call,reporting
    assert table.endswith("1 users connected.\n")
    assert sim.manager.run_cli("core show version") is None
    assert sim.manager.run_cli("manager show users").endswith("2 manager users configured.\n")


def test_timestampevents_adds_a_timestamp_after_privilege():
    config = DEFAULT_MANAGER_CONF.replace("port = 5038", "port = 5038\ntimestampevents = yes")
    with SimulatedAsterisk(config, pbx=FakePBX(), actions=FAKE_ACTIONS) as sim:
        client = Raw(sim)
        client.login()
        sim.pbx.emit("Hangup", classes.CALL, ("Cause", "16"))
        event = client.read()[0]
        assert [name for name, _ in event.headers] == ["Event", "Privilege", "Timestamp", "Cause"]
        assert event["Timestamp"] == f"{sim.pbx.clock.wall():.6f}"


# -- shutdown ----------------------------------------------------------------------------------


def test_close_is_idempotent_and_leaves_no_thread_or_socket():
    before = set(threading.enumerate())
    sim = SimulatedAsterisk(pbx=FakePBX(), actions=FAKE_ACTIONS)
    clients = [Raw(sim) for _ in range(5)]
    clients[0].login()
    sim.close()
    sim.close()
    assert set(threading.enumerate()) <= before
    for client in clients:
        assert client.read_until_closed().startswith(b"Asterisk Call Manager/11.0.0\r\n")
    with pytest.raises(OSError):
        socket.create_connection((sim.host, sim.port), timeout=1)
    assert not sim.pbx.listeners  # unsubscribed from the PBX


def test_binds_loopback_by_default(sim):
    assert sim.host == "127.0.0.1" and sim.port > 0


def test_the_sim_package_exports_the_simulator():
    import amilab.sim

    assert amilab.sim.SimulatedAsterisk is SimulatedAsterisk
    assert amilab.sim.ConfigError is ConfigError
    with pytest.raises(AttributeError):
        amilab.sim.NoSuchThing  # noqa: B018

