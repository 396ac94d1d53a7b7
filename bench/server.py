"""Simulated server benchmark: 200 AMI clients on one simulated Asterisk.

Run: ``.venv/bin/python bench/server.py`` (options: ``--clients 200 --calls 30
--seconds 10 --seed 1``). About a minute. Figures are printed, nothing is
asserted.

The server runs in its own process, as ``amilab serve --traffic`` would: a
:class:`SimulatedAsterisk` with ``timestampevents = yes`` in front of the PBX's
own traffic generator on a real clock (``--calls`` new calls per second, about
1,000 events/s over the first 10 s; the rate climbs while calls pile up).

The clients are raw sockets in this process, all on one ``selectors`` loop:
not AMIClient, whose reader thread per client would measure 200 Python threads
fighting over one GIL rather than the server. Each client logs in as admin
(read by amilab's Parser), then only frames what arrives: it counts the blank
lines that end messages, keeps a CRC-32 of the bytes, and reads each event's
``Timestamp:`` (the PBX's clock when the server took the event in) against
``time.time()`` on arrival: the delivery lag. Ten of the clients also run every
byte through amilab's Parser and check that each message is an event with
that Timestamp, so the cheap framing is not trusted blindly.

Three runs, each on a fresh server with the same seeded traffic:

1. one client: the peer, the lag floor of this machine;
2. ``--clients`` clients, all reading;
3. the same with one of them stalled: logged in, then it never reads again
   (a 4 KiB receive buffer). The server drops it (as Asterisk drops a client
   whose writes time out) and the others go on.

For each: connect+login time of every client (p50, p99, all of them), events
emitted by the PBX against events received by each client (lost must be 0,
and all clients must have the identical byte stream), lag p50/p99/max, CPU
seconds of the server and of the clients, and for run 3 when and why the
stalled client was dropped and the others' lag before and after that moment.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import platform
import re
import resource
import selectors
import socket
import sys
import time
import zlib
from array import array
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from amilab.protocol import Parser  # noqa: E402
from amilab.sim.clock import RealClock  # noqa: E402
from amilab.sim.config import DEFAULT_MANAGER_CONF  # noqa: E402
from amilab.sim.pbx import PBX  # noqa: E402
from amilab.sim.server import SimulatedAsterisk  # noqa: E402

LOGIN = b"Action: Login\r\nUsername: admin\r\nSecret: mysecretpassword\r\n\r\n"
#: The course's manager.conf, with every event stamped and room for all clients
#: to be connected before any has logged in (Asterisk's default authlimit is 50).
CONFIG = DEFAULT_MANAGER_CONF.replace(
    "port = 5038", "port = 5038\ntimestampevents = yes\nauthlimit = 1000"
)
TIMESTAMP = re.compile(rb"\r\nTimestamp: ([0-9]+\.[0-9]+)\r\n")
END = b"\r\n\r\n"
VERIFIERS = 10  #: clients that also parse everything with amilab's Parser
DRAIN = 3.0  #: seconds without new bytes after which the final count is taken
WAIT = 30.0  #: bound on the login phase


# -- the server's process ----------------------------------------------------------------------


class _Drops(logging.Handler):
    """Keeps the server's "AMI client ... closed: ..." warnings with their time."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[tuple[float, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append((record.created, record.getMessage()))


def serve(pipe: Connection, calls: float, seed: int) -> None:
    """The server process: start on request, stop (close the PBX, so the count
    is final) on request, report what it emitted and whom it dropped."""
    drops = _Drops()
    logging.getLogger("amilab.sim.server").addHandler(drops)
    pbx = PBX(clock=RealClock())
    emitted = [0]

    def count(_event: object) -> None:
        emitted[0] += 1

    pbx.subscribe(count)
    with SimulatedAsterisk(CONFIG, pbx=pbx) as sim:
        pipe.send(sim.port)
        while True:
            command = pipe.recv()
            if command == "start":
                times_at_start = os.times()
                pbx.start_traffic(calls, seed=seed)
            elif command == "stop":
                pbx.close()
                connected = sim.manager.run_cli("manager show connected").splitlines()[-1]
                now = os.times()
                cpu = now.user + now.system - times_at_start.user - times_at_start.system
                pipe.send((emitted[0], drops.records, connected, cpu))
            elif command == "exit":
                break


# -- the clients ---------------------------------------------------------------------------------


