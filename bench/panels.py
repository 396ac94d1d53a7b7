"""Panels benchmark: the EventStreamPanel under a flood from the simulated Asterisk.

Run: ``.venv/bin/python bench/panels.py`` (options: ``--rate 20000 --seconds 10
--calls 800``). About a minute. Figures are printed, nothing is asserted.

Every event below crosses the real path: the simulated Asterisk's server
renders it for the client's session and writes it to a TCP socket on
127.0.0.1; the AMIClient's reader thread parses it and hands it to the
panel's callback, which appends it to the panel's ring. The panel has the
notebook defaults (50 rows, a ring of 10,000, a redraw every 0.2 s).

1. **Redraw cost**: one redraw of 500 rows from a full ring, against
   ``DataFrame.to_html`` of the same 500 rows as the peer.
2. **Server in its own process** (as ``amilab serve`` or a real Asterisk), at
   ``--rate`` events/s for ``--seconds``. The PBX's traffic generator cannot
   promise a steady rate (Poisson arrivals, calls ramping up), so a burst
   injector stands in for the PBX in front of the same server: it replays
   events the real PBX produced beforehand (its traffic generator run on a
   manual clock), paced in 5 ms steps, through the server's PBX event
   subscription, the entry point of the PBX's own events.
3. **Server inside the kernel's process** (``amilab.connect()`` without
   ``AMI_HOST``, the ConnectionPanel's fallback): the PBX's own
   ``start_traffic(--calls)`` for ``--seconds``, then the PBX is closed so
   the count is final. PBX, server, client and panel share one GIL here.

For each flood: events lost (produced minus received by the panel), events
pushed out of the ring (the documented overflow rule: the oldest go, each
counted), the catch-up time after the last event, redraws against their cap,
the HTML bytes sent per second, and this process's RSS over time.
"""

from __future__ import annotations

import argparse
import gc
import logging
import multiprocessing
import os
import platform
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from amilab import AMIClient  # noqa: E402
from amilab.panels import EventStreamPanel  # noqa: E402
from amilab.protocol import Message, Parser  # noqa: E402
from amilab.sim.clock import ManualClock, RealClock  # noqa: E402
from amilab.sim.pbx import PBX, PbxEvent  # noqa: E402
from amilab.sim.server import SimulatedAsterisk  # noqa: E402
from amilab.sim.session import render_event  # noqa: E402

STEP = 0.005  #: the injector's pacing step, seconds
REPLAYED = 50_000  #: distinct events the injector cycles through
COURSE_SECRET = "mysecretpassword"  #: the course's admin (guide Step 2)


def pbx_events(count: int, calls_per_second: float = 200) -> list[PbxEvent]:
    """``count`` events of the real PBX's traffic generator, run on a manual clock."""
    clock = ManualClock()
    pbx = PBX(clock=clock)
    events: list[PbxEvent] = []
    pbx.subscribe(events.append)
    pbx.start_traffic(calls_per_second, seed=22)
    while len(events) < count:
        clock.advance(0.01)
    pbx.close()
    return events[:count]


class InjectorPBX:
    """Stands in for the PBX in front of the server: only its event stream
    (``subscribe``) is used, and :meth:`inject` fills it at a steady rate."""

    def __init__(self, events: list[PbxEvent]) -> None:
        self.clock = RealClock()
        self._events = events
        self._listeners: list[Callable[[PbxEvent], None]] = []

    def subscribe(self, listener: Callable[[PbxEvent], None]) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def uptime_seconds(self) -> int:
        return 0

    def last_reload_seconds(self) -> int:
        return 0

    def close(self) -> None:
        self.clock.close()

    def inject(self, rate: float, seconds: float) -> int:
        """Emit ``rate`` events/s for ``seconds``; returns how many were emitted."""
        total = int(rate * seconds)
        sent = 0
        begun = time.monotonic()
        events, count = self._events, len(self._events)
        while sent < total:
            due = min(total, int((time.monotonic() - begun) * rate) + int(rate * STEP))
            while sent < due:
                event = events[sent % count]
                for listener in self._listeners:
                    listener(event)
                sent += 1
            time.sleep(max(0.0, begun + sent / rate - time.monotonic()))
        return sent


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def html_bytes(panel: EventStreamPanel) -> int:
    """Bytes of the table and the counts as last drawn (what one redraw sends)."""
    return sum(len(w.value) for w in panel.widget.children[2].children)


