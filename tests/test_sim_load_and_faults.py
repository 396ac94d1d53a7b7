"""The simulated Asterisk under load and abuse, with the real PBX behind it.

What a class of students (or a buggy script) would notice: a hundred clients
logging in at the same moment all get in and all see every event; a client that
stops reading never holds up the others and is dropped, leaving nothing behind;
garbage, huge lines, resets and half-sent requests never stop the server from
answering the next client. The PBX runs on a manual clock, so each test makes
exactly the events it checks; every wait is bounded and nothing is timed.
"""

from __future__ import annotations

import gc
import logging
import socket
import struct
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from amilab.protocol import Message
from amilab.sim import classes
from amilab.sim.clock import ManualClock
from amilab.sim.config import DEFAULT_MANAGER_CONF
from amilab.sim.pbx import PBX, PbxEvent
from amilab.sim.server import SimulatedAsterisk
from amilab.sim.session import Session
from tests.raw_client import RawClient

WAIT = 10.0  # seconds: the bound on every wait
LOGIN = b"Action: Login\r\nUsername: admin\r\nSecret: mysecretpassword\r\n\r\n"


class Client(RawClient):
    """A raw-socket AMI client; ``read`` parses what the server wrote."""

    def __init__(self, sim: SimulatedAsterisk, *, rcvbuf: int | None = None) -> None:
        super().__init__(sim, rcvbuf=rcvbuf, timeout=WAIT)

    def login(self) -> None:
        self.send(LOGIN)
        assert [m.name for m in self.read(2)] == ["Success", "FullyBooted"]

    def ping(self) -> Message:
        self.send(b"Action: Ping\r\n\r\n")
        return self.read()[0]

    def read_to_end(self) -> bytes:
        """Whatever is left, then EOF (a reset counts as the end)."""
        data = b""
        try:
            while chunk := self.sock.recv(65536):
                data += chunk
        except ConnectionResetError:
            pass
        return data

    def reset(self) -> None:
        """Close with a TCP RST instead of a FIN."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()


class Reader(threading.Thread):
    """A logged-in client that keeps reading on its own thread and keeps what
    came after its login (``messages``)."""

    def __init__(self, sim: SimulatedAsterisk) -> None:
        super().__init__(daemon=True)
        self.client = Client(sim)
        self.client.login()
        self.messages: list[Message] = []
        self.closed = False
        self._arrived = threading.Condition()
        self.start()

    def run(self) -> None:
        parser = self.client.parser
        self.client.sock.settimeout(None)
        try:
            while data := self.client.sock.recv(65536):
                with self._arrived:
                    self.messages.extend(parser.feed(data))
                    self._arrived.notify_all()
        except OSError:
            pass
        with self._arrived:
            self.closed = True
            self._arrived.notify_all()

    def wait_for(self, count: int) -> list[Message]:
        with self._arrived:
            self._arrived.wait_for(lambda: len(self.messages) >= count or self.closed, WAIT)
            return list(self.messages)

    def stop(self) -> None:
        self.client.sock.shutdown(socket.SHUT_RDWR)
        self.join(WAIT)
        self.client.sock.close()


def recorded(pbx: PBX) -> list[PbxEvent]:
    """Every event the PBX emits from now on (what an admin session must get)."""
    events: list[PbxEvent] = []
    pbx.subscribe(events.append)
    return events


def as_wire(event: PbxEvent) -> list[tuple[str, str]]:
    return [("Event", event.name), ("Privilege", classes.perms_to_str(event.privilege)),
            *event.body]


def connected(sim: SimulatedAsterisk) -> int:
    return int(sim.manager.run_cli("manager show connected").splitlines()[-1].split()[0])


def wait_until(predicate, what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not predicate():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.01)


def live_sessions() -> int:
    gc.collect()
    return sum(1 for obj in gc.get_objects() if isinstance(obj, Session))


def server_threads() -> set[str]:
    return {t.name for t in threading.enumerate() if t.name.startswith("amilab")}


@pytest.fixture
def pbx():
    pbx = PBX(clock=ManualClock(), endpoints=("1001", "1002", "1003"))
    yield pbx
    pbx.close()


@pytest.fixture
def sim(pbx):
    with SimulatedAsterisk(pbx=pbx, failed_login_delay=0.05) as server:
        yield server


def traffic(pbx: PBX, seconds: float) -> None:
    """Simulated seconds of calls at 20 calls/s (a few hundred events a second)."""
    pbx.start_traffic(20, seed=7)
    for _ in range(int(seconds / 0.05)):
        pbx.clock.advance(0.05)
    pbx.stop_traffic()


# -- many clients at once ---------------------------------------------------------------------


def test_a_hundred_clients_logging_in_at_once_all_get_in_and_all_get_every_event(pbx):
    """authlimit = 100 here: with Asterisk's default of 50, connections beyond
    50 not yet logged in are turned away, as in Asterisk (tested in test_sim_server)."""
    config = DEFAULT_MANAGER_CONF.replace("port = 5038", "port = 5038\nauthlimit = 100")
    with SimulatedAsterisk(config, pbx=pbx) as sim:
        start = threading.Barrier(100, timeout=WAIT)

        def log_in(_: int) -> Client:
            client = Client(sim)
            assert client.sock.recv(30) == b"Asterisk Call Manager/11.0.0\r\n"
            start.wait()  # everyone connected: now all log in at once
            client.login()
            return client

        with ThreadPoolExecutor(max_workers=100) as pool:
            clients = list(pool.map(log_in, range(100)))
        assert connected(sim) == 100
        events = recorded(pbx)
        pbx.register("1001")
        pbx.register("1002")
        pbx.call("1001", "1002", answer_after=1.0, talk_for=1.0)
        pbx.clock.advance(5)
        assert len(events) > 50
        for client in clients:
            assert [m.headers for m in client.read(len(events))] == [as_wire(e) for e in events]
        for client in clients:
            client.sock.close()
        wait_until(lambda: connected(sim) == 0, "every client gone")
    assert live_sessions() == 0


# -- a client that stops reading ----------------------------------------------------------------

#: A user whose sessions may wait a minute for a slow reader (writetimeout, in ms):
#: only the server's output limit can then drop it.
PATIENT = DEFAULT_MANAGER_CONF + "\n[patient]\nsecret = p\nread = all\nwritetimeout = 60000\n"


def test_a_client_that_stops_reading_never_delays_the_others_and_is_dropped(pbx, caplog):
    threads_before = server_threads()
    with SimulatedAsterisk(PATIENT, pbx=pbx, output_limit=1024 * 1024) as sim:
        readers = [Reader(sim) for _ in range(3)]
        stalled = Client(sim, rcvbuf=4096)
        stalled.send(b"Action: Login\r\nUsername: patient\r\nSecret: p\r\n\r\n")
        assert [m.name for m in stalled.read(2)] == ["Success", "FullyBooted"]  # and no more
        events = recorded(pbx)
        pbx.start_traffic(50, seed=3)
        caught_up_while_stalled = 0
        while connected(sim) == 4:  # until the stalled client is dropped
            assert len(events) < 200_000, "the stalled client was never dropped"
            pbx.clock.advance(0.05)
            for reader in readers:  # the others have everything so far, at once
                assert len(reader.wait_for(len(events))) == len(events)
            caught_up_while_stalled += connected(sim) == 4
        pbx.stop_traffic()
        pbx.clock.advance(60)  # the calls in progress end
        assert caught_up_while_stalled > 0
        for reader in readers:
            got = reader.wait_for(len(events))
            assert [m.headers for m in got] == [as_wire(e) for e in events]
        what_it_got = stalled.read_to_end()  # what the kernel held, then the end
        assert what_it_got.count(b"\r\nEvent: ") < len(events)
        assert "bytes unsent" in caplog.text
        assert connected(sim) == 3 and live_sessions() == 3  # nothing kept of it
        assert server_threads() - threads_before == {
            t for t in server_threads() if t.startswith("amilab-sim-ami")
        }  # no thread per client: only the server's own loop
        for reader in readers:
            reader.stop()
    assert live_sessions() == 0


def test_a_dropped_client_leaves_no_session_behind(sim):
    """Gone from the session table is not enough: nothing may keep the session
    (its buffers, its parser) alive once its socket is closed."""
    for _ in range(20):
        Client(sim).reset()
    stalled = Client(sim, rcvbuf=4096)
    stalled.login()
    wait_until(lambda: connected(sim) == 1, "the resets noticed")
    stalled.reset()
    wait_until(lambda: connected(sim) == 0, "every client gone")
    assert live_sessions() == 0


def test_a_client_that_floods_requests_without_reading_is_dropped(sim, pbx):
    reader = Reader(sim)
    flooder = Client(sim, rcvbuf=4096)
    flooder.login()
    flood = b"Action: ListCommands\r\n\r\n" * 1024  # 1.5 kB of reply each

    def send_until_cut_off() -> None:
        try:
            while True:
                flooder.send(flood)
        except OSError:
            pass

    thread = threading.Thread(target=send_until_cut_off, daemon=True)
    thread.start()
    thread.join(WAIT)
    assert not thread.is_alive(), "the flooding client was never cut off"
    wait_until(lambda: connected(sim) == 1, "the flooder dropped")
    events = recorded(pbx)
    pbx.register("1001")
    assert [m.name for m in reader.wait_for(len(events))] == [e.name for e in events]
    reader.stop()


# -- bad input and broken connections ----------------------------------------------------------


def test_garbage_huge_lines_resets_and_half_sent_requests_never_stop_the_server(
    sim, pbx, caplog
):
    caplog.set_level(logging.INFO)
    watcher = Reader(sim)  # logged in all along, while calls go on
    events = recorded(pbx)
    pbx.start_traffic(20, seed=11)

    garbage = Client(sim)
    garbage.send(bytes(range(256)) * 256 + b"\r\n\r\n\x00\xff\r\r\n\n")
    huge = Client(sim)
    huge.login()
    huge.send(b"Action: Ping\r\nX: " + b"y" * 5_000_000 + b"\r\n\r\n")
    assert huge.read()[0]["Message"] == "Failed to parse message: line too long"
    assert huge.ping()["Ping"] == "Pong"  # the session goes on
    many = Client(sim)
    many.login()
    many.send(b"Action: Ping\r\n" + b"X: y\r\n" * 200 + b"\r\n")
    assert many.read()[0]["Message"] == "Too many lines in message or allocation failure"
    pbx.clock.advance(1)

    for _ in range(20):
        Client(sim).reset()  # reset before reading the banner
    midway = Client(sim)
    midway.login()
    midway.send(b"Action: CoreShowChannels\r\n\r\n" * 50)
    midway.reset()  # reset while replies and events are on their way
    cut = Client(sim)
    cut.send(b"Action: Pi")  # half a request, then gone
    cut.sock.close()
    unfinished = Client(sim)
    unfinished.send(b"Action: Login\r\nUsername: admin\r\n")  # no blank line: never a request
    unfinished.sock.shutdown(socket.SHUT_WR)
    assert unfinished.read_to_end() == b"Asterisk Call Manager/11.0.0\r\n"
    pbx.clock.advance(1)
    pbx.stop_traffic()
    pbx.clock.advance(60)

    fresh = Client(sim)
    fresh.login()
    assert fresh.ping()["Ping"] == "Pong"
    got = watcher.wait_for(len(events))
    assert [m.headers for m in got] == [as_wire(e) for e in events]
    # left: the watcher, and the garbage, huge, many and fresh clients
    wait_until(lambda: connected(sim) == 5, "only the live clients left")
    assert live_sessions() == 5
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    watcher.stop()


def test_an_endless_request_is_answered_too_many_lines_without_dropping_the_client(sim):
    """Asterisk reads a request's lines until the blank line whatever their
    number, keeps 128 and answers "Too many lines"; memory stays bounded."""
    client = Client(sim)
    client.login()
    line = b"X-Header: " + b"y" * 1000 + b"\r\n"
    client.send(b"Action: Ping\r\n" + line * 9000 + b"\r\n")  # 9 MB, one request
    assert client.read()[0]["Message"] == "Too many lines in message or allocation failure"
    assert client.ping()["Ping"] == "Pong"
