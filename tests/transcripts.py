"""Read the real Asterisk 22 recordings in tests/data/transcripts.

Each file holds one or more connections (``--- connection: <title> ---``). Inside
one, ``>>> SEND`` blocks are the bytes the recorder wrote and ``<<< RECV chunk``
blocks one ``recv()`` each, every line shown as a Python bytes literal. Tests use
these to replay real server bytes to the client and to compare the simulated
server with real Asterisk.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path

DATA = Path(__file__).parent / "data" / "transcripts"

_STEP = re.compile(r"^\+\s*(?P<t>[\d.]+)s\s+(?P<what>>>> SEND|<<< RECV chunk|---)\s*(?P<rest>.*)$")
_BYTES = re.compile(r"^\s+(?:>>>|<<<) (b['\"].*)$")


@dataclass
class Step:
    """One SEND (``direction == "send"``), RECV chunk (``"recv"``) or note (``"note"``)."""

    time: float
    direction: str
    data: bytes = b""
    note: str = ""


@dataclass
class Connection:
    title: str
    steps: list[Step] = field(default_factory=list)

    def sent(self) -> bytes:
        return b"".join(s.data for s in self.steps if s.direction == "send")

    def received(self) -> bytes:
        return b"".join(s.data for s in self.steps if s.direction == "recv")

    @property
    def server_closed(self) -> bool:
        return any(s.direction == "note" and "SERVER closed" in s.note for s in self.steps)


def load(name: str) -> list[Connection]:
    """All connections of one transcript, e.g. ``load("a_banner_login_fullybooted")``."""
    path = DATA / (name if name.endswith(".txt") else name + ".txt")
    connections: list[Connection] = []
    current: Connection | None = None
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("--- connection:"):
            current = Connection(line[len("--- connection:"):].strip(" -"))
            connections.append(current)
            continue
        if current is None:
            continue
        step = _STEP.match(line)
        if step:
            kind = {">>> SEND": "send", "<<< RECV chunk": "recv"}.get(step["what"], "note")
            current.steps.append(Step(float(step["t"]), kind, note=step["rest"]))
            continue
        data = _BYTES.match(line)
        if data and current.steps:
            current.steps[-1].data += ast.literal_eval(data[1])
    return connections


def connection(name: str, index: int = 0) -> Connection:
    return load(name)[index]
