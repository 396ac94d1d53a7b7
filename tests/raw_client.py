"""A plain socket client for the simulated server's tests, like nc: bytes out,
messages in (parsed by amilab's own Parser)."""

from __future__ import annotations

import socket

from amilab.protocol import Message, Parser
from amilab.sim.server import SimulatedAsterisk


class RawClient:
    """``read`` returns the next whole messages; ``received`` keeps every byte read."""

    def __init__(
        self, sim: SimulatedAsterisk, *, rcvbuf: int | None = None, timeout: float = 5.0
    ) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect((sim.host, sim.port))
        self.parser = Parser(role="client")
        self.pending: list[Message] = []
        self.received = bytearray()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read(self, count: int = 1) -> list[Message]:
        while len(self.pending) < count:
            data = self.sock.recv(65536)
            assert data, f"server closed; got {len(self.pending)} of {count} messages"
            self.received += data
            self.pending.extend(self.parser.feed(data))
        out, self.pending = self.pending[:count], self.pending[count:]
        return out