@dataclass(eq=False)
class Client:
    sock: socket.socket
    verify: bool
    started: float = 0.0
    sent: bool = False
    logged_in: float = 0.0
    parser: Parser = field(default_factory=lambda: Parser(role="client"))
    carry: bytes = b""
    crc: int = 0
    events: int = 0
    parsed: int = 0
    arrivals: array = field(default_factory=lambda: array("d"))
    lags: array = field(default_factory=lambda: array("d"))

    def take(self, data: bytes, now: float) -> None:
        """Count the complete messages in ``data`` and note each one's lag."""
        data = self.carry + data
        end = data.rfind(END) + len(END)
        if end < len(END):
            self.carry = data
            return
        whole, self.carry = data[:end], data[end:]
        self.crc = zlib.crc32(whole, self.crc)
        self.events += whole.count(END)
        for stamp in TIMESTAMP.findall(whole):
            self.arrivals.append(now)
            self.lags.append(now - float(stamp))
        if self.verify:
            for message in self.parser.feed(whole):
                if message.kind != "event" or "Timestamp" not in message:
                    raise RuntimeError(f"not a timestamped event: {message!r}")
                self.parsed += 1


def log_in(port: int, count: int, *, small_buffer_last: bool) -> list[Client]:
    """Connect ``count`` clients at once and log each in as soon as its banner
    is in; return them once every one has its FullyBooted. The last one gets
    a 4 KiB receive buffer if it is to stall."""
    selector = selectors.DefaultSelector()
    clients = []
    for n in range(count):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if small_buffer_last and n == count - 1:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        client = Client(sock, verify=n < VERIFIERS, started=time.monotonic())
        sock.connect_ex(("127.0.0.1", port))
        selector.register(sock, selectors.EVENT_READ, client)
        clients.append(client)
    waiting = count
    deadline = time.monotonic() + WAIT
    while waiting:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{waiting} clients still not logged in after {WAIT} s")
        for key, _ in selector.select(1.0):
            client = key.data
            data = client.sock.recv(65536)
            if not data:
                raise RuntimeError("the server closed a connection during login")
            messages = client.parser.feed(data)
            if client.parser.banner and not client.sent:
                client.sent = True
                if client.sock.send(LOGIN) != len(LOGIN):
                    raise RuntimeError("could not send the login in one piece")
            if any(m.name == "FullyBooted" for m in messages):
                client.logged_in = time.monotonic()
                selector.unregister(client.sock)
                waiting -= 1
    selector.close()
    return clients


@dataclass
class Run:
    label: str
    login: list[float]
    login_total: float
    seconds: float
    emitted: int
    received: list[int]
    identical: bool
    verified: int
    lags: array
    arrivals: array
    drops: list[tuple[float, str]]
    connected_after: str
    server_cpu: float
    client_cpu: float
    stalled_got: int | None = None


def run(args: argparse.Namespace, clients: int, stalled: bool, label: str) -> Run:
    context = multiprocessing.get_context("spawn")
    pipe, child_pipe = context.Pipe()
    server = context.Process(target=serve, args=(child_pipe, args.calls, args.seed))
    server.start()
    try:
        port = pipe.recv()
        started = time.monotonic()
        everyone = log_in(port, clients, small_buffer_last=stalled)
        login_total = time.monotonic() - started
        login = [c.logged_in - c.started for c in everyone]
        slow = everyone[-1] if stalled else None
        readers = [c for c in everyone if c is not slow]
        cpu_before = resource.getrusage(resource.RUSAGE_SELF)
        selector = selectors.DefaultSelector()
        for client in readers:
            selector.register(client.sock, selectors.EVENT_READ, client)

        def pump(until: float) -> None:
            while time.monotonic() < until:
                for key, _ in selector.select(max(0.0, min(0.2, until - time.monotonic()))):
                    data = key.data.sock.recv(262144)
                    if data:
                        key.data.take(data, time.time())

        pipe.send("start")
        began = time.monotonic()
        pump(began + args.seconds)
        pipe.send("stop")
        emitted, drops, connected_after, server_cpu = pipe.recv()
        seconds = time.monotonic() - began
        last = None
        while last != [c.events for c in readers] and min(c.events for c in readers) < emitted:
            last = [c.events for c in readers]
            pump(time.monotonic() + DRAIN)
        cpu_after = resource.getrusage(resource.RUSAGE_SELF)
        stalled_got = drain_stalled(slow) if slow is not None else None
        pipe.send("exit")
        server.join(10)
    finally:
        if server.is_alive():
            server.kill()
    for client in everyone:
        client.sock.close()
    lags, arrivals = array("d"), array("d")
    for client in readers:
        lags.extend(client.lags)
        arrivals.extend(client.arrivals)
    return Run(
        label=label,
        login=login,
        login_total=login_total,
        seconds=seconds,
        emitted=emitted,
        received=[c.events for c in readers],
        identical=len({c.crc for c in readers}) == 1,
        verified=sum(c.parsed for c in readers),
        lags=lags,
        arrivals=arrivals,
        drops=drops,
        connected_after=connected_after,
        server_cpu=server_cpu,
        client_cpu=(cpu_after.ru_utime - cpu_before.ru_utime)
        + (cpu_after.ru_stime - cpu_before.ru_stime),
        stalled_got=stalled_got,
    )


