"""Parser benchmark: amilab against asterisk-ami and panoramisk, same bytes, same run.

Run it with ``make bench`` (it builds bench/.venv with the two peers, which
never enter amilab's own dependencies), or with any Python where amilab,
asterisk-ami and panoramisk import: ``python bench/parse.py [--events N]``.

Every parser gets the same list of 4 KiB chunks (the banner, then at least
200,000 Asterisk 22 call events of 16 to 31 headers, see ami_events.py) and
must hand over each event's name and every one of its headers:

* amilab: ``Parser.feed(chunk)``, then ``msg.name`` and iterating ``msg.headers``;
* asterisk-ami: its own framing generator ``AMIClient._next_pack`` (a regex split,
  fed by a stand-in socket that returns the chunks) and its parser ``Event.read``;
* panoramisk: ``AMIProtocol.data_received`` (split on CRLF CRLF, then
  ``Message.from_line``), with ``handle_message`` replaced by the consumer
  instead of its action/event dispatch.

Each parser runs several rounds, interleaved so that noise from the shared
machine hits all three alike; the best round counts, and the median is shown
beside it. The headers each parser hands over differ a little, and the output
says how many: asterisk-ami keeps the Event line as ``.name`` only; panoramisk
adds a ``content`` key and loses a last header whose value is empty (it strips
the message before splitting).

amilab remembers recent lines (a bounded memo of 8192, see amilab/protocol.py).
The default stream has about 50,000 distinct lines, so a round cannot replay
the previous one from memory; a much shorter stream could, and would flatter
amilab, hence the warning below 100,000 events.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import platform
import statistics
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from asterisk.ami.client import AMIClient
from asterisk.ami.event import Event
from panoramisk.ami_protocol import AMIProtocol

from amilab.protocol import Parser

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ami_events import CHUNK_SIZE, event_stream  # noqa: E402

# Each runner returns (events seen, headers seen) so a parser that skips work
# or loses events shows up in the output instead of looking fast.
Runner = Callable[[Sequence[bytes]], tuple[int, int]]


def run_amilab(chunks: Sequence[bytes]) -> tuple[int, int]:
    parser = Parser(role="client")
    events = headers = 0
    for chunk in chunks:
        for msg in parser.feed(chunk):
            if msg.name:
                events += 1
            for _name, _value in msg.headers:
                headers += 1
    return events, headers


class _ChunkSocket:
    """Stands in for asterisk-ami's socket: recv() returns the next chunk, then b''."""

    def __init__(self, chunks: Sequence[bytes]) -> None:
        self._chunks = iter(chunks)

    def recv(self, _size: int) -> bytes:
        return next(self._chunks, b"")

    def close(self) -> None:
        pass


def run_asterisk_ami(chunks: Sequence[bytes]) -> tuple[int, int]:
    client = AMIClient(buffer_size=CHUNK_SIZE)
    client._socket = _ChunkSocket(chunks)
    client.finished = threading.Event()
    packs = client._next_pack()
    next(packs)  # the banner line
    events = headers = 0
    for pack in packs:
        event = Event.read(pack)
        if event.name:
            events += 1
        for _name, _value in event.keys.items():
            headers += 1
    return events, headers


def run_panoramisk(chunks: Sequence[bytes]) -> tuple[int, int]:
    counts = [0, 0]

    class Consumer(AMIProtocol):
        def handle_message(self, message):
            if message["Event"]:
                counts[0] += 1
            for _name, _value in message.items():
                counts[1] += 1

    protocol = Consumer()
    protocol.connection_made(transport=None)
    for chunk in chunks:
        protocol.data_received(chunk)
    return counts[0], counts[1]


PARSERS: dict[str, Runner] = {
    "amilab": run_amilab,
    "asterisk-ami": run_asterisk_ami,
    "panoramisk": run_panoramisk,
}


def _versions() -> dict[str, str]:
    from importlib.metadata import version

    return {name: version(name) for name in PARSERS}


def _machine() -> str:
    model = ""
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            model = next((line.split(":", 1)[1].strip() for line in cpuinfo
                          if line.startswith("model name")), "")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"Python {platform.python_version()}, {cores} cores {model}".rstrip()


def main() -> None:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--events", type=int, default=200_000, help="at least this many events")
    args.add_argument("--rounds", type=int, default=7, help="runs per parser; the best counts")
    args.add_argument("--seed", type=int, default=22)
    opts = args.parse_args()

    if opts.events < 100_000:
        print("warning: a short stream fits in amilab's line memo; figures overstate amilab")
    chunks, n_events = event_stream(opts.events, opts.seed)
    size = sum(map(len, chunks))
    print(_machine())
    print("versions: " + ", ".join(f"{k} {v}" for k, v in _versions().items()))
    print(f"stream: {n_events:,} events, {size / 2**20:.1f} MiB in {len(chunks):,} chunks "
          f"of {CHUNK_SIZE} bytes, seed {opts.seed}")

    times: dict[str, list[float]] = {name: [] for name in PARSERS}
    headers_seen: dict[str, int] = {}
    for round_no in range(1, opts.rounds + 1):
        for name, runner in PARSERS.items():
            gc.collect()
            start = time.perf_counter()
            events, headers_seen[name] = runner(chunks)
            elapsed = time.perf_counter() - start
            if events != n_events:
                sys.exit(f"{name} saw {events} events, expected {n_events}")
            times[name].append(elapsed)
            print(f"  round {round_no} {name:13} {n_events / elapsed:>10,.0f} events/s")

    best = {name: n_events / min(seconds) for name, seconds in times.items()}
    median = {name: n_events / statistics.median(seconds) for name, seconds in times.items()}
    print(f"\nbest of {opts.rounds} rounds (median in brackets)")
    for name in PARSERS:
        print(f"  {name:13} {best[name]:>10,.0f} events/s ({median[name]:>9,.0f})  "
              f"{best[name] * size / n_events / 2**20:6.1f} MiB/s  "
              f"{headers_seen[name]:>10,} headers handed over")
    for peer in PARSERS:
        if peer != "amilab":
            print(f"amilab / {peer}: {best['amilab'] / best[peer]:.2f}x "
                  f"({median['amilab'] / median[peer]:.2f}x)")


if __name__ == "__main__":
    main()