def flood(title: str, address: tuple[str, int], produce: Callable[[], int],
          target: float | None) -> None:
    """Run ``produce`` (it returns the events it made, all of them final) against
    a panel on a client of the server at ``address``, and print what the panel saw."""
    client = AMIClient(*address).connect()
    client.login("admin", COURSE_SECRET)
    panel = EventStreamPanel(client)
    while client.next_event(timeout=0.2) is not None:  # FullyBooted
        pass
    panel.clear()
    samples: list[tuple[float, float]] = []
    stop = threading.Event()
    begun = time.monotonic()

    def sample() -> None:
        while not stop.wait(1.0):
            samples.append((time.monotonic() - begun, rss_mib()))

    sampler = threading.Thread(target=sample, daemon=True)
    rss_before = rss_mib()
    redraws_before = panel.redraws
    sampler.start()
    produced = produce()
    took = time.monotonic() - begun
    finished = time.monotonic()
    while panel.log.appended < produced and time.monotonic() - finished < 10:
        time.sleep(0.001)
    caught_up = time.monotonic() - finished
    redraws = panel.redraws - redraws_before
    stop.set()
    sampler.join()
    panel.pause()
    log = panel.log
    rate = produced / took
    versus = f", target {target:,.0f}: ratio {rate / target:.3f}" if target else ""
    print(f"{title}: {produced:,} events in {took:.2f} s = {rate:,.0f} events/s{versus}")
    print(f"  received by the panel: {log.appended:,}; lost: {produced - log.appended:,}")
    print(f"  ring: {len(log):,} held of {log.maxlen:,}; pushed out (oldest first, counted): "
          f"{log.evicted:,}; appended == pushed out + held: "
          f"{log.appended == log.evicted + len(log)}")
    print(f"  client's own event queue (nobody reads it here): {client.events_dropped:,} "
          "dropped and counted, oldest first, at most 10,000 held")
    print(f"  caught up {caught_up * 1000:.0f} ms after the last event")
    cap = took / panel.interval + 1
    print(f"  redraws: {redraws} in {took:.2f} s = {redraws / took:.2f}/s; cap "
          f"{1 / panel.interval:.0f}/s, at most {cap:.0f}: redraws/cap {redraws / cap:.2f}")
    out = html_bytes(panel) * redraws / took
    print(f"  HTML per redraw ({panel.rows} rows): {html_bytes(panel) / 1000:.0f} kB -> "
          f"{out / 1000:.0f} kB/s to the browser; Jupyter Server's default "
          f"iopub_data_rate_limit is 1,000 kB/s: ratio {out / 1e6:.2f}")
    curve = ", ".join(f"{t:.0f}s {r:.0f}" for t, r in samples[1::2])
    print(f"  RSS MiB: before {rss_before:.0f}, peak {max(r for _, r in samples):.0f}, "
          f"end {rss_mib():.0f} (over time: {curve})")
    print(f"  client still connected: {not client.closed}"
          + ("" if not client.closed else f" ({client.transcript[-1].text})"))
    client.close()


def traffic_flood(calls: float, seconds: float) -> None:
    pbx = PBX()
    produced = 0

    def count(_event: PbxEvent) -> None:
        nonlocal produced
        produced += 1

    def produce() -> int:
        pbx.start_traffic(calls, seed=22)
        time.sleep(seconds)
        live = len(pbx.channels())
        pbx.close()  # no more events: the count is final
        print(f"  (the PBX held {live:,} live channels when it stopped: its memory, "
              "not the panel's, grows with them)")
        return produced

    with SimulatedAsterisk(pbx=pbx) as server:
        pbx.subscribe(count)
        flood(f"In the kernel's process: traffic generator, {calls:,.0f} calls/s",
              (server.host, server.port), produce, None)


def serve_injector(conn: multiprocessing.connection.Connection) -> None:
    """The child process: a simulated Asterisk whose PBX is the burst injector."""
    pbx = InjectorPBX(pbx_events(REPLAYED))
    with SimulatedAsterisk(pbx=pbx) as server:
        conn.send((server.host, server.port))
        rate, seconds = conn.recv()
        conn.send(pbx.inject(rate, seconds))
        conn.recv()  # the parent has seen everything
    pbx.close()


def burst_flood(rate: float, seconds: float) -> None:
    spawn = multiprocessing.get_context("spawn")
    ours, theirs = spawn.Pipe()
    child = spawn.Process(target=serve_injector, args=(theirs,), daemon=True)
    child.start()
    address = ours.recv()

    def produce() -> int:
        ours.send((rate, seconds))
        return ours.recv()

    flood("Server in its own process: burst injector", address, produce, rate)
    ours.send("done")
    child.join(10)


def redraw_cost(events: list[PbxEvent], rows: int = 500, rounds: int = 20) -> None:
    parser = Parser(role="client")
    messages: list[Message] = parser.feed(b"".join(
        render_event(e.name, e.privilege, e.body, None).data for e in events))

    class Clock:  # moves one second per call: every tick is due
        now = time.time()

        def __call__(self) -> float:
            self.now += 1.0
            return self.now

    # not started: no callback, no redraw thread; the ring is filled directly
    panel = EventStreamPanel(AMIClient(), rows=rows, clock=Clock(), start=False)
    for message in messages:
        panel.log.append(message)
    panel_ms, peer_ms = [], []
    for n in range(rounds):
        panel.log.append(messages[n])  # something new to draw
        gc.collect()
        begun = time.perf_counter()
        panel.tick()
        panel_ms.append((time.perf_counter() - begun) * 1000)
        shown = panel.log.to_frame(last=rows, newest_first=True)
        begun = time.perf_counter()
        shown.to_html()
        peer_ms.append((time.perf_counter() - begun) * 1000)
    p, q = statistics.median(panel_ms), statistics.median(peer_ms)
    print(f"Redraw of {len(panel.frame())} rows from a full ring of {len(panel.log):,} events: "
          f"median {p:.1f} ms, worst {max(panel_ms):.1f} ms (budget 30 ms); peer "
          f"DataFrame.to_html of the same rows: median {q:.1f} ms; panel/peer {p / q:.3f}")
    print(f"  {html_bytes(panel) / 1000:.0f} kB of HTML per redraw of {rows} rows")
    panel.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=20_000, help="burst events/s")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--calls", type=float, default=800, help="traffic calls/s")
    args = parser.parse_args()
    # the client warns once when its unread event queue overflows: show it inline
    logging.basicConfig(format="  (log) %(levelname)s %(name)s: %(message)s", stream=sys.stdout)
    print(f"Python {platform.python_version()}, {len(os.sched_getaffinity(0))} CPUs, "
          f"load average {os.getloadavg()[0]:.2f}")
    redraw_cost(pbx_events(10_000))
    burst_flood(args.rate, args.seconds)
    traffic_flood(args.calls, args.seconds)


if __name__ == "__main__":
    main()