def drain_stalled(client: Client) -> int:
    """What the stalled client's kernel still held for it, up to the server's
    close (EOF or reset); -1 if the connection is still open."""
    client.sock.setblocking(True)
    client.sock.settimeout(2.0)
    got = 0
    try:
        while data := client.sock.recv(262144):
            got += data.count(END)
    except ConnectionResetError:
        pass
    except TimeoutError:
        return -1
    return got


# -- reporting ---------------------------------------------------------------------------------


def percentile(values, fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def report(result: Run, peer: Run | None) -> None:
    lost = [result.emitted - got for got in result.received]
    print(f"\n## {result.label}")
    who = "1 client" if len(result.login) == 1 else f"{len(result.login)} clients at once"
    print(f"connect+login, {who}: "
          f"p50 {ms(percentile(result.login, 0.5))}, p99 {ms(percentile(result.login, 0.99))}, "
          f"all logged in after {ms(result.login_total)}")
    print(f"events emitted by the PBX: {result.emitted:,} in {result.seconds:.2f} s "
          f"= {result.emitted / result.seconds:,.0f} events/s")
    print(f"received per reading client: min {min(result.received):,}, "
          f"max {max(result.received):,}; lost: total {sum(lost):,}, worst client {max(lost):,}; "
          f"identical byte streams: {'yes' if result.identical else 'NO'}; "
          f"events parsed and checked by the first {min(VERIFIERS, len(result.received))} "
          f"client(s): {result.verified:,}")
    p50, p99 = percentile(result.lags, 0.5), percentile(result.lags, 0.99)
    print(f"delivery lag over {len(result.lags):,} deliveries: p50 {ms(p50)}, p99 {ms(p99)}, "
          f"max {ms(max(result.lags))}")
    if peer is not None:
        print(f"  against the one-client run: p50 x{p50 / percentile(peer.lags, 0.5):.2f}, "
              f"p99 x{p99 / percentile(peer.lags, 0.99):.2f}")
    print(f"CPU seconds while the traffic ran: server process {result.server_cpu:.1f}, "
          f"clients {result.client_cpu:.1f} (wall {result.seconds:.1f} s)")
    print(f"server after the run: {result.connected_after}")
    if result.stalled_got is not None:
        for when, text in result.drops:
            print(f"dropped: {text}")
        drop_times = [when for when, _ in result.drops]
        if drop_times:
            cut = drop_times[0]
            before = [lag for lag, at in zip(result.lags, result.arrivals) if at < cut]
            after = [lag for lag, at in zip(result.lags, result.arrivals) if at >= cut]
            print(f"others' lag while the stalled client was connected: p50 "
                  f"{ms(percentile(before, 0.5))}, p99 {ms(percentile(before, 0.99))} "
                  f"({len(before):,} deliveries); after it was dropped: p50 "
                  f"{ms(percentile(after, 0.5))}, p99 {ms(percentile(after, 0.99))} "
                  f"({len(after):,})")
        got = result.stalled_got
        print("the stalled client: " + ("still connected (not dropped!)" if got < 0 else
              f"got {got:,} events from its kernel buffer, then the server's close"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--calls", type=float, default=30.0, help="new calls per second")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    print(f"# Simulated server: {args.clients} clients, traffic {args.calls:g} calls/s "
          f"(seed {args.seed}) for {args.seconds:g} s")
    print(f"Python {platform.python_version()}, {os.cpu_count()} CPUs, "
          f"{platform.platform()}, load average {os.getloadavg()[0]:.2f} at start")
    one = run(args, 1, False, "1 client (the peer)")
    report(one, None)
    many = run(args, args.clients, False, f"{args.clients} clients")
    report(many, one)
    stalled = run(args, args.clients, True,
                  f"{args.clients} clients, one of them stalled ({args.clients - 1} reading)")
    report(stalled, one)
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
