"""A scripted AMI server for the client tests: it replays real Asterisk 22 bytes.

A :class:`Script` is a greeting (the banner) and a list of :class:`Turn`: the
server reads requests until every request the turn expects has arrived, then
writes the turn's reply. Scripts come from the recordings in tests/data
(:func:`recording`) and tests may edit them (delay a reply, cut it short,
merge two turns to answer out of order).

The client under test makes its own ActionIDs, so the server reads requests
with ``Parser(role="server")`` and rewrites each recorded ``ActionID:`` line of
a reply to the live value, or inserts one when the recorded request had none.
Anything unexpected (a request the script does not hold, a wrong action) is
noted in ``errors`` and ends the connection, so a test fails fast and says why.
"""

from __future__ import annotations

import re
import socket
import threading
from dataclasses import dataclass, field

from amilab.protocol import Message, Parser
from tests import transcripts

_ACTION_ID_LINE = re.compile(rb"^ActionID: ([^\r\n]*)", re.MULTILINE)


@dataclass
class Turn:
    """Read one request per ``expect`` entry (matched by Action name), then reply."""

    expect: list[Message]  #: the recorded requests
    reply: list[bytes]  #: the recorded reply, one item per recorded recv() chunk
    delay: float = 0.0  #: seconds to wait before replying
    close: bool = False  #: close the connection after the reply


@dataclass
class Script:
    greeting: bytes
    turns: list[Turn] = field(default_factory=list)


def recording(name: str, connection: int = 0) -> Script:
    """The script of one recorded connection: each SEND starts a turn, the RECV
    chunks after it are the reply; the last turn closes if Asterisk closed."""
    conn = transcripts.load(name)[connection]
    script = Script(b"")
    for step in conn.steps:
        if step.direction == "send":
            script.turns.append(Turn(Parser(role="server").feed(step.data), []))
        elif step.direction == "recv" and script.turns:
            script.turns[-1].reply.append(step.data)
        elif step.direction == "recv":
            script.greeting += step.data
    if conn.server_closed and script.turns:
        script.turns[-1].close = True
    return script


class ScriptedServer:
    """Serves one client connection on 127.0.0.1 (a free port) from a script.

    ``chunk_size`` re-cuts every reply into pieces of that many bytes (1 =
    one byte at a time); by default the recorded chunks are kept.
    """

    def __init__(self, script: Script, *, chunk_size: int | None = None) -> None:
        self.script = script
        self.chunk_size = chunk_size
        self.requests: list[Message] = []
        self.errors: list[str] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.host, self.port = self._listener.getsockname()[:2]
        self._conn: socket.socket | None = None
        self._stop = threading.Event()
        self._arrived = threading.Condition()
        self._ids: dict[bytes, bytes] = {}  # recorded ActionID -> live ActionID
        self._thread = threading.Thread(target=self._serve, name="scripted-server", daemon=True)
        self._thread.start()

    def wait_for_requests(self, count: int, timeout: float = 5.0) -> bool:
        """Block until the server has read ``count`` requests in all."""
        with self._arrived:
            return self._arrived.wait_for(lambda: len(self.requests) >= count, timeout)

    def close(self) -> None:
        self._stop.set()
        self._listener.close()
        if self._conn is not None:
            try:
                self._conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed by the server thread
        self._thread.join(5)

    def __enter__(self) -> ScriptedServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the server thread --------------------------------------------------------

    def _serve(self) -> None:
        self._listener.settimeout(5)
        try:
            conn, _ = self._listener.accept()
        except OSError:
            return  # closed before a client came, or nobody came
        self._conn = conn
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.settimeout(5)  # close() shuts the socket down, which wakes recv()
        parser = Parser(role="server")
        queued: list[Message] = []
        try:
            self._write(conn, [self.script.greeting])
            for turn in self.script.turns:
                live = self._read(conn, parser, queued, len(turn.expect))
                reply = None if live is None else self._answer(turn, live)
                if reply is None or self._stop.wait(turn.delay):
                    return
                self._write(conn, reply)
                if turn.close:
                    return
            extra = self._read(conn, parser, queued, 1)
            if extra:
                self.errors.append(f"request beyond the script: {extra[0].name}")
        except OSError:
            pass  # the client went away; what it saw is the test's business
        finally:
            conn.close()

    def _read(
        self, conn: socket.socket, parser: Parser, queued: list[Message], count: int
    ) -> list[Message] | None:
        """The next ``count`` requests, or None if the client closed first."""
        while len(queued) < count:
            if self._stop.is_set():
                return None
            try:
                data = conn.recv(65536)
            except TimeoutError:
                continue
            if not data:
                return None
            for request in parser.feed(data):
                queued.append(request)
                with self._arrived:
                    self.requests.append(request)
                    self._arrived.notify_all()
        taken = queued[:count]
        del queued[:count]
        return taken

    def _answer(self, turn: Turn, live: list[Message]) -> list[bytes] | None:
        """The turn's reply with live ActionIDs, or None if the requests do not fit.

        Live requests are paired with recorded ones by Action name."""
        reply = list(turn.reply)
        unmatched = list(turn.expect)
        for request in live:
            name = (request.get("Action") or "").lower()
            recorded = next((r for r in unmatched if (r.get("Action") or "").lower() == name), None)
            if recorded is None:
                self.errors.append(
                    f"unexpected {request.get('Action')!r}; the script expects "
                    f"{[r.get('Action') for r in unmatched]}"
                )
                return None
            unmatched.remove(recorded)
            live_id = request.action_id
            if live_id is None:
                continue
            if recorded.action_id is not None:
                self._ids[recorded.action_id.encode()] = live_id.encode()
            elif len(turn.expect) == 1 and reply:  # insert it after "Response: ..."
                cut = reply[0].index(b"\n") + 1
                line = b"ActionID: " + live_id.encode() + b"\r\n"
                reply[0] = reply[0][:cut] + line + reply[0][cut:]
        return [
            _ACTION_ID_LINE.sub(lambda m: b"ActionID: " + self._ids.get(m[1], m[1]), chunk)
            for chunk in reply
        ]

    def _write(self, conn: socket.socket, chunks: list[bytes]) -> None:
        if self.chunk_size is not None:
            data = b"".join(chunks)
            chunks = [data[i : i + self.chunk_size] for i in range(0, len(data), self.chunk_size)]
        for chunk in chunks:
            conn.sendall(chunk)
